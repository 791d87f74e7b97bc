"""The errors stream-ser raises.  Each message is one line for the user.

Library code raises these; only the command line maps them to exit codes
(``UsageError``, ``ModelError`` and a ``SourceError`` at start: 2; a session
that fails mid-way, ``DeviceLost`` or ``StageError``: 1).
"""

from __future__ import annotations


class StreamSerError(Exception):
    """Base of every error stream-ser raises on purpose."""


class UsageError(StreamSerError):
    """An option, path or argument that cannot be used."""


class SourceError(StreamSerError):
    """A source that cannot be opened or read."""


class DeviceLost(SourceError):
    """The input device stopped delivering audio mid-stream."""


class ModelError(StreamSerError):
    """A model that cannot be loaded, or that does not fit this run."""


class StageError(StreamSerError):
    """A pipeline stage failed mid-session.  ``stage`` names it ("source",
    "vad", "windower", "emotion", "transcript", "writer"); the original
    exception is ``__cause__``."""

    def __init__(self, stage: str, error: BaseException):
        why = str(error).splitlines()[0] if str(error) else type(error).__name__
        super().__init__(f"{stage} stage failed: {why}")
        self.stage = stage
