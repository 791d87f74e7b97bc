"""TranscriptTagger: gives each final transcript span the emotion of the
windows that cover it.  A span usually ends before the emotion window that
covers its end is classified, so it is held back a moment (``wait``) for it.
Runs on the caller's thread of :meth:`Pipeline.events`; not thread-safe."""

from __future__ import annotations

import numpy as np

from .events import EmotionEvent, Event, TranscriptEvent

KEEP_SECONDS = 120.0  # emotion windows older than this (audio time) cannot cover a new span


def tag_emotion(start: float, end: float, emotions: list[EmotionEvent]) -> dict | None:
    """Overlap-weighted emotion of ``[start, end)`` from the windows covering it
    (for a zero-length span, the windows containing the point); None if none do."""
    total, probs = 0.0, None
    for e in emotions:
        overlap = min(end, e.end) - max(start, e.start)
        if end <= start:
            overlap = 1.0 if e.start <= start < e.end else 0.0
        if overlap <= 0:
            continue
        p = np.array(list(e.window_probs.values())) * overlap
        probs = p if probs is None else probs + p
        total += overlap
    if probs is None:
        return None
    probs /= total
    names = list(emotions[0].window_probs)
    k = int(np.argmax(probs))
    return {"label": names[k], "confidence": round(float(probs[k]), 4)}


class TranscriptTagger:
    """Feed every event with :meth:`feed`; it returns the events to emit now,
    in order.  Call :meth:`due` regularly (and with ``final=True`` at the end)
    for spans whose wait is over."""

    def __init__(self, wait: float = 0.5):
        self.wait = wait
        self._emotions: list[EmotionEvent] = []
        self._held: list[TranscriptEvent] = []

    def feed(self, event: Event, now: float) -> list[Event]:
        if isinstance(event, EmotionEvent):
            self._emotions.append(event)
            self._emotions = [e for e in self._emotions if e.end > event.start - KEEP_SECONDS]
        elif isinstance(event, TranscriptEvent) and event.final and event.text:
            if tag_emotion(event.start, event.end, self._emotions) is None:
                self._held.append(event)
                return self.due(now)
            return [self._release(event, now)] + self.due(now)
        return [event] + self.due(now)

    def due(self, now: float, final: bool = False) -> list[Event]:
        out = []
        for h in list(self._held):
            if final or now - h.emitted_at >= self.wait or tag_emotion(h.start, h.end, self._emotions):
                self._held.remove(h)
                out.append(self._release(h, now))
        return out

    def _release(self, ev: TranscriptEvent, now: float) -> TranscriptEvent:
        ev.emotion = tag_emotion(ev.start, ev.end, self._emotions)
        captured = ev.emitted_at - ev.latency_ms / 1000  # latency runs to the emission after tagging
        ev.emitted_at, ev.latency_ms = now, round((now - captured) * 1000, 1)
        return ev
