"""The pipeline: source -> ring buffer -> segmenter -> emotion worker and
transcriber -> events.  Only wiring and lifetimes live here.

One audio block's path: ``Source.blocks()`` yields it on the capture thread,
which writes it into the :class:`RingBuffer` (the clock), meters it
(:class:`InputMeter`) and pushes it through the :class:`Segmenter` (VAD gate +
windower).  The :class:`EmotionWindow` s it completes go to the
:class:`EmotionWorker`'s queue; the utterance starts and ends go to the
:class:`Transcriber`.  Both workers read the audio back from the ring and emit
events into one queue, which :meth:`Pipeline.events` yields on the caller's
thread after the :class:`TranscriptTagger` has tagged the transcript.

Threads: capture, emotion (with its feature threads when windows wait) and
transcriber, joined by bounded queues.  No put
or get waits forever: each also watches the pipeline's halt flag, which a
failing stage or :meth:`Pipeline.close` sets.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
import weakref
from dataclasses import dataclass, field, replace
from typing import Iterator

from .emotion import EmotionModel, EmotionOptions, EmotionWorker
from .errors import DeviceLost, ModelError, SourceError, StageError
from .events import Event, SpeechEvent, StatusEvent
from .features import SAMPLE_RATE, warm_up
from .limits import check_number
from .meter import InputMeter
from .ring import RingBuffer
from .sources import FileSource, MicSource, Source
from .tagging import TranscriptTagger
from .transcribe import TranscribeOptions, Transcriber, load_whisper
from .vad import VadOptions
from .windows import Segmenter, WindowOptions

log = logging.getLogger("stream_ser")


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


def check_window_options(trained: dict | None, options: WindowOptions, where: str = "the emotion model") -> None:
    """Refuse a run whose windows start elsewhere than the model's training
    windows (``labels.json`` ``window``); warn, in one line, about another hop
    (windows are then denser or sparser, each still cut as in training)."""
    if not trained:
        return
    lead = trained.get("lead")
    if isinstance(lead, (int, float)) and abs(lead - options.lead) > 1e-6:
        raise ModelError(f"{where} was trained on windows starting {lead:g} s before the speech onset; "
                         f"this run's start {options.lead:g} s before it (WindowOptions.lead)")
    hop = trained.get("hop")
    if isinstance(hop, (int, float)) and abs(hop - options.hop) > 1e-6:
        log.warning("%s was trained with windows every %g s; this run cuts one every %g s", where, hop, options.hop)


class Pipeline:
    """Runs one source through every stage.

    Models load in the constructor, before the source opens (pass loaded
    ``emotion_model`` / ``whisper_model`` to share them between pipelines).
    Iterate :meth:`events` once, on one thread.  :meth:`stop` (any thread, or
    a signal handler) ends early: capture stops, and audio already captured is
    still analysed and its events are yielded.  :meth:`close` (or leaving a
    ``with`` block, or leaving :meth:`events` by ``break``, an exception or
    garbage collection) stops every stage now: within 2 s every thread is
    joined and the source (the device) is closed.

    A stage that raises ends the session within 1 s: :meth:`events` yields the
    events produced before it, then raises :class:`StageError` naming the
    stage.  A source that ends with a :class:`SourceError` (a device that
    vanished, a truncated file) is an end, not a crash: what was captured is
    analysed, then the error is raised.
    """

    def __init__(self, source: Source, options: PipelineOptions | None = None, *, emotion_model=None, whisper_model=None):
        self.source = source
        self.options = o = options or PipelineOptions()
        o.check()  # before any model loads
        self._threads: list[threading.Thread] = []
        self._started = False
        self._halt = threading.Event()  # abort: every stage stops now
        self._stop = threading.Event()  # end early: capture stops, the rest is analysed
        try:
            self.emotion_model = emotion_model or EmotionModel(o.emotion.models_dir, neutral_bias=o.emotion.neutral_bias, device=o.emotion.device)
            check_window_options(getattr(self.emotion_model, "window", None), o.window)
            self.whisper = (whisper_model or load_whisper(o.transcribe)) if o.transcript else None
            if getattr(self.emotion_model, "features", "mfcc") == "mfcc":  # a whisper model needs no librosa
                warm_up()
        except BaseException:
            source.close()  # a model that does not load leaves no file or device open
            raise
        self.ring = RingBuffer(o.ring_seconds)
        self.segmenter = Segmenter(o.vad, o.window)
        self.meter = InputMeter(source.live)
        self._out: queue.Queue = queue.Queue()
        emotion = o.emotion
        if self.whisper and emotion.feature_threads > 1:
            # the transcriber's decodes hold a core and are the slower stage: the emotion stage keeps to the others
            emotion = replace(emotion, feature_threads=max(1, min(emotion.feature_threads, (os.cpu_count() or 1) - 1)))
        on_error = _weak(self._fail)
        self.emotion = EmotionWorker(self.emotion_model, self.ring, self._out.put, emotion, on_error=on_error)
        self.transcriber = (Transcriber(self.whisper, self.ring, self._out.put, o.transcribe, live=source.live, on_error=on_error,
                                          partials=getattr(source, "speed", 1) != 0)
                            if self.whisper else None)
        self._failure: StageError | None = None
        self._failure_lock = threading.Lock()
        self._frames_cleared = False
        self.error: SourceError | None = None  # how the source ended, if not cleanly
        self.dropped_windows = 0
        self._last_status = 0.0
        self._losses_seen = (0, 0)
        self._skipped_seen = 0.0
        self._bad_seen = (0, 0)
        self._status_from = 0

    # ---- lifetimes ----------------------------------------------------------
    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def __del__(self):
        try:
            self.close(timeout=0.0)
        except Exception:
            pass

    def stop(self) -> None:
        """End early (thread- and signal-safe): capture stops, the rest is analysed."""
        self._stop.set()
        # only a flag: closing a PortAudio stream from another thread (a key
        # handler, a signal handler) can block; the capture thread closes it
        self.source.request_stop()
        self.ring.close()  # no more audio: a capture thread waiting on back-pressure moves on

    def close(self, timeout: float = 2.0) -> None:
        """Stop every stage now, join the threads (at most ``timeout`` s) and
        close the source.  Idempotent; call it from any thread but a stage's."""
        if not hasattr(self, "_out"):  # the constructor failed: it closed the source
            return
        self._abort()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            if t is not threading.current_thread() and t.ident is not None:  # (events() may be starting them now)
                t.join(max(0.0, deadline - time.monotonic()))
        if not any(t.name == "capture" and t.is_alive() for t in self._threads):
            self.source.close()  # else the capture thread closes it on its way out
        if not self.alive_threads:
            self._clear_error_frames()

    def _clear_error_frames(self) -> None:
        """The errors kept for the caller hold their tracebacks, whose frames
        (and the frames that called them) hold the stage that raised, its
        model, and this pipeline.  Once the stage threads have ended, the
        locals of those threads' frames go (the file and line of each stay),
        so no cycle waits for the garbage collector.  Once, and never after
        :meth:`events` has raised: the caller's own frames are not touched
        (nor the frames of threads that outlived close's timeout)."""
        if self._frames_cleared:
            return
        self._frames_cleared = True
        errors = [self._failure, self.error, self.emotion.error, self.transcriber.error if self.transcriber else None]
        seen: set[int] = set()
        while errors:
            error = errors.pop()
            if error is None or id(error) in seen:
                continue
            seen.add(id(error))
            tb = error.__traceback__
            while tb is not None:
                _clear_stack(tb.tb_frame)
                tb = tb.tb_next
            errors += [error.__cause__, error.__context__]

    def _abort(self) -> None:
        self._halt.set()
        self._stop.set()
        self.source.request_stop()
        self.ring.close()  # wakes a writer waiting for back-pressure and readers waiting for audio
        self.emotion.stop()
        if self.transcriber:
            self.transcriber.stop()

    def _fail(self, stage: str, error: BaseException) -> None:
        """A stage raised: the session ends now (the first failure is reported)."""
        with self._failure_lock:
            if self._failure is None:
                self._failure = error if isinstance(error, StageError) else StageError(stage, error)
                if self._failure is not error:
                    self._failure.__cause__ = error
        self._abort()

    @property
    def alive_threads(self) -> list[threading.Thread]:
        """The pipeline's threads still running (none after :meth:`close`)."""
        return [t for t in self._threads if t.is_alive()]

    # ---- capture thread ---------------------------------------------------
    def _dispatch(self, windows) -> None:
        for w in windows:
            if self.source.live:  # never slow a live source: drop, and count it
                try:
                    self.emotion.windows.put_nowait(w)
                except queue.Full:
                    self.dropped_windows += 1
                continue
            while not self._halt.is_set():  # back-pressure, but never past a halt
                try:
                    self.emotion.windows.put(w, timeout=0.1)
                    break
                except queue.Full:
                    pass

    def _route(self, utterances, captured_at: float) -> None:
        for u in utterances:
            if self.transcriber:
                self.transcriber.utterance(u)
            now = time.time()
            t = round(u.sample / SAMPLE_RATE, 3)
            self._out.put(SpeechEvent(type="speech", start=t, end=t, emitted_at=now,
                                      latency_ms=round((now - captured_at) * 1000, 2), state=u.kind, utterance=u.index))

    def _status(self) -> None:
        now = time.time()
        written = self.ring.written
        audio_s = max(written / SAMPLE_RATE, 1e-9)
        cpu = {"emotion": round(self.emotion.cpu_seconds / audio_s, 4)}
        wall = {"emotion": round(self.emotion.compute_seconds / audio_s, 4)}
        if self.transcriber:
            cpu["transcript"] = round(self.transcriber.cpu_seconds / audio_s, 4)
            wall["transcript"] = round(self.transcriber.compute_seconds / audio_s, 4)
        m = self.meter.take()
        dropped = self.source.dropped_samples + self.ring.overrun_samples
        warnings = m["warnings"]
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
        self._out.put(StatusEvent(
            type="status", start=round(self._status_from / SAMPLE_RATE, 3), end=round(written / SAMPLE_RATE, 3),
            emitted_at=now, latency_ms=0.0, source=self.source.name, sample_rate=self.source.sample_rate,
            level_dbfs=-math.inf if m["level_dbfs"] is None else m["level_dbfs"], peak=m["peak"], clipped_samples=m["clipped_samples"],
            overflows=self.source.overflows, dropped_samples=dropped, dropped_windows=self.dropped_windows,
            skipped_audio_s=round(skipped, 2), queues={"emotion": self.emotion.windows.qsize()},
            compute_ratio=cpu, wall_ratio=wall, in_speech=self.segmenter.in_speech, warnings=warnings))
        self._status_from = written
        self._last_status = now

    def _capture(self) -> None:
        try:
            self._feed()
        finally:
            self._drain()

    def _feed(self) -> None:
        blocks = self.source.blocks()
        while not self._stop.is_set():
            try:
                item = next(blocks, None)
            except SourceError as e:  # the source ended badly: what came before is analysed
                self.error = e
                return
            except Exception as e:
                return self._fail("source", e)
            if item is None:
                return
            block, captured_at = item
            try:
                self.ring.write(block, captured_at, wait=not self.source.live)
                utterances, windows = self.segmenter.push(block)
                self.meter.add(block, self.segmenter.in_speech)
            except StageError as e:
                return self._fail(e.stage, e)
            except Exception as e:
                return self._fail("capture", e)
            self._route(utterances, captured_at)
            if self.transcriber:  # after the utterances: an end before this point has been sent
                self.transcriber.decided(self.segmenter.decided_until)
            self._dispatch(windows)
            if time.time() - self._last_status >= self.options.status_interval:
                self._status()

    def _drain(self) -> None:
        """End of capture: close the source, finish the open utterance, let the
        workers finish (unless halted), a last status, then the end marker."""
        try:
            self.source.close()
            if not self._halt.is_set():
                try:
                    utterances, windows = self.segmenter.flush()
                except StageError as e:
                    self._fail(e.stage, e)
                else:
                    self._route(utterances, time.time())
                    self._dispatch(windows)
            self.emotion.finish()
            if self.transcriber:
                self.transcriber.finish()
            self.ring.close()
            while self.emotion.is_alive() and not self._halt.is_set():
                self.emotion.join(0.1)
            if self.transcriber:
                # stopping early: the open utterance gets a moment for its last commit
                deadline = time.monotonic() + (0.7 if self._stop.is_set() else float("inf"))
                while self.transcriber.is_alive() and not self._halt.is_set() and time.monotonic() < deadline:
                    self.transcriber.join(0.1)
                if self.transcriber.is_alive() and not self._halt.is_set():
                    self.transcriber.stop()
                    self.transcriber.join(0.5)
                    self.transcriber.commit_hypotheses()  # the words shown so far stay in the files
            if not self._halt.is_set():
                self._status()
        except Exception as e:
            self._fail("capture", e)
        finally:
            self._out.put(None)  # a caller of events() never waits forever

    # ---- caller's thread --------------------------------------------------
    def _start(self) -> None:
        if self._started:
            raise RuntimeError("Pipeline.events() can be iterated only once")
        self._started = True
        capture = threading.Thread(target=self._capture, name="capture", daemon=True)
        self._threads = [self.emotion, capture] + ([self.transcriber] if self.transcriber else [])
        for t in self._threads:
            t.start()

    def events(self) -> Iterator[Event]:
        """Start the stages and yield every event until the source ends or
        :meth:`stop`.  Raises :class:`StageError` when a stage fails, or the
        source's :class:`SourceError` (e.g. :class:`DeviceLost`), after the
        events produced before it.  Leaving the loop early closes the pipeline."""
        self._start()
        tagger = TranscriptTagger(self.options.tag_wait)
        try:
            done = False
            while not done and self._failure is None:
                try:
                    ev = self._out.get(timeout=0.05)
                except queue.Empty:
                    ev = False
                now = time.time()
                if ev is None:
                    done = True
                    yield from tagger.due(now, final=True)
                elif ev is False:
                    yield from tagger.due(now)
                else:
                    yield from tagger.feed(ev, now)
            if self._failure is not None:
                # the events produced before the failure, then the failure
                while True:
                    try:
                        ev = self._out.get_nowait()
                    except queue.Empty:
                        break
                    if ev is not None:
                        yield from tagger.feed(ev, time.time())
                yield from tagger.due(time.time(), final=True)
                failure = self._failure
            else:
                failure = self.error
        finally:
            self.close()
        if failure is not None:
            # the error is also kept on this pipeline, and its traceback will hold this frame:
            # without `self` in the frame, that is not a cycle that keeps the models alive
            self._frames_cleared = True  # from here on the traceback holds the caller's frames too
            del self
            raise failure


def _clear_stack(frame) -> None:
    """Clear ``frame``'s locals and its callers', up to the first still running
    (an ended thread's stack: e.g. ``_feed``'s caller ``_capture`` holds the pipeline)."""
    while frame is not None:
        try:
            frame.clear()
        except RuntimeError:  # still running: not an ended stage thread's frame
            return
        frame = frame.f_back


def _weak(method):
    """``method`` of an object, called only while the object lives.  The stages
    hold their pipeline's error callback: a strong one would make a reference
    cycle that keeps the models (about 80 MiB with the transcript,
    bench/results/archive/api_loop_c688982_before_weak_callback.json) alive until
    the cyclic garbage collector runs, so a loop over files would grow.  (A run
    that ends in an error: :meth:`Pipeline._clear_error_frames`.)"""
    ref = weakref.WeakMethod(method)

    def call(*args):
        bound = ref()
        if bound is not None:
            bound(*args)
    return call


def replay(path: str, speed: float = 0.0, options: PipelineOptions | None = None) -> Iterator[Event]:
    """Events of a recording: ``for ev in stream_ser.replay("call.wav"): ...``.
    ``speed`` 0 runs as fast as possible (nothing dropped), 1 at real-time pace.
    Leaving the loop early stops the pipeline and closes the file."""
    with Pipeline(FileSource(path, speed=speed), options) as p:
        yield from p.events()


def listen(device: str | int | None = None, options: PipelineOptions | None = None) -> Iterator[Event]:
    """Events of a live input device (index or name substring; None: default).
    Leaving the loop early stops the pipeline and closes the device."""
    with Pipeline(MicSource(device), options) as p:
        yield from p.events()


__all__ = ["Pipeline", "PipelineOptions", "replay", "listen", "DeviceLost", "StageError"]
