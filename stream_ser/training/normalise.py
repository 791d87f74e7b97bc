"""Normalisation of cached raw features, exactly as the stream will do it.

``"window"`` models see each window z-normalised on its own
(:func:`stream_ser.features.normalise`).  ``"session"`` models see each window
normalised with the statistics of its session so far
(:class:`stream_ser.features.SessionNorm`).  Here a session is one speaker
under one recording chain, heard in some order: window ``t`` of the order is
normalised with the prior plus windows ``0..t``.  Evaluation uses one fixed
order per speaker, clips whole and in sequence, as a replay of that speaker
would.  Training draws new sessions every epoch: each window joins a session
at a random point, so the model sees every stage of warm-up, from the first
window (mostly prior) to a settled session.

A RAVDESS speaker's clips are balanced over emotions, but a real session (a
call, a reading, an interview) is mostly neutral speech, and its statistics
then describe the speaker's neutral voice.  Given the neutral class, training
draws each session's mix: a random share of neutral windows, from none to all,
so the model learns emotions relative to any mix of baselines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .. import features
from ..features import apply_stats, normalise, shrunk_stats

KINDS = ("session", "window")


def make_spec(kind: str, x_clean: np.ndarray | None = None, prior_windows: float = 2.0, scale: str = "session",
              features_kind: str = "mfcc") -> dict:
    """The ``normalisation`` entry a model ships with.  For ``"session"`` the prior
    is the mean and std of every frame of the clean training windows; ``scale``
    "session" divides by the session's std, "prior" by the prior's (the session
    then only moves the mean)."""
    # which raw features the model is trained on (checked when it is loaded)
    probe = {"features_probe": features.probe(features_kind)}
    if features_kind != "mfcc":  # (an "mfcc" spec names nothing: as models trained before there was a choice)
        probe["features"] = features_kind
    if kind == "window":
        return {"kind": "window", **probe}
    if kind != "session":
        raise ValueError(f"unknown normalisation {kind!r} (choose from {', '.join(KINDS)})")
    frames = x_clean.reshape(-1, x_clean.shape[-1]).astype(np.float64)
    return {"kind": "session", "mean": frames.mean(axis=0).tolist(), "std": frames.std(axis=0).tolist(),
            "prior_frames": float(prior_windows * x_clean.shape[1]), "scale": scale, **probe}


def _prior(spec: dict):
    return np.asarray(spec["mean"]), np.asarray(spec["std"]), spec["prior_frames"], spec.get("scale", "session")


def _sums(x: np.ndarray):
    x64 = x.astype(np.float64)
    return x64.sum(axis=1), (x64**2).sum(axis=1)


def _in_order(x: np.ndarray, sessions: list[np.ndarray], spec: dict) -> np.ndarray:
    """Normalise ``x`` where each entry of ``sessions`` lists window indices in
    the order a stream would hear them."""
    sums, sumsqs = _sums(x)
    out = np.empty_like(x, dtype=np.float32)
    for order in sessions:
        frames = x.shape[1] * np.arange(1, len(order) + 1)
        mean, std = shrunk_stats(np.cumsum(sums[order], axis=0), np.cumsum(sumsqs[order], axis=0), frames, *_prior(spec))
        out[order] = apply_stats(x[order], mean, std)
    return out


def for_training(x: np.ndarray, session_of_window: np.ndarray, spec: dict, rng,
                 y: np.ndarray | None = None, neutral: int | None = None, warm_up: str = "log") -> np.ndarray:
    """Model inputs for one epoch.  Each session (one speaker under one chain)
    is heard as a random stream of its windows; each window joins it after a
    random number of them, drawn uniformly (``warm_up="uniform"``) or
    log-uniformly (``"log"``: a third of the windows fall in the first five of
    a session, where the prior still weighs).  With ``y`` and ``neutral`` (the
    neutral class), each session's stream has a random share of neutral windows."""
    if spec["kind"] == "window":
        return normalise(x)
    sums, sumsqs = _sums(x)
    out = np.empty_like(x, dtype=np.float32)
    frames = x.shape[1]
    for s in np.unique(session_of_window):
        idx = np.flatnonzero(session_of_window == s)
        weights = None
        if neutral is not None:
            is_neutral = y[idx] == neutral
            if 0 < is_neutral.sum() < len(idx):
                share = rng.uniform()
                weights = np.where(is_neutral, share / is_neutral.sum(), (1 - share) / (~is_neutral).sum())
        stream = rng.choice(idx, size=len(idx), p=weights) if weights is not None else rng.permutation(idx)
        if warm_up == "log":  # windows heard before this one
            before = np.floor(np.exp(rng.uniform(0, np.log(len(idx) + 1), size=len(idx)))).astype(int) - 1
        else:
            before = rng.integers(0, len(idx), size=len(idx))
        c_sum = np.vstack([np.zeros(sums.shape[1]), np.cumsum(sums[stream], axis=0)])
        c_sq = np.vstack([np.zeros(sums.shape[1]), np.cumsum(sumsqs[stream], axis=0)])
        mean, std = shrunk_stats(c_sum[before] + sums[idx], c_sq[before] + sumsqs[idx], frames * (before + 1), *_prior(spec))
        out[idx] = apply_stats(x[idx], mean, std)
    return out


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


def shipped_meta(path: Path) -> dict:
    """``labels.json`` of a models directory, or of the directory a model file
    sits in (``models/emotion.keras``); ``{}`` for a training checkpoint."""
    path = Path(path)
    meta = path / "labels.json" if path.is_dir() else path.parent / "labels.json"
    if not meta.is_file():
        return {}
    from ..errors import UsageError

    try:
        data = json.loads(meta.read_text())
    except ValueError:
        raise UsageError(f"{meta}: not valid JSON") from None
    if not isinstance(data, dict):
        raise UsageError(f"{meta}: not a labels file")
    return data


def trained_on(model_path: Path) -> tuple[list[str], set[str] | None]:
    """The manifest splits and the speakers a model was trained on: from
    ``state.json`` beside a checkpoint or ``labels.json`` of a shipped model.
    ``(["train"], None)`` (speakers unknown) if neither says."""
    model_path = Path(model_path)
    state = model_path.parent / "state.json"
    if not model_path.is_dir() and state.is_file():
        try:
            data = json.loads(state.read_text())
            return list(data["options"].get("train_splits", ["train"])), set(data["train_speakers"]) if "train_speakers" in data else None
        except (ValueError, KeyError, TypeError):
            return ["train"], None
    meta = shipped_meta(model_path)
    return list(meta.get("trained_on", ["train"])), set(meta["train_speakers"]) if "train_speakers" in meta else None


_noted: set[str] = set()


def _checked(spec: dict, model_path: Path) -> dict:
    problem = features.probe_mismatch(spec)
    if problem:
        from ..errors import UsageError

        raise UsageError(f"{model_path} was {problem}")
    return spec


def spec_for(model_path: Path) -> dict:
    """The normalisation of a training checkpoint (``norm.json`` beside it), of
    a models directory or of a model file in one (``labels.json``); per window
    if none says."""
    model_path = Path(model_path)
    norm = model_path.parent / "norm.json"
    if not model_path.is_dir() and norm.is_file():
        return _checked(json.loads(norm.read_text()), model_path)
    meta = shipped_meta(model_path)
    if meta:
        return _checked(meta.get("normalisation", {"kind": "window"}), model_path)
    if not model_path.is_dir() and str(model_path) not in _noted:
        # a checkpoint moved away from its run directory would otherwise be
        # scored with the wrong normalisation without a word
        _noted.add(str(model_path))
        print(f"note: no norm.json beside {model_path}; assuming per-window normalisation", file=sys.stderr)
    return {"kind": "window"}
