"""Recording-chain augmentations, applied to a whole 16 kHz clip.

Each takes ``(audio, rng)`` and returns new float32 audio of the same length, so
window positions found on the clean clip stay valid.  The same functions build
the evaluation conditions (telephone, noisy, reverb, mp3) with other seeds.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
import soxr

from .. import codec
from ..features import SAMPLE_RATE


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    out[: min(n, len(y))] = y[:n]
    return out


def speech_level(audio: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Active speech level (ITU-T P.56, method B) as a power: the mean square
    over the samples where speech is active, taken as those whose envelope (two
    30 ms one-pole smoothers of |x|, 200 ms hangover) is above a threshold that
    lies 15.9 dB under the level found.  Silences and pauses do not count, the
    quiet parts of speech do; speech-in-noise mixtures are set against this level."""
    x = np.asarray(audio, dtype=np.float64)
    energy = float(np.sum(x**2))
    if energy == 0:
        return 0.0
    g = np.exp(-1 / (0.03 * sr))
    envelope = scipy.signal.lfilter([1 - g], [1, -g], scipy.signal.lfilter([1 - g], [1, -g], np.abs(x)))
    hangover = int(np.ceil(0.2 * sr))
    ends = np.arange(1, len(x) + 1)
    last = None  # (level dB, level - threshold dB) at the previous threshold
    for c in 2.0 ** np.arange(-20, 1):  # thresholds a factor 2 apart, up to full scale
        above = np.concatenate([[0], np.cumsum(envelope >= c)])
        active = np.count_nonzero(above[ends] - above[np.maximum(ends - hangover, 0)])  # above within the hangover
        if active == 0:
            break
        level = 10 * np.log10(energy / active)
        margin = level - 20 * np.log10(c)
        if margin <= P56_MARGIN_DB:  # interpolate (in dB) to where the margin is 15.9 dB
            if last is None:
                return 10 ** (level / 10)
            t = (last[1] - P56_MARGIN_DB) / (last[1] - margin)
            return 10 ** ((last[0] + t * (level - last[0])) / 10)
        last = (level, margin)
    return 10 ** (last[0] / 10) if last else energy / len(x)


P56_MARGIN_DB = 15.9


def add_noise(audio, rng, snr_db=None, babble=None):
    """White noise, or babble (other speakers' clips summed) when given, at an SNR
    of the clip's active speech level (:func:`speech_level`) over the noise's
    mean power."""
    snr_db = rng.uniform(0, 15) if snr_db is None else snr_db
    if babble is not None and len(babble):
        noise = sum(_fit(np.roll(b, rng.integers(len(b))), len(audio)) for b in babble)
    else:
        noise = rng.standard_normal(len(audio)).astype(np.float32)
    p_sig = speech_level(audio) if np.any(audio) else 1e-8
    p_noise = np.mean(noise**2) + 1e-12
    return (audio + noise * np.sqrt(p_sig / p_noise / 10 ** (snr_db / 10))).astype(np.float32)


def telephone(audio, rng=None):
    """Narrow-band telephone: 300-3400 Hz band-pass, 8 kHz round trip, mu-law 8 bit."""
    sos = scipy.signal.butter(6, [300, 3400], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    y = soxr.resample(scipy.signal.sosfilt(sos, audio).astype(np.float32), SAMPLE_RATE, 8000)
    mu = 255.0
    peak = np.abs(y).max() + 1e-9
    q = np.sign(y / peak) * np.log1p(mu * np.abs(y / peak)) / np.log1p(mu)
    q = np.round(q * 127) / 127
    y = np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu * peak
    return _fit(soxr.resample(y.astype(np.float32), 8000, SAMPLE_RATE), len(audio))


def reverb(audio, rng, rt60=None):
    """A synthetic room: exponentially decaying noise impulse response."""
    rt60 = rng.uniform(0.2, 0.8) if rt60 is None else rt60
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 1.0
    ir /= np.sqrt(np.sum(ir**2))
    y = scipy.signal.fftconvolve(audio, ir)[: len(audio)]
    return (y * (np.abs(audio).max() / (np.abs(y).max() + 1e-9))).astype(np.float32)


def pitch_shift(audio, rng, steps=None):
    import librosa

    steps = rng.choice([-2.0, -1.0, 1.0, 2.0]) if steps is None else steps
    return _fit(librosa.effects.pitch_shift(audio, sr=SAMPLE_RATE, n_steps=steps), len(audio))


def pseudo_speaker(audio, rng, steps=None):
    """Another voice for a whole session: the spectrum (pitch and formants, as a
    longer or shorter vocal tract moves them together) scaled by a factor drawn
    once per speaker, -3 to +3 semitones (the caller passes a per-speaker rng)."""
    return pitch_shift(audio, rng, rng.uniform(-3.0, 3.0) if steps is None else steps)


def gain(audio, rng, db=None):
    db = rng.uniform(-20, 10) if db is None else db
    return np.clip(audio * 10 ** (db / 20), -1, 1).astype(np.float32)


def time_stretch(audio, rng, rate=None):
    """Faster or slower speech at the same pitch (rate 0.85-1.15), anchored at
    the clip's start so the speech onset moves by at most ~0.15 s."""
    import librosa

    rate = rng.uniform(0.85, 1.15) if rate is None else rate
    return _fit(librosa.effects.time_stretch(audio, rate=rate), len(audio))


def opus(audio, rng=None, kbps=None):
    """Round trip through libopus at a low bitrate (VoIP-like, 8-24 kbit/s)."""
    kbps = int(rng.choice([8, 12, 16, 24])) if kbps is None else kbps
    return _codec(audio, "opus", kbps)


def mp3(audio, rng=None, kbps=32):
    """Round trip through the LAME MP3 encoder at ``kbps``."""
    return _codec(audio, "mp3", kbps)


def _codec(audio, name, kbps):
    """Encode and decode in memory (PyAV: no ffmpeg binary), realign (encoders delay the signal)."""
    y = codec.round_trip(np.clip(audio, -1, 1), SAMPLE_RATE, name, kbps)
    # realign by cross-correlation (PyAV already drops the delay an MP3 header declares; Opus's may remain)
    lag = int(np.argmax(scipy.signal.correlate(_fit(y, len(audio) + 4000), audio, mode="valid")[:4000]))
    return _fit(y[lag:], len(audio))


TRAIN_VARIANTS = ("clean", "noise", "telephone", "reverb", "pitch", "mp3")
# every training copy `stream-ser train --variants` knows ("chained" is built in dataset.load_windows)
VARIANTS = ("clean", "noise", "noise_b", "babble", "babble_b", "talk", "talk_b", "chain", "chained", "gain", "speaker",
            "telephone", "reverb", "pitch", "mp3", "stretch", "opus")
CONDITIONS = ("clean", "telephone", "noisy", "reverb", "mp3")


def apply(name: str, audio: np.ndarray, rng: np.random.Generator, babble=None, talk=None) -> np.ndarray:
    """Training variant or evaluation condition ``name`` of a clip.  ``babble``:
    other actors' clips; ``talk``: calm read-speech clips of other speakers.
    SNRs are against :func:`speech_level` (the ranges sit 5 dB under those of the
    level used before 2026-12-02, which overstated speech by about that much)."""
    if name == "clean":
        return audio
    if name in ("noise", "noise_b"):  # two independent noisy copies
        return add_noise(audio, rng, babble=babble if rng.random() < 0.5 else None)
    if name in ("babble", "babble_b"):  # other voices under the speaker's, louder than "noise" allows
        if babble is None or not len(babble):
            raise ValueError(f"{name} needs other speakers' clips (babble=)")
        return add_noise(audio, rng, snr_db=rng.uniform(-5, 15), babble=babble)
    if name in ("talk", "talk_b"):  # background talk: calm voices under the speaker's (an office, a call centre)
        if talk is None or not len(talk):
            raise ValueError(f"{name} needs calm speech of other speakers (talk=)")
        return add_noise(audio, rng, snr_db=rng.uniform(-5, 15), babble=talk)
    if name == "chain":  # a recording chain: two of the channel effects, then noise
        for effect in rng.choice(["telephone", "reverb", "mp3", "pitch"], size=2, replace=False):
            audio = apply(str(effect), audio, rng)
        return add_noise(audio, rng, snr_db=rng.uniform(5, 25), babble=babble if rng.random() < 0.5 else None)
    if name == "gain":  # a quieter or louder microphone (rng drawn per speaker: one level per session)
        return gain(audio, rng)
    if name == "speaker":  # a pseudo-speaker (rng drawn per speaker: one voice per session), at its own level
        return gain(pseudo_speaker(audio, rng), rng)
    if name == "noisy":  # evaluation: 10 dB SNR, babble or white
        return add_noise(audio, rng, snr_db=10.0, babble=babble if rng.random() < 0.5 else None)
    if name == "telephone":
        return telephone(audio)
    if name == "reverb":
        return reverb(audio, rng)
    if name == "pitch":
        return pitch_shift(audio, rng)
    if name == "mp3":
        return mp3(audio)
    if name == "stretch":
        return time_stretch(audio, rng)
    if name == "opus":
        return opus(audio, rng)
    raise ValueError(f"unknown augmentation {name!r}")
