"""Emotion stage: the shipped model, and the worker thread that classifies windows."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .cpu import claim, native_threads
from .errors import ModelError
from .events import EmotionEvent
from .labels import arousal
from .limits import OptionError, check_number
from .quiet import quiet_stderr, quiet_tensorflow
from .features import N_FEATURES, N_FRAMES, SAMPLE_RATE, extractor, kind_of, limit_blas, normaliser, probe_mismatch
from .ring import RingBuffer
from .windows import EmotionWindow

def _bundled_models() -> Path:
    """The shipped emotion model: ``stream_ser/models`` in an installed package,
    ``models/`` beside the package in a source checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "models"
    return installed if (installed / "labels.json").is_file() else here.parent / "models"


DEFAULT_MODELS = _bundled_models()


def input_shape(features: str) -> tuple[int, int]:
    """A model's input for one window: (108, 22) tracks, or one frame of the
    whisper encoder's 768 values."""
    if features == "whisper":
        from .whisper_states import N_VALUES

        return (1, N_VALUES)
    return (N_FRAMES, N_FEATURES)


def load_error(e: BaseException) -> str:
    """One line for a model file that does not load."""
    why = str(e).splitlines()[0] if str(e) else type(e).__name__
    # Keras says "File not found" for any file that is not a .keras zip
    return "not a .keras model file" if why.startswith("File not found") else why


def read_log_prior(meta: dict, labels, where) -> dict[str, float]:
    """``labels.json``'s ``"log_prior"`` ({label: number}, may be absent)."""
    raw = meta.get("log_prior") or {}
    try:
        prior = {str(k): float(v) for k, v in raw.items()}
        if not set(prior) <= set(labels) or not all(np.isfinite(v) for v in prior.values()):
            raise ValueError
    except (AttributeError, TypeError, ValueError):
        raise ModelError(f"{where}: \"log_prior\" must map class labels to finite numbers") from None
    return prior


def prior_weights(labels, neutral_shift: float) -> np.ndarray:
    """Per-class factors that move the neutral log-prior by ``neutral_shift``."""
    shift = np.zeros(len(labels))
    shift[list(labels).index("neutral")] = neutral_shift
    return np.exp(shift - shift.max())  # only ratios matter; no overflow for a large shift


def reweight(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Probabilities under other class priors: ``probs * weights``, renormalised
    (last axis).  The stream (:class:`EmotionModel`) and ``stream-ser evaluate``
    both apply a model's neutral prior through here."""
    out = probs * weights
    total = out.sum(axis=-1, keepdims=True)
    # a prior that only favours classes the model gives exactly 0 cannot decide: keep the model's
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), probs)


class EmotionModel:
    """The shipped emotion classifier from a models directory:
    ``labels.json``, and ``emotion.tflite`` (fast path) or ``emotion.keras``.
    :attr:`extract` is the feature extractor it was trained on
    (:func:`~stream_ser.features.extractor`; for ``"whisper"`` features the
    bundled whisper model loads with it).

    :meth:`predict` is called from one thread (the emotion worker); the TFLite
    interpreter is not thread-safe.
    """

    def __init__(self, models_dir: str | os.PathLike = DEFAULT_MODELS, prefer: str = "tflite", threads: int = 1,
                 neutral_bias: float | None = None, device: str = "auto"):
        models_dir = Path(models_dir)
        labels_path = models_dir / "labels.json"
        if models_dir.is_file():
            raise ModelError(f"emotion model {models_dir} is a file: pass a models directory (one holding labels.json)")
        if not labels_path.is_file():
            raise ModelError(f"emotion model labels not found: {labels_path} (train one with `stream-ser train`)")
        try:
            meta = json.loads(labels_path.read_text())
            self.labels = tuple(meta["labels"])
            if not self.labels or not all(isinstance(x, str) for x in self.labels):
                raise ValueError
            self.normalisation = meta.get("normalisation") if isinstance(meta.get("normalisation"), dict) else None
            normaliser(self.normalisation)  # fails here, not in the first window
        except Exception:
            raise ModelError(f"{labels_path}: not a valid labels file (expected {{\"labels\": [...]}})") from None
        try:
            # the features it was trained on; the whisper encoder loads here, before any stream opens
            self.features = kind_of(self.normalisation)
            before = native_threads()
            self.extract = extractor(self.features)
            if before is not None:  # the encoder's CTranslate2 workers: their CPU is this stage's, not the decoder's
                claim(native_threads() - before)
            limit_blas()  # whisper's log-mel is numpy too: one BLAS thread, as for the 22 tracks
        except ValueError as e:
            raise ModelError(f"{labels_path}: {e}") from None
        problem = probe_mismatch(self.normalisation)  # train/serve skew: refuse, never guess
        if problem:
            raise ModelError(f"emotion model in {models_dir} was {problem}")
        self.input_shape = input_shape(self.features)
        # the model files hold the trained network; its deployment prior
        # (`stream-ser export --neutral-bias`) is applied here, and --neutral-bias replaces it
        self.log_prior = read_log_prior(meta, self.labels, labels_path)
        self.window = meta.get("window") if isinstance(meta.get("window"), dict) else None  # options it was trained with
        if neutral_bias is not None and "neutral" not in self.labels:
            raise ModelError(f"--neutral-bias: the model in {models_dir} has no 'neutral' class")
        self.neutral_bias = self.log_prior.get("neutral", 0.0) if neutral_bias is None else float(neutral_bias)
        self._reweight = prior_weights(self.labels, self.neutral_bias) if self.neutral_bias else None
        quiet_tensorflow()
        if device == "cpu":  # a Keras model would otherwise take any GPU TensorFlow finds
            from .device import tensorflow_cpu_only

            tensorflow_cpu_only()
        tflite, keras_path = models_dir / "emotion.tflite", models_dir / "emotion.keras"
        self.form = None
        errors = []
        for form in ([("tflite", tflite), ("keras", keras_path)] if prefer == "tflite" else [("keras", keras_path), ("tflite", tflite)]):
            name, path = form
            if not path.is_file():
                continue
            try:
                with quiet_stderr():
                    self._load(name, path, threads)
                    self._run(np.zeros(self.input_shape, dtype=np.float32))
                self.form, self.path = name, path
                break
            except Exception as e:
                errors.append(f"{path.name}: {load_error(e)}")
        if self.form is None:
            if errors:
                raise ModelError(f"emotion model in {models_dir} is corrupt ({'; '.join(errors)})")
            raise ModelError(f"emotion model not found in {models_dir} (expected emotion.tflite or emotion.keras)")
        probs = self.predict(np.zeros(self.input_shape, dtype=np.float32))
        if probs.shape != (len(self.labels),):
            raise ModelError(f"{labels_path}: {len(self.labels)} labels but the model has {probs.shape[-1]} outputs")

    def _load(self, form: str, path: Path, threads: int) -> None:
        import warnings

        import tensorflow as tf

        if form == "tflite":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                interp = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
            interp.allocate_tensors()
            inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]

            def run(x):
                interp.set_tensor(inp, x[None])
                interp.invoke()
                return interp.get_tensor(out)[0]
        else:
            import keras

            model = keras.models.load_model(path, compile=False)
            fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

            def run(x):
                return fn(tf.constant(x[None])).numpy()[0]
        self._run = run

    def new_normaliser(self):
        """A fresh ``raw features -> model input`` callable for one stream
        (stateful for ``"session"`` models: one per stream, one thread)."""
        return normaliser(self.normalisation)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities for one normalised feature matrix (:attr:`input_shape`), under
        the model's neutral prior (:attr:`neutral_bias`)."""
        probs = np.asarray(self._run(np.ascontiguousarray(features, dtype=np.float32)), dtype=np.float64)
        return probs if self._reweight is None else reweight(probs, self._reweight)


@dataclass
class EmotionOptions:
    """Options of the emotion stage.

    Attributes:
        models_dir: directory with ``labels.json`` and the model files.
        neutral_bias: log-prior of the neutral class, replacing the model's own
            (``labels.json`` ``log_prior``; the bundled model's is 0: the
            classes weighed as training did).  Higher: fewer, surer emotion labels.
            ``None``: the model's own.
        smoothing: how many recent windows of the same utterance are averaged
            into an event's ``probs`` (1: none).
        queue_size: windows waiting for the worker; a live stream drops (and
            counts) windows beyond it, a replay at full speed waits.
        device: "cpu" hides the GPUs from TensorFlow before the model loads
            (a Keras model; TFLite, the bundled form, runs on the CPU anyway);
            "auto" or "cuda": TensorFlow's own choice.
        feature_threads: when several windows are waiting (a replay faster
            than real time, or a worker that fell behind), how many have their
            features computed at once, each on its own thread (the whisper
            encoder runs two windows at once).  Events still come out in
            window order with the same numbers.  1: one at a time (serve's
            sessions, and batch's worker processes and Ray actors;
            with the transcript on, a pipeline leaves a core to its decodes).
    """

    models_dir: str | os.PathLike = DEFAULT_MODELS
    neutral_bias: float | None = None
    smoothing: int = 3
    queue_size: int = 32
    device: str = "auto"
    feature_threads: int = 2

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise :class:`~stream_ser.limits.OptionError` for a value out of range
        (``neutral_bias`` -20 to 20 or None, ``smoothing`` 1-100, ``queue_size`` 1-10000,
        ``feature_threads`` 1-16)."""
        if self.neutral_bias is not None:
            check_number("neutral_bias", self.neutral_bias, -20.0, 20.0)
        from .device import DEVICES

        if self.device not in DEVICES:
            raise OptionError("device", f"must be one of {', '.join(DEVICES)}, not {self.device!r}")
        check_number("smoothing", self.smoothing, 1, 100, integer=True)
        check_number("queue_size", self.queue_size, 1, 10000, integer=True)
        check_number("feature_threads", self.feature_threads, 1, 16, integer=True)


class EmotionWorker(threading.Thread):
    """Thread: takes :class:`EmotionWindow` s from :attr:`windows`, reads their audio
    from the ring buffer, runs features + the model's normalisation + model, emits
    :class:`EmotionEvent` s through ``emit`` (thread-safe callable).  :meth:`finish`
    ends it after the queued windows, :meth:`stop` at once.  An exception ends
    it and is handed to ``on_error("emotion", error)`` (never a silent death).
    One worker is one session: a ``"session"`` model's running statistics start
    with it.

    :attr:`cpu_seconds` is the CPU time of its windows: features (on this
    thread, or on its feature threads when several windows wait, see
    :attr:`EmotionOptions.feature_threads`) and model (on this thread); the
    whisper encoder's, on a CTranslate2 thread, counted as the wall time of
    its calls, an upper bound.  :attr:`compute_seconds` is the sum of the
    same work's wall time per window (windows computed at once each count
    whole).
    """

    def __init__(self, model: EmotionModel, ring: RingBuffer, emit: Callable, options: EmotionOptions,
                 on_error: Callable[[str, BaseException], None] | None = None):
        super().__init__(name="emotion", daemon=True)
        self.model, self.ring, self.emit, self.options = model, ring, emit, options
        self.on_error = on_error
        self.windows: queue.Queue = queue.Queue(maxsize=options.queue_size)
        self.compute_seconds = 0.0
        self.cpu_seconds = 0.0
        self.audio_seconds = 0.0
        self.error: BaseException | None = None
        self._recent: deque = deque(maxlen=max(1, options.smoothing))
        self._utterance = -1
        self._normalise = model.new_normaliser()
        self._halt = threading.Event()
        self._finished = threading.Event()

    def finish(self) -> None:
        """No more windows: end once the queued ones are classified."""
        self._finished.set()

    def stop(self) -> None:
        """End now (any thread)."""
        self._halt.set()

    def features(self, window: EmotionWindow) -> tuple[np.ndarray, float, float]:
        """(raw features, CPU seconds, wall seconds) of one window.  Thread-safe:
        runs on this worker or on one of its feature threads."""
        t0, c0 = time.perf_counter(), time.thread_time()
        raw = self.model.extract(self.ring.read(window.start, window.end))
        # whisper's encoder computes on a CTranslate2 thread while this one waits: its wall time stands in for its CPU
        encoder = getattr(self.model.extract, "last_encode_seconds", None)
        native = encoder() if encoder else 0.0
        return raw, time.thread_time() - c0 + native, time.perf_counter() - t0

    def classify(self, window: EmotionWindow, features: tuple | None = None) -> EmotionEvent:
        """The window's event; ``features``: :meth:`features` of it if already computed."""
        raw, cpu, wall = features if features is not None else self.features(window)
        t0, c0 = time.perf_counter(), time.thread_time()
        probs = self.model.predict(self._normalise(raw))
        if window.utterance != self._utterance:
            self._recent.clear()
            self._utterance = window.utterance
        self._recent.append(probs)
        smooth = np.mean(self._recent, axis=0)
        k = int(np.argmax(smooth))
        now = time.time()
        self.compute_seconds += wall + time.perf_counter() - t0
        self.cpu_seconds += cpu + time.thread_time() - c0
        # at the end of a stream the last windows are zero-padded (as training
        # clips are); the event spans and is timed by the audio that exists
        last = max(window.start + 1, min(window.end, self.ring.written))
        self.audio_seconds = last / SAMPLE_RATE
        captured = self.ring.capture_time(last - 1)
        labels = self.model.labels
        level = arousal(dict(zip(labels, smooth)))
        return EmotionEvent(
            type="emotion", start=round(window.start_s, 3), end=round(last / SAMPLE_RATE, 3), emitted_at=now,
            latency_ms=round((now - captured) * 1000, 2), label=labels[k], confidence=round(float(smooth[k]), 4),
            probs={n: round(float(p), 4) for n, p in zip(labels, smooth)},
            window_probs={n: round(float(p), 4) for n, p in zip(labels, probs)},
            utterance=window.utterance, arousal=None if level is None else round(level, 4))

    def run(self) -> None:
        pool = None
        pending: deque = deque()  # (window, future of its features), in window order
        try:
            while not self._halt.is_set():
                if not pending:
                    try:
                        window = self.windows.get(timeout=0.1)
                    except queue.Empty:
                        if self._finished.is_set():
                            return
                        continue
                    if self.options.feature_threads == 1 or self.windows.empty():
                        self.emit(self.classify(window))  # a live stream's case: one window, on this thread
                        continue
                    if pool is None:
                        pool = ThreadPoolExecutor(self.options.feature_threads, thread_name_prefix="emotion-features")
                    pending.append((window, pool.submit(self.features, window)))
                # a replay ahead of the worker: the feature threads are refilled after each window is
                # classified (not in batches that wait for their slowest window)
                while len(pending) < self.options.feature_threads:
                    try:
                        window = self.windows.get_nowait()
                    except queue.Empty:
                        break
                    pending.append((window, pool.submit(self.features, window)))
                # normalisation and model in window order (the session statistics are sequential)
                window, future = pending.popleft()
                features = future.result()
                if self._halt.is_set():  # stop() means now: the windows in flight are dropped
                    break
                self.emit(self.classify(window, features))
        except BaseException as e:
            self.error = e
            if self.on_error:
                self.on_error("emotion", e)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
