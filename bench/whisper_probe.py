"""A measurement for issue 20, not a product feature: do the bundled whisper
model's encoder states carry more about acted emotion than the stream's
ZCR + RMS + MFCC tracks?  A linear probe answers it cheaply.

For every clip of RAVDESS actors 01-20 (``../shared/data/ser``), of the calm
corpus's train and test speakers (``../shared/data/neutral``) and of the
shared speech recordings (``../shared/data/speech``, each recording one
speaker), the stream's windows (``clip_windows`` on the conditioned clip, as
training cuts them) become vectors:
  mfcc         the window's 22 raw feature tracks (``stream_ser.features``),
               mean and std over its 108 frames: 44 values
  whisper      tiny.en's encoder output for the window, its 250 log-mel
               frames padded with zeros to 1000 (2.5 s of audio and 7.5 s of
               padding, as faster-whisper pads a decode; the transcriber's
               encoder_padding would give 1300), mean and std over the 125
               positions that hold the window: 768 values
  whisper-2.5s the same with no padding (the encoder sees the 2.5 s alone)
Each speaker's vectors are z-normalised with that speaker's own mean and std
(all of the speaker's windows: the optimistic end of session normalisation;
RAVDESS actors each speak the same balanced set of emotions, which makes
their mean an unusually good reference).
A logistic regression (scikit-learn, L2, C from a small grid chosen on the
training folds' own grouped CV) is scored on the same 5 folds of 4 actors as
``stream-ser evaluate --cv``: clip UA (a clip's windows' mean probability,
7 classes, calm as neutral) and binary arousal UA (disgust left out), mean
and sd over folds.  "+calm" rows also train on the calm corpus's train
speakers (all their windows weighing half of RAVDESS's neutral windows, as
``--calm-weight 0.5``) and report, per fold model, the share of windows read
as neutral, and the largest other class, on the calm test speakers and on
``speech/``.  Clean audio only, no augmentation: compare the rows with each
other, and only loosely with the CNN's CV rows.

    python bench/whisper_probe.py [--json] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402
import numpy as np  # noqa: E402

NAME = "whisper_probe"
PAD_FRAMES = 1000  # 10 s of log-mel frames: the window and 7.5 s of zeros
WINDOW_FRAMES = 250  # log-mel frames of a 2.5 s window
WINDOW_POSITIONS = 125  # encoder positions (2 log-mel frames each) of a 2.5 s window
C_GRID = (0.001, 0.01, 0.1)


def clip_list(limit: int | None, conditions: tuple[str, ...] = ()) -> list[tuple[Path, str, str, str]]:
    """(path, speaker, emotion, set) for every clip used: set is "ravdess",
    "ravdess_<condition>" (the clip degraded), "calm_train", "calm_test" or
    "speech"."""
    from stream_ser.training.dataset import DEFAULT_DATA, read_manifest

    ravdess = read_manifest(DEFAULT_DATA)
    if limit:
        ravdess = [ravdess[i] for i in sorted(np.random.default_rng(0).choice(len(ravdess), min(limit, len(ravdess)), replace=False))]
    out = [(c.path, c.speaker, c.emotion, "ravdess") for c in ravdess]
    out += [(c.path, c.speaker, c.emotion, f"ravdess_{cond}") for cond in conditions for c in ravdess]
    calm_dir = DEFAULT_DATA.parent / "neutral"
    with open(calm_dir / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] in ("train", "test")]
    if limit:
        rows = [rows[i] for i in sorted(np.random.default_rng(0).choice(len(rows), min(limit, len(rows)), replace=False))]
    out += [(calm_dir / r["path"], r["speaker"], "neutral", f"calm_{r['split']}") for r in rows]
    out += [(p, f"speech_{p.stem}", "neutral", "speech") for p in sorted((DEFAULT_DATA.parent / "speech").glob("*.flac"))]
    return out


def vectors(clips):
    import soundfile as sf

    from stream_ser.features import raw_features
    from stream_ser.sources import condition
    from stream_ser.transcribe import TranscribeOptions, load_whisper
    from stream_ser.windows import clip_windows, cut

    whisper = load_whisper(TranscribeOptions(encoder_padding=None))
    rows = {"mfcc": [], "whisper": [], "whisper-2.5s": []}
    cpu = {"mfcc": 0.0, "whisper": 0.0, "whisper-2.5s": 0.0}
    clip_of = []

    def timed(name, f):
        t = time.process_time()
        v = f()
        cpu[name] += time.process_time() - t
        rows[name].append(v)

    def states(mel, frames):
        padded = np.ascontiguousarray(np.pad(mel, ((0, 0), (0, frames - mel.shape[1]))), dtype=np.float32)
        s = np.array(whisper.encode(padded))[0, :WINDOW_POSITIONS]
        return np.concatenate([s.mean(0), s.std(0)])

    from stream_ser.training import augment

    babble = [(spk, sf.read(p, dtype="float32")[0]) for p, spk, _, s in clips[:: max(1, len(clips) // 40)] if s == "ravdess"][:40]
    for c, (path, speaker, _, kind) in enumerate(clips):
        y, sr = sf.read(path, dtype="float32")
        assert sr == 16000, path
        y = y if y.ndim == 1 else y.mean(axis=1)
        if kind.startswith("ravdess_"):  # degraded as `stream-ser evaluate` does; the VAD runs on the result
            rng = np.random.default_rng([c, sum(map(ord, kind))])
            voices = [a for spk, a in babble if spk != speaker]  # three other speakers, as training's babble
            others = [voices[j] for j in rng.choice(len(voices), 3)]
            y = augment.apply(kind.split("_", 1)[1], y, rng, babble=others)
        y = condition(y)
        for w in clip_windows(y):
            audio = cut(y, w)
            raw = raw_features(audio).astype(np.float64)
            timed("mfcc", lambda: np.concatenate([raw.mean(0), raw.std(0)]))
            mel = whisper.feature_extractor(audio)[:, :WINDOW_FRAMES]
            timed("whisper", lambda: states(mel, PAD_FRAMES))
            timed("whisper-2.5s", lambda: states(mel, WINDOW_FRAMES))
            clip_of.append(c)
    return {k: np.array(v) for k, v in rows.items()}, np.array(clip_of), cpu


def by_speaker(x: np.ndarray, speaker_of_window: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for s in np.unique(speaker_of_window):
        sel = speaker_of_window == s
        out[sel] = (x[sel] - x[sel].mean(0)) / (x[sel].std(0) + 1e-6)
    return out


def balanced_weights(y: np.ndarray, n: int) -> np.ndarray:
    counts = np.bincount(y, minlength=n).astype(float)
    return len(y) / (n * counts[y])


def probe(x, y, clip_of, spk, sets, emotions, folds, names, with_calm: bool, clip_info):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    from stream_ser.training.cv import _ua, arousal_ua
    from stream_ser.training.metrics import clip_predictions

    neutral = names.index("neutral")
    ravdess = sets == "ravdess"
    calm_train = sets == "calm_train"

    def fit(train, c):
        rv = train & ravdess
        w = np.zeros(len(y))
        w[rv] = balanced_weights(y[rv], len(names))
        if with_calm:
            cm = train & calm_train
            w[cm] = 0.5 * w[rv & (y == neutral)].sum() / max(cm.sum(), 1)
        use = w > 0
        return LogisticRegression(C=c, max_iter=3000).fit(x[use], y[use], sample_weight=w[use])

    def share(model, sel):
        pred = model.predict(x[sel])
        counts = np.bincount(pred, minlength=len(names)) / max(len(pred), 1)
        other = max((counts[k], names[k]) for k in range(len(names)) if k != neutral)
        return {"neutral": round(float(counts[neutral]), 4), "top_other": other[1], "top_other_share": round(float(other[0]), 4)}

    clip_set, clip_speaker, clip_label = clip_info

    def degraded_ua(model, cond, fold):
        # every clip of the fold's actors counts: one the VAD finds no speech in is wrong (as in evaluate)
        test_clips = np.flatnonzero((clip_set == f"ravdess_{cond}") & np.isin(clip_speaker, fold))
        sel = np.isin(clip_of, test_clips)
        local = {c: i for i, c in enumerate(test_clips)}
        pred = clip_predictions(model.predict_proba(x[sel]), np.array([local[c] for c in clip_of[sel]]), len(test_clips))
        return round(_ua(clip_label[test_clips], pred, len(names)), 4)

    conditions = sorted({s.split("_", 1)[1] for s in np.unique(sets) if s.startswith("ravdess_")})
    rows = []
    for k, fold in enumerate(folds):
        test = ravdess & np.isin(spk, fold)
        train = ~test & (ravdess | calm_train)
        best = None
        for c in C_GRID:  # chosen on the training folds only, grouped by RAVDESS speaker
            inner = []
            rv = np.flatnonzero(train & ravdess)
            for tr, va in GroupKFold(4).split(rv, groups=spk[rv]):
                inner_train = train.copy()
                inner_train[rv[va]] = False
                m = fit(inner_train, c)
                inner.append(_ua(y[rv[va]], m.predict(x[rv[va]]), len(names)))
            if best is None or np.mean(inner) > best[0]:
                best = (float(np.mean(inner)), c)
        model = fit(train, best[1])
        probs = model.predict_proba(x[test])
        test_clips = np.unique(clip_of[test])
        local = {c: i for i, c in enumerate(test_clips)}
        pred = clip_predictions(probs, np.array([local[c] for c in clip_of[test]]), len(test_clips))
        clip_y = np.array([y[clip_of == c][0] for c in test_clips])
        clip_probs = np.array([probs[clip_of[test] == c].mean(0) for c in test_clips])
        row = {"fold": k, "actors": fold, "C": best[1], "clip_ua": round(_ua(clip_y, pred, len(names)), 4),
               "arousal_ua": round(arousal_ua([emotions[c] for c in test_clips], clip_probs, names), 4)}
        for cond in conditions:  # the model trained on clean windows, scored on the fold's degraded clips
            row[f"{cond}_ua"] = degraded_ua(model, cond, fold)
        if with_calm:
            row["calm_test"] = share(model, sets == "calm_test")
            row["speech"] = share(model, sets == "speech")
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--limit", type=int, default=None, help="N clips of each corpus, drawn at random (a smoke run)")
    ap.add_argument("--conditions", default="", help="degraded RAVDESS copies to score too, e.g. telephone,noisy")
    args = ap.parse_args()
    from stream_ser.labels import EMOTIONS
    from stream_ser.training.cv import fold_speakers
    from stream_ser.training.dataset import DEFAULT_DATA, label_of

    names = list(EMOTIONS)
    conditions = tuple(c for c in args.conditions.split(",") if c)
    clips = clip_list(args.limit, conditions)
    C.log(f"whisper probe: windows, features and encoder states of {len(clips)} clips ...")
    xs, clip_of, cpu = vectors(clips)
    # a degraded copy is its own session (another microphone): normalised apart
    spk = np.array([c[1] if c[3] in ("ravdess", "calm_train", "calm_test", "speech") else f"{c[1]}@{c[3]}" for c in clips])[clip_of]
    sets = np.array([c[3] for c in clips])[clip_of]
    emotions = [c[2] for c in clips]
    y = np.array([names.index(label_of(c[2])) for c in clips])[clip_of]
    folds = fold_speakers(DEFAULT_DATA)
    n_windows = len(clip_of)
    result = {"windows": {str(s): int((sets == s).sum()) for s in np.unique(sets)},
              "cpu_ms_per_window": {k: round(1000 * v / n_windows, 2) for k, v in cpu.items()},
              "c_grid": list(C_GRID), "rows": {}}
    for name, with_calm in (("mfcc", False), ("whisper", False), ("whisper-2.5s", False), ("mfcc", True), ("whisper", True)):
        label = name + (" +calm" if with_calm else "")
        C.log(f"probe: {label} ({xs[name].shape[1]} values per window) ...")
        clip_info = (np.array([c[3] for c in clips]), np.array([c[1] for c in clips]),
                     np.array([names.index(label_of(c[2])) for c in clips]))
        rows = probe(by_speaker(xs[name], spk), y, clip_of, spk, sets, emotions, folds, names, with_calm, clip_info)
        r = {"values": int(xs[name].shape[1]), "folds": rows}
        for m in ("clip_ua", "arousal_ua") + tuple(f"{c}_ua" for c in conditions):
            r[f"{m}_mean"], r[f"{m}_sd"] = round(float(np.mean([f[m] for f in rows])), 4), round(float(np.std([f[m] for f in rows])), 4)
        if with_calm:
            for s in ("calm_test", "speech"):
                r[f"{s}_neutral_mean"] = round(float(np.mean([f[s]["neutral"] for f in rows])), 4)
                r[f"{s}_top_other_max"] = max((f[s]["top_other_share"], f[s]["top_other"]) for f in rows)
        result["rows"][label] = r

    def calm(r, s):
        if f"{s}_neutral_mean" not in r:
            return "-"
        share, cls = r[f"{s}_top_other_max"]
        return f"{100 * r[f'{s}_neutral_mean']:.0f}% / {cls} {100 * share:.0f}%"

    table = [[label, r["values"], f"{r['clip_ua_mean']:.3f} ± {r['clip_ua_sd']:.3f}", f"{r['arousal_ua_mean']:.3f} ± {r['arousal_ua_sd']:.3f}"]
             + [f"{r[f'{c}_ua_mean']:.3f}" for c in conditions]
             + [calm(r, "calm_test"), calm(r, "speech"), " ".join(f"{f['clip_ua']:.3f}" for f in r["folds"])]
             for label, r in result["rows"].items()]
    text = (C.table(table, ["vectors", "values", "clip UA (5 folds)", "arousal UA"] + [f"{c} UA" for c in conditions]
                    + ["calm test: neutral / worst other", "speech/: neutral / worst other", "clip UA per fold"])
            + f"\nwindows {result['windows']}; CPU ms per window {result['cpu_ms_per_window']} (whisper: the encoder alone)")
    C.finish(NAME, result, args.json, text)


if __name__ == "__main__":
    main()
