"""RAVDESS from ``manifest.csv``: labels, speaker splits, and cached window features.

Windows are cut by the serving windower (:func:`stream_ser.windows.clip_windows`)
on the clean clip; every augmentation variant is cut at the same positions and
goes through the one feature extractor.  Raw (un-normalised) features are
cached as ``.npz`` per (split, variant); a second run reuses them.  How they
are normalised is the model's choice (:mod:`stream_ser.training.normalise`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..features import SAMPLE_RATE, extractor
from ..labels import EMOTIONS, EMOTIONS_WITH_CALM
from ..sources import condition
from ..windows import WindowOptions, clip_windows, cut
from ..vad import VadGate, VadOptions
from . import augment

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ser"


def labels(keep_calm: bool = False) -> tuple[str, ...]:
    return EMOTIONS_WITH_CALM if keep_calm else EMOTIONS


def label_of(emotion: str, keep_calm: bool = False) -> str:
    return emotion if keep_calm or emotion != "calm" else "neutral"


@dataclass
class Clip:
    path: Path
    speaker: str
    emotion: str
    split: str


def read_manifest(data_dir: Path = DEFAULT_DATA) -> list[Clip]:
    manifest = Path(data_dir) / "manifest.csv"
    if not manifest.exists():
        raise FileNotFoundError(f"no manifest at {manifest}")
    with open(manifest, newline="") as f:
        return [Clip(Path(data_dir) / r["path"], r["speaker"], r["emotion"], r["split"]) for r in csv.DictReader(f)]


@dataclass
class WindowSet:
    """Raw features of every window of a split: ``x`` (n, 108, 22), the clip
    index of each window, and per clip its emotion and speaker."""

    x: np.ndarray
    clip_of_window: np.ndarray
    clip_emotions: list[str]
    clip_speakers: list[str]
    clips_without_windows: int

    def y(self, keep_calm: bool = False) -> np.ndarray:
        names = labels(keep_calm)
        return np.array([names.index(label_of(self.clip_emotions[c], keep_calm)) for c in self.clip_of_window])

    def speaker_of_window(self) -> np.ndarray:
        return np.array(self.clip_speakers)[self.clip_of_window]

    def clip_y(self, keep_calm: bool = False) -> np.ndarray:
        names = labels(keep_calm)
        return np.array([names.index(label_of(e, keep_calm)) for e in self.clip_emotions])

    @staticmethod
    def concat(sets: list["WindowSet"]) -> "WindowSet":
        """The windows of several splits as one set (clip indices renumbered)."""
        offsets = np.cumsum([0] + [len(s.clip_emotions) for s in sets[:-1]])
        return WindowSet(np.concatenate([s.x for s in sets]),
                         np.concatenate([s.clip_of_window + o for s, o in zip(sets, offsets)]),
                         [e for s in sets for e in s.clip_emotions], [p for s in sets for p in s.clip_speakers],
                         sum(s.clips_without_windows for s in sets))


def cache_dir() -> Path:
    return Path(os.environ.get("STREAM_SER_CACHE", Path.home() / ".cache" / "stream-ser"))


def _key(split: str, variant: str, seed: int, limit: int | None, clips: list[Clip], data_dir: Path, vad_on: str = "clean",
         kind: str = "mfcc") -> str:
    # The cache is only valid for the code and the clips that made it: the
    # window logic, the features, the augmentations, the manifest's rows and
    # the files' sizes are part of the key (a stale cache would be train/serve
    # skew, or another dataset's features under this one's name).
    from .. import codec, features, sources, vad, whisper_states, windows

    code = b"".join(Path(m.__file__).read_bytes() for m in (features, sources, vad, windows, augment, codec)
                    + ((whisper_states,) if kind == "whisper" else ()))
    code += Path(__file__).read_bytes()
    # the file's size catches audio replaced under the same name (re-encoded, trimmed)
    rows = [(os.path.relpath(c.path, data_dir), c.speaker, c.emotion, c.path.stat().st_size if c.path.exists() else -1) for c in clips]
    # the fingerprint catches what the source does not: another librosa or numpy
    spec = json.dumps([split, variant, seed, limit, WindowOptions().__dict__, VadOptions().__dict__, rows, features.probe(kind), vad_on]
                      + ([kind] if kind != "mfcc" else []))
    return hashlib.sha1(spec.encode() + code).hexdigest()[:12]


def _speech_bounds(y: np.ndarray) -> tuple[int, int]:
    """First onset and last end the VadGate finds (the whole clip if none)."""
    gate = VadGate()
    events = gate.push(y) + gate.flush()
    starts = [u.sample for u in events if u.kind == "start"]
    ends = [u.sample for u in events if u.kind == "end"]
    return (starts[0], ends[-1]) if starts and ends else (0, len(y))


def chain(y: np.ndarray, audio: list, clips: list, i: int, rng) -> np.ndarray:
    """Running speech from acted sentences: clip ``i`` followed, after a short
    pause, by another clip of the same speaker and emotion.  RAVDESS clips are
    one sentence between silences, but live windows after an utterance's first
    one hold continuous speech; this variant gives training windows like those."""
    same = [j for j, c in enumerate(clips) if j != i and c.speaker == clips[i].speaker
            and label_of(c.emotion) == label_of(clips[i].emotion)]
    if not same:
        return y
    j = int(rng.choice(same))
    a0, a1 = _speech_bounds(y)
    b0, b1 = _speech_bounds(audio[j])
    pause = np.zeros(int(rng.uniform(0.05, 0.3) * SAMPLE_RATE), np.float32)
    return np.concatenate([y[:a1], pause, audio[j][b0:b1], y[a1:]]).astype(np.float32)


def load_windows(
    split: str,
    variant: str = "clean",
    *,
    data_dir: Path = DEFAULT_DATA,
    seed: int = 0,
    limit: int | None = None,
    progress=None,
    vad_on: str = "clean",
    features: str = "mfcc",
) -> WindowSet:
    """Windows of ``split`` ("train", "val", "test") under augmentation or condition
    ``variant``; cached.  ``limit`` takes the first clips only (for tests).
    ``vad_on="clean"`` cuts every variant at the clean clip's windows (training:
    the same positions under every chain); ``"degraded"`` runs the VAD on the
    degraded audio, as ``replay`` of that audio would (evaluation conditions).
    ``features``: the extractor (:func:`stream_ser.features.extractor`)."""
    if vad_on not in ("clean", "degraded"):
        raise ValueError(f"vad_on must be 'clean' or 'degraded', not {vad_on!r}")
    clips = [c for c in read_manifest(data_dir) if c.split == split][:limit]
    # background talk: the calm corpus's train speakers only (its val and test speakers stay unheard)
    calm = [c for c in read_manifest(Path(data_dir).parent / "neutral") if c.split == "train"] if variant in ("talk", "talk_b") else []
    tag = (variant if vad_on == "clean" else f"{variant}@vad") + ("" if features == "mfcc" else f"-{features}")
    path = cache_dir() / f"{Path(data_dir).name}-{split}-{tag}-{_key(split, variant, seed, limit, clips + calm, data_dir, vad_on, features)}.npz"
    if path.exists():
        z = np.load(path)
        return WindowSet(z["x"], z["clip"], [c.emotion for c in clips], [c.speaker for c in clips], int(z["empty"]))
    rng = np.random.default_rng([seed, sum(map(ord, split + variant))])
    extract = extractor(features)
    audio = [sf.read(c.path, dtype="float32")[0] for c in clips]
    talk = [sf.read(c.path, dtype="float32")[0] for c in calm]
    xs, owner, empty = [], [], 0
    for i, (clip, y) in enumerate(zip(clips, audio)):
        if variant == "chained":
            y = chain(y, audio, clips, i, rng)
        windows = clip_windows(condition(y))  # as the stream's source conditions it (DC removed)
        if vad_on == "degraded" or windows:
            # babble: three clips of other speakers of the same split (drawn among them: a draw
            # among all clips came back empty for ~4% of the clips of a 3-actor split)
            pool = [j for j, c in enumerate(clips) if c.speaker != clip.speaker]
            others = [audio[j] for j in rng.choice(pool, 3)] if pool else []
            # a session keeps one microphone level (and one pseudo-voice): drawn per speaker
            per_speaker = variant in ("gain", "speaker")
            r = np.random.default_rng([seed, int(clip.speaker.split("_")[-1])]) if per_speaker else rng
            voices = [talk[j] for j in rng.choice([j for j, c in enumerate(calm) if c.speaker != clip.speaker], 3)] if talk else None
            aug = condition(y if variant == "chained" else augment.apply(variant, y, r, babble=others, talk=voices))
            if vad_on == "degraded":
                windows = clip_windows(aug)
        if not windows:
            empty += 1
        else:
            for w in windows:
                xs.append(extract(cut(aug, w)))
                owner.append(i)
        if progress:
            progress(i + 1, len(clips))
    x = np.stack(xs).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, clip=np.array(owner), empty=empty)
    return WindowSet(x, np.array(owner), [c.emotion for c in clips], [c.speaker for c in clips], empty)


assert SAMPLE_RATE == 16000
