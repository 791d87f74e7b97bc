"""SessionState: one session, reduced from its events.  The live dashboard,
the plain view's end-of-session summary, the per-call report and the row of
``calls.parquet`` are views of it: they read the state, never a model or a
stage, so they always agree.  :func:`summarise` reduces a JSONL file's event
dicts the same way.

Threading: :meth:`SessionState.update` is called on one thread (the consumer
of :meth:`Pipeline.events`).  Readers on other threads (rich's refresh thread)
take :attr:`SessionState.lock` while they copy what they need.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_right
from collections import Counter, deque
from typing import Any, Callable, Iterable

import numpy as np

from .events import EmotionEvent, Event, SpeechEvent, StatusEvent, TranscriptEvent, event_from_dict
from .labels import EMOTIONS

UNCERTAIN_BELOW = 0.2  # an emotion less confident than this is shown as "?" (uncertain)

# Emotions counted as negative for the longest negative run.  Surprise can be
# either and is left out, as in the arousal split of labels.py.
NEGATIVE = frozenset({"angry", "disgust", "fearful", "sad"})


def percentiles(values: Iterable[float], qs=(50, 95)) -> dict[str, float]:
    """``{"p50": .., "p95": .., "max": ..}`` (NaN for no values): the one way
    latencies are summarised, on screen, in the summary and in the benchmarks."""
    values = list(values)
    if not values:
        return {f"p{q}": math.nan for q in qs} | {"max": math.nan}
    return {f"p{q}": float(np.percentile(values, q)) for q in qs} | {"max": float(np.max(values))}


class SessionState:
    """Everything a view shows about one session.

    Attributes (read under :attr:`lock` from other threads):
        source_name, sample_rate: from the newest status event.
        audio: audio seconds captured so far.
        status: the newest :class:`StatusEvent`.
        in_speech, utterance: the VAD's state and the newest utterance's number.
        emotion, emotion_at: the newest :class:`EmotionEvent` and when it came (``clock``).
        labels: the model's labels, in its order.
        spans: speech ``[start, end, utterance]``, ``end`` None while open.
        centres, windows: emotion windows sorted by centre, as
            ``(centre, start, end, label or "?", utterance)``.
        lines: recent committed transcript ``(number, start, text, emotion)``.
        partial: the newest partial :class:`TranscriptEvent`, or None.
        latency: per stage, every latency in ms (``recent`` keeps the last few hundred).
        counts: events per type; emotion_counts: windows per label; words: committed words.
        arousal: every window's arousal (those the model gives); negative_run: the
            longest stretch of overlapping negative windows so far (seconds).
        clipped, warnings: clipped samples and the distinct warnings over all status events.
        versions: per view region, bumped when its inputs change (views cache on it).
    """

    def __init__(self, source_name: str = "", sample_rate: int = 0, transcript: bool = True,
                 clock: Callable[[], float] = time.monotonic, uncertain_below: float = UNCERTAIN_BELOW):
        self.lock = threading.Lock()
        self.clock = clock
        self.transcript = transcript
        self.uncertain_below = uncertain_below
        self.source_name, self.sample_rate = source_name, sample_rate
        self.audio = 0.0
        self.status: StatusEvent | None = None
        self.in_speech = False
        self.utterance = -1
        self.emotion: EmotionEvent | None = None
        self.emotion_at = -math.inf
        self.labels = list(EMOTIONS)
        self.spans: list[list] = []
        self.centres: list[float] = []
        self.windows: list[tuple[float, float, float, str, int]] = []
        self.lines: deque = deque(maxlen=200)
        self.committed = 0
        self.words = 0
        self.partial: TranscriptEvent | None = None
        self.latency: dict[str, list[float]] = {"emotion": [], "transcript": []}
        self.recent: dict[str, deque] = {"emotion": deque(maxlen=300), "transcript": deque(maxlen=100)}
        self.counts: Counter = Counter()
        self.emotion_counts: Counter = Counter()
        self.versions: Counter = Counter()
        self.arousal: list[float] = []
        self.negative_run = 0.0
        self._run: list[float] | None = None  # the negative run in progress: [start, end]
        self.clipped = 0
        self.warnings: list[str] = []
        self.first_event: float | None = None  # clock time of the first event
        self.first_wall: float | None = None  # events' emitted_at, first and last
        self.last_wall: float | None = None

    # ---- the reducer --------------------------------------------------------
    def update(self, event: Event) -> None:
        now = self.clock()
        with self.lock:
            if self.first_event is None:
                self.first_event = now
            self.counts[event.type] += 1
            if event.emitted_at:  # hand-made events may lack it
                self.first_wall = min(self.first_wall or math.inf, event.emitted_at)
                self.last_wall = max(self.last_wall or 0.0, event.emitted_at)
            v = self.versions
            if isinstance(event, StatusEvent):
                self.status = event
                self.source_name = event.source or self.source_name
                self.sample_rate = event.sample_rate or self.sample_rate
                # the status clock is the samples captured; window ends may be padded past it
                self.audio = event.end
                if not event.in_speech and self.spans and self.spans[-1][1] is None:
                    self.spans[-1][1] = event.end  # missed the end event: close the span
                if event.in_speech != self.in_speech:
                    v["now"] += 1
                self.in_speech = event.in_speech
                self.clipped += event.clipped_samples
                self.warnings += [w for w in event.warnings if w not in self.warnings]
                v.update(("health", "timeline"))
            elif isinstance(event, SpeechEvent):
                self._advance(event.start)
                if self.spans and self.spans[-1][1] is None:
                    self.spans[-1][1] = event.start
                if event.state == "start":
                    self.spans.append([event.start, None, event.utterance])
                    self.utterance = event.utterance
                self.in_speech = event.state == "start"
                v.update(("now", "health", "timeline"))
            elif isinstance(event, EmotionEvent):
                self._advance(event.end)
                self.emotion, self.emotion_at = event, now
                if event.probs and list(event.probs) != self.labels:
                    self.labels = list(event.probs)
                centre = (event.start + event.end) / 2
                i = bisect_right(self.centres, centre)
                self.centres.insert(i, centre)
                label = event.label if event.confidence >= self.uncertain_below else "?"
                self.windows.insert(i, (centre, event.start, event.end, label, event.utterance))
                self.emotion_counts[event.label] += 1
                if event.arousal is not None:
                    self.arousal.append(event.arousal)
                self._negative(event)
                self._latency("emotion", event.latency_ms)
                v.update(("health", "now", "timeline"))
            elif isinstance(event, TranscriptEvent):
                self._advance(event.end)
                if event.final:
                    text = event.text.strip()
                    if text:
                        self.committed += 1
                        self.words += len(text.split())
                        self.lines.append((self.committed, event.start, text, event.emotion))
                        self._latency("transcript", event.latency_ms)
                        v["health"] += 1
                    # a final held back for its emotion tag can arrive after a newer
                    # partial (of later audio): drop the partial only if it covers committed audio
                    if self.partial is not None and self.partial.start < event.end:
                        self.partial = None
                else:
                    self.partial = event if event.text.strip() else None
                v["transcript"] += 1

    def _advance(self, t: float) -> None:
        if self.status is None:  # before any status, events tell how far the audio goes
            self.audio = max(self.audio, t)

    def _negative(self, e: EmotionEvent) -> None:
        """Windows come in time order: a negative one that overlaps or touches
        the run extends it; any other label, or a gap, ends it."""
        if e.label not in NEGATIVE:
            self._run = None
            return
        if self._run is not None and e.start <= self._run[1]:
            self._run[1] = max(self._run[1], e.end)
        else:
            self._run = [e.start, e.end]
        self.negative_run = max(self.negative_run, self._run[1] - self._run[0])

    def _latency(self, stage: str, ms: float) -> None:
        self.latency[stage].append(ms)
        self.recent[stage].append(ms)

    # ---- derived figures ----------------------------------------------------
    @property
    def speech_seconds(self) -> float:
        """Seconds inside utterances (an open one up to the audio captured)."""
        with self.lock:
            return sum(max(0.0, (b if b is not None else self.audio) - a) for a, b, _ in self.spans)

    @property
    def wall_seconds(self) -> float:
        return (self.last_wall - self.first_wall) if self.first_wall is not None else 0.0

    def emotion_shares(self) -> list[tuple[str, float]]:
        """(label, share of windows), most frequent first."""
        total = sum(self.emotion_counts.values())
        return [(k, n / total) for k, n in self.emotion_counts.most_common()] if total else []

    def summary(self) -> dict[str, Any]:
        """The session's totals, as a row of ``calls.parquet`` and the report's
        summary.  Keys: ``source``, ``duration_s`` (audio captured; the last
        window may be padded past it), ``speech_s`` (VAD), ``windows``,
        ``shares`` ({label: share of windows}), ``dominant`` (most frequent
        label, None without windows), ``arousal_mean``/``arousal_peak`` (None
        if the model gives none), ``negative_run_s``, ``words``, ``spans``
        (final transcript spans), ``latency_ms`` ({stage: {p50, p95, max}}),
        ``health`` (overflows, dropped samples/windows, skipped transcript
        audio, clipped samples, warnings seen), ``wall_s`` (first to last
        emission), ``events`` ({type: count})."""
        with self.lock:
            windows = sum(self.emotion_counts.values())
            last = self.status
            return {
                "source": self.source_name,
                "duration_s": round(self.audio, 3),
                "speech_s": round(sum(max(0.0, (b if b is not None else self.audio) - a) for a, b, _ in self.spans), 3),
                "windows": windows,
                "shares": {k: round(n / windows, 4) for k, n in self.emotion_counts.most_common()},
                "dominant": self.emotion_counts.most_common(1)[0][0] if windows else None,
                "arousal_mean": round(float(np.mean(self.arousal)), 4) if self.arousal else None,
                "arousal_peak": round(float(max(self.arousal)), 4) if self.arousal else None,
                "negative_run_s": round(self.negative_run, 3),
                "words": self.words,
                "spans": self.committed,
                "latency_ms": {stage: {k: round(v, 1) for k, v in percentiles(ms).items()}
                               for stage, ms in self.latency.items() if ms},
                "health": {
                    "overflows": last.overflows if last else 0,
                    "dropped_samples": last.dropped_samples if last else 0,
                    "dropped_windows": last.dropped_windows if last else 0,
                    "skipped_audio_s": last.skipped_audio_s if last else 0.0,
                    "clipped_samples": self.clipped,
                    "warnings": list(self.warnings),
                },
                "wall_s": round(self.wall_seconds, 3),
                "events": dict(self.counts),
            }


def summarise(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """:meth:`SessionState.summary` of a session's event dicts (a JSONL
    file's lines), in the order written."""
    state = SessionState()
    for d in events:
        state.update(event_from_dict(d))
    return state.summary()
