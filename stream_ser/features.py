"""The one feature extractor: ZCR + RMS + 20 MFCC per frame, shared by training,
streaming and benchmarks.

The source paper computes features at 22.05 kHz with frame 2048 and hop 512 on
2.5 s of audio, giving 108 frames x 22 values.  The stream runs at 16 kHz, so
instead of resampling every window we scale frame and hop to the same durations
(92.9 ms and 23.2 ms): 1486 and 372 samples, which gives the same 108 frames.
The MFCC's FFT is zero-padded to 1536 points: 1486 = 2 x 743 (a prime) makes a
slow FFT.

Normalisation is decided here, once, in one of two ways a model names in its
``labels.json`` (:func:`normaliser`):

- ``"window"``: every feature track is z-normalised over the window's own
  frames (:func:`normalise`).  Exactly invariant to input gain and to a
  stationary channel, with no warm-up, but it also removes how loud and how
  bright this window is compared with the speaker's usual voice.
- ``"session"``: every feature track is z-normalised with the running mean and
  std of all speech frames heard so far in this stream (:class:`SessionNorm`),
  shrunk towards the training set's statistics while the session is young.  It
  removes the speaker and the channel and keeps what changes within them.
  Training uses the same arithmetic (:func:`shrunk_stats`) over windows of one
  speaker and one recording chain.

A model may instead be trained on the bundled whisper encoder's summary of each
window (:mod:`stream_ser.whisper_states`, one frame of 768 values), normalised
the same ways; :func:`extractor` gives the features a model names.
"""

from __future__ import annotations

import functools

import numpy as np

SAMPLE_RATE = 16000
WINDOW_SECONDS = 2.5
WINDOW_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)  # 40000
FRAME_LENGTH = 1486  # 2048 samples at 22.05 kHz
HOP_LENGTH = 372  # 512 samples at 22.05 kHz
N_FFT = 1536  # FRAME_LENGTH zero-padded to a fast FFT size
N_MFCC = 20
N_MELS = 64
N_FRAMES = 1 + WINDOW_SAMPLES // HOP_LENGTH  # 108 (librosa centres frames)
N_FEATURES = 2 + N_MFCC  # 22
FEATURE_NAMES = ("zcr", "rms") + tuple(f"mfcc{i}" for i in range(N_MFCC))

_EPS = 1e-6
_blas_limited = False


def limit_blas() -> None:
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

    limit_blas()
    y = np.ascontiguousarray(window, dtype=np.float32)
    if y.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"expected {WINDOW_SAMPLES} samples, got {y.shape}")
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH)
    rms = librosa.feature.rms(y=y, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH)
    # librosa.feature.mfcc(y=...) step by step, with the mel basis built once:
    # rebuilding it was a quarter of each window's feature time
    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=FRAME_LENGTH)) ** 2
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(_mel_basis() @ power), n_mfcc=N_MFCC)
    return np.vstack([zcr, rms, mfcc]).T.astype(np.float32)


@functools.lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)


FEATURE_KINDS = ("mfcc", "whisper")


def extractor(kind: str = "mfcc"):
    """The raw-feature callable a model was trained on (``labels.json``'s
    ``normalisation.features``): window -> (frames, tracks) float32.
    ``"mfcc"``: :func:`raw_features`, (108, 22); ``"whisper"``: the bundled
    whisper encoder's summary (:mod:`stream_ser.whisper_states`), (1, 768)."""
    if kind == "mfcc":
        return raw_features
    if kind == "whisper":
        from .whisper_states import whisper_states

        return whisper_states()
    raise ValueError(f"unknown features {kind!r} (choose from {', '.join(FEATURE_KINDS)})")


def kind_of(spec: dict | None) -> str:
    """The features a model's ``normalisation`` entry names (``"mfcc"`` if none)."""
    return (spec or {}).get("features", "mfcc")


def normalise(features: np.ndarray) -> np.ndarray:
    """Z-normalise each feature track over time (the loudness/channel normalisation)."""
    mean = features.mean(axis=-2, keepdims=True)
    std = features.std(axis=-2, keepdims=True)
    return ((features - mean) / (std + _EPS)).astype(np.float32)


def extract(window: np.ndarray) -> np.ndarray:
    """Per-window normalised features of one 2.5 s window: (108, 22) float32."""
    return normalise(raw_features(window))


def shrunk_stats(frame_sum, frame_sumsq, frames, prior_mean, prior_std, prior_frames, scale: str = "session"):
    """Mean and std of feature tracks from running sums over ``frames`` frames,
    with the prior (training-set) statistics counted as ``prior_frames`` extra
    frames.  With ``scale="prior"`` the std is the prior's (the session only
    moves the mean).  Broadcasts over leading axes.  The one place where the
    session statistics are computed, for the stream and for training alike."""
    frames = np.asarray(frames, dtype=np.float64)[..., None]
    total = prior_frames + frames
    mean = (prior_frames * prior_mean + frame_sum) / total
    if scale == "prior":
        return mean, np.broadcast_to(prior_std, mean.shape)
    second = (prior_frames * (prior_std**2 + prior_mean**2) + frame_sumsq) / total
    std = np.sqrt(np.maximum(second - mean**2, 0.0))
    return mean, std


def apply_stats(raw: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return ((raw - mean[..., None, :]) / (std[..., None, :] + _EPS)).astype(np.float32)


class SessionNorm:
    """Running per-session normalisation (``"session"`` models).

    Call it with each speech window's :func:`raw_features`, in stream order: it
    adds the window's frames to the session statistics, then returns the window
    normalised with them.  The first window of a session leans on the prior;
    after ``prior_frames`` frames of speech (2 windows for the shipped model)
    the session's own statistics weigh as much as the prior.

    Not thread-safe: one instance per stream, used by the emotion worker only.
    """

    def __init__(self, prior_mean, prior_std, prior_frames: float, scale: str = "session"):
        self.scale = scale  # "prior": divide by the prior's std, remove only the session's mean
        self.prior_mean = np.asarray(prior_mean, dtype=np.float64)
        self.prior_std = np.asarray(prior_std, dtype=np.float64)
        self.prior_frames = float(prior_frames)
        self.frames = 0
        self.frame_sum = np.zeros(self.prior_mean.shape)
        self.frame_sumsq = np.zeros(self.prior_mean.shape)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw64 = raw.astype(np.float64)
        self.frame_sum += raw64.sum(axis=0)
        self.frame_sumsq += (raw64**2).sum(axis=0)
        self.frames += len(raw)
        mean, std = shrunk_stats(self.frame_sum, self.frame_sumsq, self.frames, self.prior_mean, self.prior_std,
                                 self.prior_frames, self.scale)
        return apply_stats(raw, mean, std)


def normaliser(spec: dict | None):
    """A fresh ``raw features -> model input`` callable for a model's
    ``normalisation`` entry (``None`` or ``{"kind": "window"}``: per window)."""
    if not spec or spec.get("kind", "window") == "window":
        return normalise
    if spec["kind"] == "session":
        return SessionNorm(spec["mean"], spec["std"], spec["prior_frames"], spec.get("scale", "session"))
    raise ValueError(f"unknown normalisation {spec['kind']!r}")


@functools.lru_cache(maxsize=1)
def _probe_window() -> np.ndarray:
    # a voiced, amplitude-modulated glide with a digital-silence pause: it
    # exercises every track, the pitch range and the log-mel floor
    t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(110 + 40 * t) / SAMPLE_RATE
    y = sum(np.sin(k * phase) / k for k in range(1, 25)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    y[int(1.0 * SAMPLE_RATE):int(1.3 * SAMPLE_RATE)] = 0.0
    return (0.05 * y).astype(np.float32)


def probe(kind: str = "mfcc") -> dict:
    """Mean and std of every raw feature track on a fixed synthetic window: a
    fingerprint of extractor ``kind``.  Training stores it with a model's
    normalisation (``norm.json``, ``labels.json``) and :func:`probe_mismatch`
    compares it at load time, so a model is never silently given features
    other than those it was trained on (another frame size, log floor or
    librosa version)."""
    mean, std = _probe_stats(kind)
    return {"mean": list(mean), "std": list(std)}  # a fresh copy: callers store it in specs


@functools.lru_cache(maxsize=None)
def _probe_stats(kind: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    raw = extractor(kind)(_probe_window()).astype(np.float64)
    return tuple(raw.mean(axis=0).tolist()), tuple(raw.std(axis=0).tolist())


def probe_mismatch(spec: dict | None) -> str | None:
    """``None`` if a model's normalisation ``spec`` has no ``features_probe`` or
    one this extractor reproduces (to 0.1% of each track's size), else what
    differs, in words ("trained on other features ...")."""
    saved = (spec or {}).get("features_probe")
    if saved is None:
        return None
    kind = kind_of(spec)
    if kind not in FEATURE_KINDS:
        return f"trained on features {kind!r}, which this version of stream-ser does not compute"
    now = probe(kind)
    try:
        a_mean, a_std = (np.asarray(saved[k], dtype=np.float64) for k in ("mean", "std"))
        if a_mean.ndim != 1 or a_mean.shape != a_std.shape or not np.all(np.isfinite(a_mean) & np.isfinite(a_std)):
            raise ValueError
    except Exception:
        return "stored with an unreadable features_probe (expected finite \"mean\" and \"std\" lists)"
    if a_mean.size != len(now["mean"]):
        return f"trained on {a_mean.size} feature tracks; this extractor computes {len(now['mean'])}"
    if kind == "whisper":
        # int8 kernels differ between CPUs in the last bits: compare the whole vector
        off = float(np.linalg.norm(a_mean - now["mean"]) / (np.linalg.norm(a_mean) + 1e-9))
        if off > 0.02:
            return (f"trained on other encoder states than this installation computes (a test window's differ by "
                    f"{100 * off:.1f}%: another whisper model or CTranslate2); retrain it, or use the installation that trained it")
        return None
    scale = np.abs(a_mean) + np.abs(a_std)
    for stat, a in (("mean", a_mean), ("std", a_std)):
        b = np.asarray(now[stat])
        # relative to the track's size: FFT and BLAS builds differ in the last digits
        off = np.abs(a - b) > 1e-3 * scale + 1e-7
        if off.any():
            i = int(np.argmax(off))
            return (f"trained on other features than this version of stream-ser computes "
                    f"({FEATURE_NAMES[i]} {stat} on a test signal: {a[i]:.4g} then, {b[i]:.4g} now); "
                    f"retrain it, or use the stream-ser version that trained it")
    return None


def warm_up() -> None:
    """Compile librosa's numba kernels now (16-19 s in a fresh venv, ~1.5 s later),
    so that the first live window does not pay for it."""
    extract(np.zeros(WINDOW_SAMPLES, dtype=np.float32) + 1e-4 * np.random.default_rng(0).standard_normal(WINDOW_SAMPLES).astype(np.float32))
