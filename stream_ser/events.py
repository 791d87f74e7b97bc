"""Events: what the pipeline emits, and the writers that put them on disk.

The contract other tools read (one JSON object per line): every event has
``type``, ``start`` and ``end`` (audio seconds on the stream clock),
``emitted_at`` (Unix wall time) and ``latency_ms`` (emission wall time minus the
wall time at which the audio's last sample was captured; in ``--speed 0``
replay that is the compute and queueing time).  ``utterance`` numbers the VAD's
utterances from 0, the same in emotion, transcript and speech events.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO


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
        return json.dumps(self.to_dict(), separators=(",", ":"))


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
    """Health, at least every few seconds: ``start``/``end`` span the audio since
    the last status.  ``compute_ratio`` is each stage's CPU time per audio
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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not math.isfinite(d["level_dbfs"]):
            d["level_dbfs"] = None
        return d


class JsonlWriter:
    """Writes events one JSON line at a time straight to the file (no buffer),
    so a crash loses at most the line being written.  If a write fails (disk
    full), the file is cut back to its last complete line and the error is
    raised.  Opened before the stream starts, so a bad path fails early."""

    def __init__(self, path: str):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._size = 0

    def write(self, event: Event) -> None:
        data = (event.to_json() + "\n").encode()
        try:
            done = 0
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise
        self._size += len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _timestamp(seconds: float, sep: str) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def emotion_tag(emotion: dict[str, Any] | None) -> str:
    return f"({emotion['label']} {emotion['confidence']:.2f}) " if emotion else ""


class SubtitleWriter:
    """SRT or WebVTT of the final transcript spans, emotion in the cue text,
    flushed cue by cue."""

    def __init__(self, path: str, kind: str):
        if kind not in ("srt", "vtt"):
            raise ValueError(kind)
        self.path, self.kind, self._n = path, kind, 0
        self._f: TextIO = open(path, "w", encoding="utf-8")
        if kind == "vtt":
            self._f.write("WEBVTT\n\n")
            self._f.flush()

    def write(self, event: Event) -> None:
        if not isinstance(event, TranscriptEvent) or not event.final or not event.text:
            return
        self._n += 1
        sep = "," if self.kind == "srt" else "."
        head = f"{self._n}\n" if self.kind == "srt" else ""
        self._f.write(f"{head}{_timestamp(event.start, sep)} --> {_timestamp(event.end, sep)}\n"
                      f"{emotion_tag(event.emotion)}{event.text}\n\n")
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
