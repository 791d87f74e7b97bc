"""Grouped 5-fold cross-validation over RAVDESS actors 01-20, with the calm
speech corpus (``../shared/data/neutral``) alongside, scored the way users see
the model: clip by clip, window by window in streaming order, at the start of
a session, as arousal, and as the share of "neutral" on ordinary speech.

Folds: 4 actors each, 2 men and 2 women (the manifest's ``gender``), fixed.
A fold's model (``stream-ser train --fold K``) trained on the other 16 actors
and the calm corpus's train speakers; ``stream-ser evaluate --cv DIR`` scores
``DIR/fold{K}/last.keras`` on the fold's actors and every fold model on the
calm corpus's val and test speakers and on ``../shared/data/speech``.

Streaming order: each actor (or calm speaker) is one session; its clips are
heard whole, in a random order (3 orders for actors), windows in sequence,
normalised with the stream's arithmetic (:mod:`.normalise`).  A window's
label is what the stream shows: the mean of the probabilities of the last
``smoothing`` windows of its utterance (here: of its clip; the stream's
default 3), after the neutral prior.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..features import kind_of
from ..labels import HIGH_AROUSAL, LOW_AROUSAL
from . import normalise
from .dataset import WindowSet, label_of, load_windows
from .metrics import clip_predictions, scores, ua_by_group

N_FOLDS = 5
CONDITIONS = ("telephone", "noisy", "reverb", "mp3")
COLD_WINDOWS = 5  # "cold start": the first windows of a session
BIAS_GRID = tuple(np.round(np.arange(0, 3.01, 0.25), 2))


def fold_speakers(data_dir: Path) -> list[list[str]]:
    """Five folds of four actors (two men, two women), from the manifest: the
    i-th fold takes the i-th and (i+5)-th man and woman in actor order."""
    gender = {}
    with open(Path(data_dir) / "manifest.csv", newline="") as f:
        for r in csv.DictReader(f):
            gender[r["speaker"]] = r["gender"]
    men = sorted(s for s, g in gender.items() if g == "male")
    women = sorted(s for s, g in gender.items() if g == "female")
    if len(men) != 2 * N_FOLDS or len(women) != 2 * N_FOLDS:
        raise ValueError(f"cross-validation expects 10 men and 10 women, found {len(men)} and {len(women)}")
    return [sorted([men[i], men[i + N_FOLDS], women[i], women[i + N_FOLDS]]) for i in range(N_FOLDS)]


def select(ws: WindowSet, speakers: set[str]) -> WindowSet:
    """The windows of ``ws`` whose clip is by one of ``speakers`` (clips renumbered)."""
    keep = [c for c, s in enumerate(ws.clip_speakers) if s in speakers]
    new = {c: i for i, c in enumerate(keep)}
    rows = np.isin(ws.clip_of_window, keep)
    return WindowSet(ws.x[rows], np.array([new[c] for c in ws.clip_of_window[rows]], dtype=int),
                     [ws.clip_emotions[c] for c in keep], [ws.clip_speakers[c] for c in keep], 0)


def all_actors(data_dir: Path, variant: str = "clean", seed: int = 0, vad_on: str = "clean", features: str = "mfcc") -> WindowSet:
    return WindowSet.concat([load_windows(s, variant, data_dir=data_dir, seed=seed, vad_on=vad_on, features=features)
                             for s in ("train", "val", "test")])


def sessions(ws: WindowSet, seed: int | None) -> list[np.ndarray]:
    """Window indices per speaker in the order a replay would hear them: clips
    in a random order (``seed``) or in manifest order (``None``)."""
    rng = np.random.default_rng(seed) if seed is not None else None
    speakers = np.array(ws.clip_speakers)
    out = []
    for s in sorted(set(ws.clip_speakers)):
        clips = np.flatnonzero(speakers == s)
        if rng is not None:
            clips = rng.permutation(clips)
        out.append(np.concatenate([np.flatnonzero(ws.clip_of_window == c) for c in clips]))
    return out


def smoothed(probs: np.ndarray, order: np.ndarray, utterance: np.ndarray, smoothing: int = 3) -> np.ndarray:
    """Per window of one session (``order``), the stream's shown probabilities:
    the mean of the last ``smoothing`` windows of the same utterance."""
    out = np.empty((len(order), probs.shape[1]))
    start = 0
    for k, i in enumerate(order):
        if k and utterance[i] != utterance[order[k - 1]]:
            start = k
        out[k] = probs[order[max(start, k - smoothing + 1) : k + 1]].mean(axis=0)
    return out


class Ensemble:
    """Several models of one fold (seeds of a recipe), scored as one: the mean
    of their probabilities, each model on windows normalised its own way."""

    def __init__(self, members: list[tuple[object, dict]]):
        self.members = members


def _predict(model, ws: WindowSet, spec: dict, order: list[np.ndarray]) -> np.ndarray:
    from .train import predict

    if isinstance(model, Ensemble):
        return np.mean([_predict(m, ws, s, order) for m, s in model.members], axis=0)
    x = normalise._in_order(ws.x, order, spec) if spec["kind"] == "session" else normalise.normalise(ws.x)
    return predict(model, x)


def _ua(y_true, y_pred, n) -> float:
    recall = [np.mean(y_pred[y_true == k] == k) for k in range(n) if np.any(y_true == k)]
    return float(np.mean(recall))


def arousal_ua(emotions: list[str], probs: np.ndarray, names) -> float:
    """Binary arousal UA (high: angry, fearful, happy, surprised; low: neutral,
    calm, sad), disgust left out; predicted high when the high classes' share
    of the high and low classes' probability exceeds one half."""
    names = list(names)
    hi = np.array([n in HIGH_AROUSAL for n in names])
    lo = np.array([n in LOW_AROUSAL for n in names])
    truth = np.array([1 if e in HIGH_AROUSAL else 0 if e in LOW_AROUSAL else -1 for e in emotions])
    score = probs[:, hi].sum(1) / np.maximum(probs[:, hi].sum(1) + probs[:, lo].sum(1), 1e-12)
    keep = truth >= 0
    return _ua(truth[keep], (score[keep] > 0.5).astype(int), 2)


class Scored:
    """Probabilities of one model on one window set under a few session orders,
    cheap to re-score under any neutral prior."""

    def __init__(self, model, ws: WindowSet, spec: dict, names, seeds=(None,)):
        self.ws, self.names = ws, list(names)
        self.orders = {s: sessions(ws, s) for s in seeds}
        self.probs = {s: _predict(model, ws, spec, self.orders[s]) for s in seeds}
        self.y = np.array([self.names.index(label_of(e)) for e in ws.clip_emotions])

    def _weighted(self, seed, bias):
        """``bias``: the neutral log-prior (a number) or a log-prior per class (a vector)."""
        from ..emotion import prior_weights, reweight

        p = self.probs[seed]
        if np.ndim(bias):
            return reweight(p, np.exp(np.asarray(bias) - np.max(bias)))
        return reweight(p, prior_weights(self.names, bias)) if bias else p

    def clip_scores(self, bias: float, seed=None) -> dict:
        p = self._weighted(seed, bias)
        n_clips = len(self.ws.clip_emotions)
        pred = clip_predictions(p, self.ws.clip_of_window, n_clips)
        out = scores(self.y, pred, self.names)
        mean = np.stack([p[self.ws.clip_of_window == c].mean(0) if np.any(self.ws.clip_of_window == c)
                         else np.full(len(self.names), 1 / len(self.names)) for c in range(n_clips)])
        out["arousal_ua"] = arousal_ua(self.ws.clip_emotions, mean, self.names)
        out["ua_per_speaker"] = ua_by_group(self.y, pred, self.ws.clip_speakers, self.names)
        return out

    def stream_labels(self, bias: float, seed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(window index, shown label, position in its session) in streaming order."""
        p = self._weighted(seed, bias)
        idx, lab, pos = [], [], []
        for order in self.orders[seed]:
            shown = smoothed(p, order, self.ws.clip_of_window)
            idx.append(order)
            lab.append(shown.argmax(1))
            pos.append(np.arange(len(order)))
        return np.concatenate(idx), np.concatenate(lab), np.concatenate(pos)

    def window_scores(self, bias: float) -> dict:
        """Window UA in streaming order and over the first windows of each
        session (cold start), pooled over the session orders."""
        truth, shown, cold = [], [], []
        for seed in self.orders:
            idx, lab, pos = self.stream_labels(bias, seed)
            truth.append(self.y[self.ws.clip_of_window[idx]])
            shown.append(lab)
            cold.append(pos < COLD_WINDOWS)
        truth, shown, cold = map(np.concatenate, (truth, shown, cold))
        n = len(self.names)
        return {"window_ua": _ua(truth, shown, n), "cold_ua": _ua(truth[cold], shown[cold], n),
                "windows": int(len(truth) // len(self.orders))}

    def shares(self, bias: float) -> dict:
        """Share of each shown label over every window (ordinary speech)."""
        lab = np.concatenate([self.stream_labels(bias, s)[1] for s in self.orders])
        return {n: float(np.mean(lab == k)) for k, n in enumerate(self.names)}


def ordinary_summary(share: dict) -> dict:
    other = max((v, k) for k, v in share.items() if k != "neutral")
    return {"neutral": round(share.get("neutral", 0.0), 4), "top_other": other[1], "top_other_share": round(other[0], 4)}


def speech_set(speech_dir: Path, features: str = "mfcc") -> WindowSet:
    """Windows of every recording in ``speech_dir`` as the stream cuts them: a
    recording is a session ("speaker"), an utterance a clip; labelled neutral
    (ordinary, calm speech)."""
    import soundfile as sf

    from ..features import extractor
    from ..windows import clip_windows, cut

    raw_features = extractor(features)

    xs, owner, emotions, speakers = [], [], [], []
    for f in sorted(Path(speech_dir).glob("*.flac")):
        audio, _ = sf.read(f, dtype="float32")
        clip_of_utt = {}
        for w in clip_windows(audio):
            if w.utterance not in clip_of_utt:
                clip_of_utt[w.utterance] = len(emotions)
                emotions.append("neutral")
                speakers.append(f.stem)
            xs.append(raw_features(cut(audio, w)))
            owner.append(clip_of_utt[w.utterance])
    return WindowSet(np.stack(xs).astype(np.float32), np.array(owner), emotions, speakers, 0)


def ordinary(model, spec: dict, names, neutral_dir: Path, speech_dir: Path) -> dict[str, "Scored"]:
    """A model's probabilities on ordinary speech: the calm corpus's val and
    test speakers and ``speech_dir``, each speaker or recording one session."""
    kind = kind_of(spec)
    out = {f"neutral_{s}": Scored(model, load_windows(s, "clean", data_dir=neutral_dir, features=kind), spec, names)
           for s in ("val", "test")}
    if Path(speech_dir).is_dir():
        out["speech"] = Scored(model, speech_set(speech_dir, kind), spec, names)
    return out


def meets_ordinary(summary: dict, neutral: float = 0.80, other: float = 0.08) -> bool:
    return summary["neutral"] >= neutral and summary["top_other_share"] <= other


def evaluate_cv(run_dir: Path | list[Path], data_dir: Path, neutral_dir: Path, speech_dir: Path, names, biases=BIAS_GRID,
                orders=(0, 1, 2), progress=print) -> dict:
    """Score ``run_dir/fold{K}/last.keras`` for every fold at every neutral prior
    in ``biases`` (several run directories: per fold, the :class:`Ensemble` of
    their models).  Returns per-fold rows per prior, their mean and sd, and the
    calibrated prior: the smallest one at which the calm corpus's *val*
    speakers (mean over the fold models) read neutral in at least 80% of
    windows with no other class above 8%."""
    from .cli import load_keras

    runs = [Path(r) for r in run_dir] if isinstance(run_dir, (list, tuple)) else [Path(run_dir)]
    folds = fold_speakers(data_dir)
    kinds = {kind_of(normalise.spec_for(Path(r) / f"fold{k}" / "last.keras")) for r in runs for k in range(len(folds))}
    if len(kinds) > 1:
        from ..errors import UsageError

        raise UsageError(f"the runs were trained on different features ({', '.join(sorted(kinds))}): score them apart")
    kind = kinds.pop()
    clean_all = all_actors(data_dir, features=kind)
    cond_all = {c: all_actors(data_dir, c, seed=1, vad_on="degraded", features=kind) for c in CONDITIONS}
    rows = {float(b): [] for b in biases}
    scored = []  # per fold: (clean, conditions, calm speech)
    for k, speakers in enumerate(folds):
        paths = [Path(r) / f"fold{k}" / "last.keras" for r in runs]
        model = Ensemble([(load_keras(p), normalise.spec_for(p)) for p in paths]) if len(paths) > 1 else load_keras(paths[0])
        spec = normalise.spec_for(paths[0])  # (an ensemble's members use their own)
        progress(f"fold {k} ({', '.join(speakers)}): scoring")
        keep = set(speakers)
        clean = Scored(model, select(clean_all, keep), spec, names, seeds=orders)
        conds = {c: Scored(model, select(ws, keep), spec, names, seeds=(orders[0],)) for c, ws in cond_all.items()}
        calm = ordinary(model, spec, names, neutral_dir, speech_dir)
        scored.append((clean, conds, calm))
        for b in rows:
            rows[b].append(fold_row(k, speakers, clean, conds, calm, b, orders[0]))
    summary = {b: summarise(r) for b, r in rows.items()}
    chosen = next((b for b in sorted(rows) if meets_ordinary(summary[b]["neutral_val"])), None)
    result = {"run": ",".join(str(r) for r in runs), "folds": folds, "orders": list(orders), "calibrated_bias": chosen,
              "calibration_rule": "smallest neutral prior at which the calm corpus's val speakers (mean over fold models) "
                                  "read neutral in >= 80% of windows and no other class in > 8%",
              "by_bias": {f"{b:g}": {"mean_sd": summary[b], "folds": rows[b]} for b in rows}}
    # a log-prior per class, calibrated the same way; nested, so that the fold
    # it is scored on never chose it
    names = list(names)
    start = np.zeros(len(names))
    start[names.index("neutral")] = chosen if chosen is not None else 0.0
    progress("per-class prior: calibrating on all folds, then nested (4 folds choose, the 5th scores)")
    full = calibrate_classes([s for s in scored], start, orders[0])
    nested = []
    for k, speakers in enumerate(folds):
        w = calibrate_classes([s for j, s in enumerate(scored) if j != k], start, orders[0])
        w = start if w is None else w  # nothing meets the rule: the neutral prior alone
        row = fold_row(k, speakers, *scored[k], w, orders[0])
        row["log_prior"] = {n: float(v) for n, v in zip(names, w)}
        nested.append(row)
    result["per_class_prior"] = {"log_prior": {n: float(v) for n, v in zip(names, full)} if full is not None else None,
                                 "nested": {"mean_sd": summarise(nested), "folds": nested},
                                 "rule": "coordinate search (steps of 0.25, -2..3) maximising mean clip UA over the "
                                         "choosing folds while their calm val speakers meet the same 80% / 8% rule"}
    return result


def fold_row(k, speakers, clean, conds, calm, b, order) -> dict:
    clip = clean.clip_scores(b, order)
    row = {"fold": k, "actors": speakers, "clip_ua": clip["ua"], "macro_f1": clip["macro_f1"],
           "arousal_ua": clip["arousal_ua"], **clean.window_scores(b),
           **{f"{c}_ua": s.clip_scores(b, order)["ua"] for c, s in conds.items()},
           "recall": {n: round(r, 3) for n, r in clip["recall"].items()},
           "ua_per_actor": {a: round(u, 3) for a, u in clip["ua_per_speaker"].items()}}
    for name, sc in calm.items():
        share = sc.shares(b)
        row[name] = ordinary_summary(share)
        row[name]["share"] = {n: round(v, 3) for n, v in share.items()}
    return row


def calibrate_classes(scored, start: np.ndarray, order, step: float = 0.25, passes: int = 3):
    """A log-prior per class that maximises the mean clip UA of ``scored``
    folds while their calm val speakers meet :func:`meets_ordinary` (mean
    share over the folds); ``None`` if no point on the search path does."""

    def evaluate(w):
        share = np.mean([[v for v in calm["neutral_val"].shares(w).values()] for _, _, calm in scored], axis=0)
        names = list(scored[0][2]["neutral_val"].names)
        ok = meets_ordinary(ordinary_summary(dict(zip(names, share))))
        return ok, float(np.mean([clean.clip_scores(w, order)["ua"] for clean, _, _ in scored]))

    w = np.array(start, dtype=float)
    ok, best = evaluate(w)
    while not ok and w.max() < 3.0:  # reach the rule first, by the neutral prior
        w[list(scored[0][0].names).index("neutral")] += step
        ok, best = evaluate(w)
    if not ok:
        return None
    for _ in range(passes):
        improved = False
        for c in range(len(w)):
            for d in (-2 * step, -step, step, 2 * step):
                trial = w.copy()
                trial[c] = np.clip(trial[c] + d, -2.0, 3.0)
                ok, ua = evaluate(trial)
                if ok and ua > best + 1e-3:
                    w, best, improved = trial, ua, True
        if not improved:
            break
    return w


METRICS = ("clip_ua", "window_ua", "cold_ua", "arousal_ua", "macro_f1") + tuple(f"{c}_ua" for c in CONDITIONS)


def summarise(rows: list[dict]) -> dict:
    out = {m: [round(float(np.mean([r[m] for r in rows])), 4), round(float(np.std([r[m] for r in rows], ddof=1)), 4)
               if len(rows) > 1 else 0.0] for m in METRICS}
    for name in ("neutral_val", "neutral_test", "speech"):
        if name in rows[0]:
            share = {n: float(np.mean([r[name]["share"][n] for r in rows])) for n in rows[0][name]["share"]}
            out[name] = ordinary_summary(share)
    return out
