"""The one feature extractor: ZCR + RMS + 20 MFCC per frame, shared by training,
streaming and benchmarks.

The source paper computes features at 22.05 kHz with frame 2048 and hop 512 on
2.5 s of audio, giving 108 frames x 22 values.  The stream runs at 16 kHz, so
instead of resampling every window we scale frame and hop to the same durations
(92.9 ms and 23.2 ms): 1486 and 372 samples, which gives the same 108 frames.

Loudness normalisation is decided here, once: every feature track is
z-normalised over the window's frames.  That makes the features exactly
invariant to input gain (MFCC c0 and log energy move by a constant, which the
mean removes; RMS scales, which the std removes) and removes a stationary
channel (cepstral mean normalisation), at no warm-up cost for the first window.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
WINDOW_SECONDS = 2.5
WINDOW_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)  # 40000
FRAME_LENGTH = 1486  # 2048 samples at 22.05 kHz
HOP_LENGTH = 372  # 512 samples at 22.05 kHz
N_MFCC = 20
N_FRAMES = 1 + WINDOW_SAMPLES // HOP_LENGTH  # 108 (librosa centres frames)
N_FEATURES = 2 + N_MFCC  # 22
FEATURE_NAMES = ("zcr", "rms") + tuple(f"mfcc{i}" for i in range(N_MFCC))

_EPS = 1e-6
_blas_limited = False


def _limit_blas() -> None:
    """Run numpy's BLAS on one thread, once per process.  The matrix products
    here are tiny; with two OpenBLAS threads on a busy 2-core machine the mel
    projection alone took 30-40 ms a window instead of 0.14 ms (bench/window.py)."""
    global _blas_limited
    if not _blas_limited:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")
        _blas_limited = True


def raw_features(window: np.ndarray) -> np.ndarray:
    """Return the un-normalised (N_FRAMES, N_FEATURES) float32 feature matrix.

    ``window`` is exactly :data:`WINDOW_SAMPLES` float samples at 16 kHz.
    """
    import librosa  # heavy import (numba): keep it out of `stream-ser --help`

    _limit_blas()
    y = np.ascontiguousarray(window, dtype=np.float32)
    if y.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"expected {WINDOW_SAMPLES} samples, got {y.shape}")
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH)
    rms = librosa.feature.rms(y=y, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH)
    mfcc = librosa.feature.mfcc(
        y=y, sr=SAMPLE_RATE, n_mfcc=N_MFCC, n_fft=FRAME_LENGTH, hop_length=HOP_LENGTH, n_mels=64
    )
    return np.vstack([zcr, rms, mfcc]).T.astype(np.float32)


def normalise(features: np.ndarray) -> np.ndarray:
    """Z-normalise each feature track over time (the loudness/channel normalisation)."""
    mean = features.mean(axis=-2, keepdims=True)
    std = features.std(axis=-2, keepdims=True)
    return ((features - mean) / (std + _EPS)).astype(np.float32)


def extract(window: np.ndarray) -> np.ndarray:
    """Features of one 2.5 s window as the models see them: (108, 22) float32."""
    return normalise(raw_features(window))


def warm_up() -> None:
    """Compile librosa's numba kernels now (16-19 s in a fresh venv, ~1.5 s later),
    so that the first live window does not pay for it."""
    extract(np.zeros(WINDOW_SAMPLES, dtype=np.float32) + 1e-4 * np.random.default_rng(0).standard_normal(WINDOW_SAMPLES).astype(np.float32))
