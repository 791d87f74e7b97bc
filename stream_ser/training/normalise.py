"""Normalisation of cached raw features, exactly as the stream will do it.

``"window"`` models see each window z-normalised on its own
(:func:`stream_ser.features.normalise`).  ``"session"`` models see each window
normalised with the statistics of its session so far
(:class:`stream_ser.features.SessionNorm`).  Here a session is one speaker
under one recording chain, heard in some order: window ``t`` of the order is
normalised with the prior plus windows ``0..t``.  Training draws a new random
order every epoch, so the model sees every stage of warm-up, from the first
window (mostly prior) to a settled session; evaluation uses one fixed order per
speaker, clips whole and in sequence, as a replay of that speaker would.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..features import apply_stats, normalise, shrunk_stats

KINDS = ("session", "window")


def make_spec(kind: str, x_clean: np.ndarray | None = None, prior_windows: float = 5.0) -> dict:
    """The ``normalisation`` entry a model ships with.  For ``"session"`` the prior
    is the mean and std of every frame of the clean training windows."""
    if kind == "window":
        return {"kind": "window"}
    if kind != "session":
        raise ValueError(f"unknown normalisation {kind!r} (choose from {', '.join(KINDS)})")
    frames = x_clean.reshape(-1, x_clean.shape[-1]).astype(np.float64)
    return {"kind": "session", "mean": frames.mean(axis=0).tolist(), "std": frames.std(axis=0).tolist(),
            "prior_frames": float(prior_windows * x_clean.shape[1])}


def _in_order(x: np.ndarray, sessions: list[np.ndarray], spec: dict) -> np.ndarray:
    """Normalise ``x`` where each entry of ``sessions`` lists window indices in
    the order a stream would hear them."""
    x64 = x.astype(np.float64)
    sums, sumsqs = x64.sum(axis=1), (x64**2).sum(axis=1)
    out = np.empty_like(x, dtype=np.float32)
    prior = (np.asarray(spec["mean"]), np.asarray(spec["std"]), spec["prior_frames"])
    for order in sessions:
        frames = x.shape[1] * np.arange(1, len(order) + 1)
        mean, std = shrunk_stats(np.cumsum(sums[order], axis=0), np.cumsum(sumsqs[order], axis=0), frames, *prior)
        out[order] = apply_stats(x[order], mean, std)
    return out


def for_training(x: np.ndarray, session_of_window: np.ndarray, spec: dict, rng) -> np.ndarray:
    """Model inputs for one epoch: each session's windows in a fresh random order."""
    if spec["kind"] == "window":
        return normalise(x)
    sessions = [rng.permutation(np.flatnonzero(session_of_window == s)) for s in np.unique(session_of_window)]
    return _in_order(x, sessions, spec)


def for_evaluation(x: np.ndarray, clip_of_window: np.ndarray, speaker_of_clip: list[str], spec: dict, seed: int = 0) -> np.ndarray:
    """Model inputs for evaluation: per speaker, one session that plays the
    speaker's clips in a fixed random order, each clip's windows in sequence."""
    if spec["kind"] == "window":
        return normalise(x)
    rng = np.random.default_rng(seed)
    speakers = np.array(speaker_of_clip)
    sessions = []
    for s in np.unique(speakers):
        clips = rng.permutation(np.flatnonzero(speakers == s))
        sessions.append(np.concatenate([np.flatnonzero(clip_of_window == c) for c in clips]))
    return _in_order(x, sessions, spec)


def spec_for(model_path: Path) -> dict:
    """The normalisation of a models directory (``labels.json``) or of a training
    checkpoint (``norm.json`` beside it); per window if neither says."""
    model_path = Path(model_path)
    meta = model_path / "labels.json" if model_path.is_dir() else model_path.parent / "norm.json"
    if meta.is_file():
        data = json.loads(meta.read_text())
        return data.get("normalisation", data) if model_path.is_dir() else data
    return {"kind": "window"}
