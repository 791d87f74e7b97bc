"""What the user sees: the live rich dashboard, the plain line-per-event view,
and the end-of-session summary.  All three are fed events only."""

from __future__ import annotations

import math
import sys
from collections import Counter
from typing import TextIO

import numpy as np

from .events import EmotionEvent, Event, StatusEvent, TranscriptEvent, plain_line, status_line


def percentiles(values, qs=(50, 95)) -> dict[str, float]:
    if not values:
        return {f"p{q}": math.nan for q in qs} | {"max": math.nan}
    return {f"p{q}": float(np.percentile(values, q)) for q in qs} | {"max": float(np.max(values))}


class SessionSummary:
    """Totals of a session, printed when it ends (also after Ctrl-C)."""

    def __init__(self, source_name: str = "", files: list[str] | None = None):
        self.source_name, self.files = source_name, files or []
        self.audio_seconds = 0.0
        self.emotion_seconds: Counter = Counter()
        self.counts: Counter = Counter()
        self.latency: dict[str, list[float]] = {"emotion": [], "transcript": []}
        self.words = 0
        self.last_status: StatusEvent | None = None

    def update(self, event: Event) -> None:
        self.counts[event.type] += 1
        self.audio_seconds = max(self.audio_seconds, event.end)
        if isinstance(event, EmotionEvent):
            # each window speaks for one hop's worth of time (its share of the timeline)
            self.emotion_seconds[event.label] += 1
            self.latency["emotion"].append(event.latency_ms)
        elif isinstance(event, TranscriptEvent) and event.final and event.text:
            self.latency["transcript"].append(event.latency_ms)
            self.words += len(event.text.split())
        elif isinstance(event, StatusEvent):
            self.last_status = event

    def lines(self) -> list[str]:
        total = sum(self.emotion_seconds.values())
        share = ", ".join(f"{k} {v / total:.0%}" for k, v in self.emotion_seconds.most_common()) if total else "no speech"
        out = [f"session: {self.source_name}, {self.audio_seconds:.1f} s of audio",
               f"emotion windows: {total} ({share})",
               f"transcript: {self.words} words in {len(self.latency['transcript'])} spans"]
        for stage, values in self.latency.items():
            if values:
                p = percentiles(values)
                out.append(f"{stage} latency: p50 {p['p50']:.0f} ms, p95 {p['p95']:.0f} ms, max {p['max']:.0f} ms")
        if self.last_status:
            s = self.last_status
            out.append(f"input: overflows {s.overflows}, dropped samples {s.dropped_samples}, dropped windows {s.dropped_windows}")
        if self.files:
            out.append("events written to: " + ", ".join(self.files))
        return out

    def print(self, stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr
        for line in self.lines():
            print(line, file=stream)


class PlainPrinter:
    """``--plain``: one line per event on stdout, status lines on stderr."""

    def __init__(self, out: TextIO, err: TextIO):
        self.out, self.err = out, err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.out.flush()
        return False

    def update(self, event: Event) -> None:
        if isinstance(event, StatusEvent):
            print(status_line(event), file=self.err, flush=True)
            return
        line = plain_line(event)
        if line:
            print(line, file=self.out, flush=True)


class Dashboard(PlainPrinter):
    """Placeholder until the rich dashboard lands: plain output."""

    def __init__(self, source_name: str = "", sample_rate: int = 0, on_quit=None):
        super().__init__(sys.stdout, sys.stderr)
