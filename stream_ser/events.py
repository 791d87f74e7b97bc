"""Events: what the pipeline emits (the files they go to: :mod:`stream_ser.outputs`).

The contract other tools read (one JSON object per line): every event has
``type``, ``start`` and ``end`` (audio seconds on the stream clock),
``emitted_at`` (Unix wall time) and ``latency_ms`` (emission wall time minus the
wall time at which the audio's last sample was captured; in ``--speed 0``
replay that is the compute and queueing time).  ``utterance`` numbers the VAD's
utterances from 0, the same in emotion, transcript and speech events.

The contract is a JSON Schema shipped beside this module
(``events.schema.json``, printed by ``stream-ser schema``); every status event
carries its version as ``schema_version``.  A field added here is a field
added there: ``tests/test_schema.py`` validates real sessions against it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = "1.0"  # of events.schema.json: major = a field removed or changed, minor = one added
# (the schema refuses unknown fields, so validate against the version a status event names)


@dataclass
class Event:
    type: str
    start: float
    end: float
    emitted_at: float
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)  # strict JSON: NaN raises ValueError


@dataclass
class EmotionEvent(Event):
    """One 2.5 s window classified.  ``probs`` are smoothed over the utterance's
    recent windows; ``window_probs`` are this window's alone.  ``arousal`` is
    the probability of a high-arousal state (0-1) from the smoothed ``probs``
    (:func:`stream_ser.labels.arousal`; None for a model without such classes)."""

    label: str = ""
    confidence: float = 0.0
    probs: dict[str, float] = field(default_factory=dict)
    window_probs: dict[str, float] = field(default_factory=dict)
    utterance: int = 0
    arousal: float | None = None


@dataclass
class TranscriptEvent(Event):
    """Text of ``[start, end)``.  ``final`` text never changes; a non-final event
    is a partial that the next transcript event replaces.  ``emotion`` is the
    overlap-weighted emotion of the windows covering the span (None if none yet)."""

    text: str = ""
    final: bool = True
    emotion: dict[str, Any] | None = None
    utterance: int = 0


@dataclass
class SpeechEvent(Event):
    """VAD: ``state`` "start" (``start`` is the onset) or "end" of an utterance."""

    state: str = ""
    utterance: int = 0


@dataclass
class StatusEvent(Event):
    """Health, about every second of wall time and once at the end: ``start``/``end``
    span the audio since the last status.  ``compute_ratio`` is each stage's CPU time per audio
    second so far (a busy machine does not inflate it); ``wall_ratio`` the
    wall time of the same work (it includes waiting for a core)."""

    source: str = ""
    sample_rate: int = 0
    level_dbfs: float = -math.inf
    peak: float = 0.0
    clipped_samples: int = 0
    overflows: int = 0
    dropped_samples: int = 0
    dropped_windows: int = 0
    skipped_audio_s: float = 0.0
    queues: dict[str, int] = field(default_factory=dict)
    compute_ratio: dict[str, float] = field(default_factory=dict)
    wall_ratio: dict[str, float] = field(default_factory=dict)
    in_speech: bool = False
    warnings: list[str] = field(default_factory=list)
    schema_version: str = SCHEMA_VERSION  # which events.schema.json these events follow

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not math.isfinite(d["level_dbfs"]):
            d["level_dbfs"] = None
        return d


def emotion_tag(emotion: dict[str, Any] | None) -> str:
    return f"({emotion['label']} {emotion['confidence']:.2f}) " if emotion else ""


EVENT_TYPES = {"emotion": EmotionEvent, "transcript": TranscriptEvent, "speech": SpeechEvent, "status": StatusEvent}


def event_from_dict(d: dict[str, Any]) -> Event:
    """The event a JSONL line holds (:meth:`Event.to_dict` reversed): unknown
    keys are ignored and missing ones take their defaults, so older or
    hand-made files read too.  Raises ``ValueError`` for an unknown type."""
    cls = EVENT_TYPES.get(d.get("type"))
    if cls is None:
        raise ValueError(f"unknown event type {d.get('type')!r}")
    names = {f.name for f in fields(cls)}
    kw = {k: v for k, v in d.items() if k in names}
    for k in ("start", "end", "emitted_at", "latency_ms"):
        kw.setdefault(k, 0.0)
    if cls is StatusEvent and kw.get("level_dbfs") is None:
        kw["level_dbfs"] = -math.inf  # to_dict writes silence's -inf as null
    return cls(**kw)

