"""The plain view: one line per event (``--plain``, and whenever stdout is
not a terminal), status lines on stderr, and the end-of-session summary that
every run prints.  Views of events and of the :class:`SessionState`."""

from __future__ import annotations

import math
import os
import sys
from typing import Callable, TextIO

from .events import EmotionEvent, Event, SpeechEvent, StatusEvent, TranscriptEvent, emotion_tag
from .session import SessionState, percentiles


def plain_line(event: Event) -> str | None:
    """One readable line per event (``--plain``); None for events not shown."""
    span = f"[{event.start:6.1f}-{event.end:6.1f}]"
    if isinstance(event, EmotionEvent):
        return f"{span} emotion {event.label:<9} {event.confidence:.2f}  ({event.latency_ms:.0f} ms)"
    if isinstance(event, TranscriptEvent):
        if not event.final:
            return None
        return f"{span} {emotion_tag(event.emotion)}{event.text}"
    if isinstance(event, SpeechEvent):
        return None
    return None


def status_line(event: StatusEvent) -> str:
    level = f"{event.level_dbfs:.0f} dBFS" if math.isfinite(event.level_dbfs) else "silent"
    ratio = " ".join(f"{k} {v:.2f}" for k, v in event.compute_ratio.items())
    warn = ("  " + "; ".join(event.warnings)) if event.warnings else ""
    return (f"status {event.end:7.1f}s  level {level}  overflows {event.overflows}  dropped {event.dropped_samples}"
            f"  compute/audio {ratio}{warn}")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def summary_lines(state: SessionState, files: list[str] | None = None) -> list[str]:
    """The session's totals, printed when it ends (also after Ctrl-C)."""
    total = sum(state.emotion_counts.values())
    share = ", ".join(f"{k} {v:.0%}" for k, v in state.emotion_shares()) if total else "no speech"
    counts = ", ".join(f"{n} {k}" for k, n in sorted(state.counts.items()))
    out = [f"session: {state.source_name}, {state.audio:.1f} s of audio ({state.speech_seconds:.1f} s speech) in {state.wall_seconds:.1f} s",
           f"emotion windows: {total} ({share})"]
    if state.transcript:
        out.append(f"transcript: {_plural(state.words, 'word')} in {_plural(len(state.latency['transcript']), 'span')}")
    out.append(f"events: {counts or 'none'}")
    for stage, values in state.latency.items():
        if values:
            p = percentiles(values)
            out.append(f"{stage} latency: p50 {p['p50']:.0f} ms, p95 {p['p95']:.0f} ms, max {p['max']:.0f} ms")
    if state.status:
        s = state.status
        out.append(f"input: overflows {s.overflows}, dropped samples {s.dropped_samples}, dropped windows {s.dropped_windows}")
    if files:
        out.append("events written to: " + ", ".join(files))
    return out


def print_summary(state: SessionState, files: list[str] | None = None, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    for line in summary_lines(state, files):
        print(line, file=stream)


class PlainPrinter:
    """``--plain``: one line per event on stdout, status lines on stderr.

    When the reader of either stream goes away (``stream-ser replay ... | head``),
    printing stops, that stream is pointed at ``/dev/null`` (so that no later
    flush fails) and ``on_closed`` is called once: the session then ends as it
    does on Ctrl-C, with the files it writes complete up to that point.
    """

    def __init__(self, out: TextIO, err: TextIO, on_closed: Callable[[], None] | None = None):
        self.out, self.err, self.on_closed = out, err, on_closed
        self.closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._print(None, self.out)
        return False

    def _print(self, line: str | None, stream: TextIO) -> None:
        if self.closed:
            return
        try:
            if line is not None:
                print(line, file=stream)
            stream.flush()
        except BrokenPipeError:
            self.closed = True
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, stream.fileno())
                os.close(null)
            except (OSError, ValueError):
                pass
            if self.on_closed:
                self.on_closed()

    def update(self, event: Event) -> None:
        if isinstance(event, StatusEvent):
            self._print(status_line(event), self.err)
            return
        line = plain_line(event)
        if line:
            self._print(line, self.out)
