"""The pipeline: source -> ring buffer -> VAD -> windows -> emotion worker and
transcriber -> events.

One audio block's path: ``Source.blocks()`` yields it on the capture thread,
which writes it into the :class:`RingBuffer` (the clock), pushes it through the
:class:`VadGate`, lets the :class:`Windower` turn utterances into
:class:`EmotionWindow` s for the :class:`EmotionWorker`, and tells the
:class:`Transcriber` where utterances start and end.  Both workers read the
audio back from the ring and emit events into one queue, which
:meth:`Pipeline.events` yields on the caller's thread.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from .emotion import EmotionModel, EmotionOptions, EmotionWorker
from .events import EmotionEvent, Event, SpeechEvent, StatusEvent, TranscriptEvent
from .features import SAMPLE_RATE, warm_up
from .limits import check_number
from .ring import RingBuffer
from .sources import DeviceLost, FileSource, MicSource, Source
from .transcribe import TranscribeOptions, Transcriber, load_whisper
from .vad import VadGate, VadOptions
from .windows import Windower, WindowOptions

UNHEARD_SECONDS, UNHEARD_PEAK = 10.0, 0.01  # no speech for 10 s and no sample above -40 dBFS: warn


@dataclass
class PipelineOptions:
    """Everything the pipeline can be told, with the defaults the CLI uses.

    Attributes:
        vad, window, emotion, transcribe: the stages' options.
        transcript: run the transcript stage.
        ring_seconds: audio kept in the ring buffer.
        status_interval: wall seconds between status events.
        tag_wait: a transcript span with no emotion window yet waits at most
            this long (wall seconds) for one before it is emitted untagged.
    """

    vad: VadOptions = field(default_factory=VadOptions)
    window: WindowOptions = field(default_factory=WindowOptions)
    emotion: EmotionOptions = field(default_factory=EmotionOptions)
    transcribe: TranscribeOptions = field(default_factory=TranscribeOptions)
    transcript: bool = True
    ring_seconds: float = 120.0
    status_interval: float = 1.0
    tag_wait: float = 0.5

    def check(self) -> None:
        """Every stage's :meth:`check`, and ``ring_seconds`` 10-3600, ``status_interval``
        0.05-3600, ``tag_wait`` 0-60 (seconds); raises :class:`~stream_ser.limits.OptionError`."""
        self.vad.check()
        self.window.check()
        self.emotion.check()
        check_number("ring_seconds", self.ring_seconds, 10.0, 3600.0, " seconds")
        check_number("status_interval", self.status_interval, 0.05, 3600.0, " seconds")
        check_number("tag_wait", self.tag_wait, 0.0, 60.0, " seconds")


def tag_emotion(start: float, end: float, emotions: list[EmotionEvent]) -> dict | None:
    """Overlap-weighted emotion of ``[start, end)`` from the windows covering it."""
    total, probs = 0.0, None
    for e in emotions:
        overlap = min(end, e.end) - max(start, e.start)
        if end <= start:  # a zero-length span: windows containing the point
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


class Pipeline:
    """Runs one source through every stage.  Models load in the constructor,
    before the source opens.  Iterate :meth:`events` on one thread; call
    :meth:`stop` from any thread (or a signal handler) to end early: audio
    already captured is still analysed and its events are yielded."""

    def __init__(self, source: Source, options: PipelineOptions | None = None, *, emotion_model=None, whisper_model=None):
        self.source = source
        self.options = o = options or PipelineOptions()
        o.check()  # before any model loads
        self.emotion_model = emotion_model or EmotionModel(o.emotion.models_dir, neutral_bias=o.emotion.neutral_bias)
        self.whisper = (whisper_model or load_whisper(o.transcribe)) if o.transcript else None
        warm_up()
        self.ring = RingBuffer(o.ring_seconds)
        self.gate = VadGate(o.vad)
        self.windower = Windower(o.window)
        self._out: queue.Queue = queue.Queue()
        self.emotion = EmotionWorker(self.emotion_model, self.ring, self._out.put, o.emotion)
        self.transcriber = Transcriber(self.whisper, self.ring, self._out.put, o.transcribe, live=source.live) if self.whisper else None
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.dropped_windows = 0
        self._level_sq, self._level_n, self._peak, self._clipped = 0.0, 0, 0.0, 0
        self._speech_sq, self._speech_n = 0.0, 0  # level of the blocks the VAD calls speech
        self._speech_recent: deque = deque(maxlen=3)  # ... in the last three status intervals
        self._heard_any = False  # has the VAD heard speech in this session?
        self._unheard, self._unheard_peak = 0, 0.0  # samples before it did, and their peak
        self._last_status = 0.0
        self._losses_seen = (0, 0)
        self._skipped_seen = 0.0
        self._bad_seen = (0, 0)
        self._status_from = 0
        self._utterance = -1

    # ---- capture thread ---------------------------------------------------
    def _dispatch_windows(self, windows) -> None:
        for w in windows:
            if self.source.live:
                try:
                    self.emotion.windows.put_nowait(w)
                except queue.Full:
                    self.dropped_windows += 1
            else:
                self.emotion.windows.put(w)  # back-pressure

    def _status(self) -> None:
        now = time.time()
        written = self.ring.written
        level = 10 * math.log10(self._level_sq / self._level_n) if self._level_n and self._level_sq > 0 else -math.inf
        audio_s = max(written / SAMPLE_RATE, 1e-9)
        ratio = {"emotion": round(self.emotion.compute_seconds / audio_s, 4)}
        if self.transcriber:
            ratio["transcript"] = round(self.transcriber.compute_seconds / audio_s, 4)
        dropped = self.source.dropped_samples + self.ring.overrun_samples
        warnings = []
        if self._clipped:
            warnings.append(f"clipping ({self._clipped} samples)")
        # judged on speech only: room noise in a pause is quiet and that is fine
        # over the last few intervals' speech: the soft tail of a sentence alone is not a quiet microphone
        self._speech_recent.append((self._speech_sq, self._speech_n))
        speech_sq, speech_n = map(sum, zip(*self._speech_recent))
        if speech_n >= SAMPLE_RATE // 2 and 10 * math.log10(speech_sq / speech_n + 1e-20) < -45:
            warnings.append("input very quiet")
        # speech too quiet for the VAD is never "speech", so the level check above
        # never runs: say so when a session has heard no speech at all for a
        # while and even its loudest sample is faint (speech peaks far above
        # -40 dBFS); a pause after speech is not a microphone problem
        if not self._heard_any and self._unheard >= UNHEARD_SECONDS * SAMPLE_RATE and self._unheard_peak < UNHEARD_PEAK:
            faint = "silent" if self._unheard_peak == 0 else f"very quiet (peak {20 * math.log10(self._unheard_peak):.0f} dBFS)"
            advice = ": check the microphone gain" if self.source.live else ""
            warnings.append(f"no speech in the first {self._unheard / SAMPLE_RATE:.0f} s, input {faint}{advice}")
        # warn while losses grow, not for the rest of the session after one
        if dropped > self._losses_seen[0] or self.dropped_windows > self._losses_seen[1]:
            warnings.append("audio is being dropped")
        self._losses_seen = (dropped, self.dropped_windows)
        bad = (self.source.nonfinite_samples, self.source.loud_samples)  # counted by the source's Conditioner
        if bad[0] > self._bad_seen[0]:
            warnings.append(f"{bad[0] - self._bad_seen[0]} NaN or infinite samples in the input, replaced by silence")
        if bad[1] > self._bad_seen[1]:
            warnings.append(f"{bad[1] - self._bad_seen[1]} samples beyond 100x full scale: is the recording's scale wrong?")
        self._bad_seen = bad
        skipped = self.transcriber.skipped_seconds if self.transcriber else 0.0
        if skipped > self._skipped_seen:
            warnings.append(f"transcript behind: skipped {skipped:.1f} s of audio")
        self._skipped_seen = skipped
        queues = {"emotion": self.emotion.windows.qsize()}
        ev = StatusEvent(type="status", start=round(self._status_from / SAMPLE_RATE, 3), end=round(written / SAMPLE_RATE, 3),
                         emitted_at=now, latency_ms=0.0, source=self.source.name, sample_rate=self.source.sample_rate,
                         level_dbfs=round(level, 1) if math.isfinite(level) else -math.inf, peak=round(self._peak, 4),
                         clipped_samples=self._clipped, overflows=self.source.overflows, dropped_samples=dropped,
                         dropped_windows=self.dropped_windows,
                         skipped_audio_s=round(self.transcriber.skipped_seconds, 2) if self.transcriber else 0.0,
                         queues=queues, compute_ratio=ratio, in_speech=self.gate.in_speech, warnings=warnings)
        self._out.put(ev)
        self._level_sq, self._level_n, self._peak, self._clipped = 0.0, 0, 0.0, 0
        self._speech_sq, self._speech_n = 0.0, 0
        self._status_from = written
        self._last_status = now

    def _route(self, utterances, captured_at: float) -> None:
        for u in utterances:
            if u.kind == "start":
                self.windower.utterance_started(u.sample)
                self._utterance += 1
            else:
                self.windower.utterance_ended(u.sample)
            if self.transcriber:
                self.transcriber.utterance(u)
            self._out.put(SpeechEvent(type="speech", start=round(u.sample / SAMPLE_RATE, 3), end=round(u.sample / SAMPLE_RATE, 3),
                                      emitted_at=time.time(), latency_ms=round((time.time() - captured_at) * 1000, 2),
                                      state=u.kind, utterance=self._utterance))
            self._dispatch_windows(self.windower.ready(self.ring.written, self.gate.speech_until))

    def _capture(self) -> None:
        try:
            for block, captured_at in self.source.blocks():
                self.ring.write(block, captured_at, wait=not self.source.live)
                self._level_sq += float(np.dot(block, block))
                self._level_n += len(block)
                peak = float(np.abs(block).max(initial=0.0))
                self._peak = max(self._peak, peak)
                self._clipped += int(np.count_nonzero(np.abs(block) >= 0.999))
                self._route(self.gate.push(block), captured_at)
                if self.gate.in_speech:
                    self._speech_sq += float(np.dot(block, block))
                    self._speech_n += len(block)
                    self._heard_any = True
                elif not self._heard_any:
                    self._unheard += len(block)
                    self._unheard_peak = max(self._unheard_peak, peak)
                self._dispatch_windows(self.windower.ready(self.ring.written, self.gate.speech_until))
                if time.time() - self._last_status >= self.options.status_interval:
                    self._status()
                if self._stop.is_set():
                    break
        except BaseException as e:
            self.error = e
        finally:
            try:
                self.source.close()
                try:
                    self._route(self.gate.flush(), time.time())
                    self._dispatch_windows(self.windower.flush(self.ring.written))
                finally:
                    self.emotion.windows.put(None)
                    if self.transcriber:
                        self.transcriber.finish()
                    self.ring.close()
                    self.emotion.join()
                    if self.transcriber:
                        # stopping early: the open utterance gets a moment for its last commit
                        self.transcriber.join(None if not self._stop.is_set() else 0.7)
                        if self.transcriber.is_alive():
                            self.transcriber.stop()
                            self.transcriber.join(0.5)
                            self.transcriber.commit_hypotheses()  # the words shown so far stay in the files
                    self._status()
                    for worker in (self.emotion, self.transcriber):
                        if worker is not None and worker.error is not None and self.error is None:
                            self.error = worker.error
            except Exception as e:  # reported; the events end all the same
                self.error = self.error or e
            finally:
                self._out.put(None)  # a caller of events() must never wait forever

    # ---- caller's thread --------------------------------------------------
    def events(self) -> Iterator[Event]:
        """Start the stages and yield every event until the source ends or
        :meth:`stop`.  Raises the source's error (e.g. :class:`DeviceLost`)
        after the events produced before it."""
        self.emotion.start()
        if self.transcriber:
            self.transcriber.start()
        capture = threading.Thread(target=self._capture, name="capture", daemon=True)
        capture.start()
        emotions: list[EmotionEvent] = []
        held: list[TranscriptEvent] = []

        def release(ev: TranscriptEvent, now: float) -> TranscriptEvent:
            ev.emotion = tag_emotion(ev.start, ev.end, emotions)
            captured = ev.emitted_at - ev.latency_ms / 1000
            ev.emitted_at, ev.latency_ms = now, round((now - captured) * 1000, 1)
            return ev

        done = False
        while not done or held:
            try:
                ev = self._out.get(timeout=0.05) if not done else None
            except queue.Empty:
                ev = False
            if ev is None:
                done = True
            elif ev is not False:
                if isinstance(ev, EmotionEvent):
                    emotions.append(ev)
                    emotions = [e for e in emotions if e.end > ev.start - 120]
                if isinstance(ev, TranscriptEvent) and ev.final and ev.text:
                    if tag_emotion(ev.start, ev.end, emotions) is None and not done:
                        held.append(ev)
                        continue
                    ev = release(ev, time.time())
                yield ev
            now = time.time()
            for h in list(held):
                if done or now - h.emitted_at >= self.options.tag_wait or tag_emotion(h.start, h.end, emotions):
                    held.remove(h)
                    yield release(h, now)
        capture.join(2.0)
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """End early (thread- and signal-safe): capture stops, the rest is analysed."""
        self._stop.set()
        # only a flag: closing a PortAudio stream from another thread (a key
        # handler, a signal handler) can block; the capture thread closes it
        self.source.request_stop()
        self.ring.close()  # no more audio: a capture thread waiting on back-pressure moves on


def replay(path: str, speed: float = 0.0, options: PipelineOptions | None = None) -> Iterator[Event]:
    """Events of a recording: ``for ev in stream_ser.replay("call.wav"): ...``.
    ``speed`` 0 runs as fast as possible (nothing dropped), 1 at real-time pace."""
    yield from Pipeline(FileSource(path, speed=speed), options).events()


def listen(device: str | int | None = None, options: PipelineOptions | None = None) -> Iterator[Event]:
    """Events of a live input device (index or name substring; None: default)."""
    yield from Pipeline(MicSource(device), options).events()


__all__ = ["Pipeline", "PipelineOptions", "replay", "listen", "DeviceLost"]
