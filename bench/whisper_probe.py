"""A measurement for issue 20, not a product feature: do the bundled whisper
model's encoder states carry more about acted emotion than the stream's
ZCR + RMS + MFCC tracks?  A linear probe answers it cheaply.

For every clip of RAVDESS actors 01-20 (``../shared/data/ser``), the stream's
windows (``clip_windows`` on the conditioned clip, as training cuts them) are
turned into two vectors:
  mfcc     the window's 22 raw feature tracks (``stream_ser.features``),
           mean and std over its 108 frames: 44 values
  whisper  tiny.en's encoder output for the window (its log-mel frames padded
           with zeros to 10 s, as the transcriber's encoder sees a decode),
           mean and std over the 125 positions that hold the window: 768 values
Each speaker's vectors are z-normalised with that speaker's own mean and std
(all of the speaker's windows: the optimistic end of session normalisation).
A logistic regression (scikit-learn, L2, C chosen from a small grid on the
training folds' own grouped CV) is scored on the same 5 folds of 4 actors as
``stream-ser evaluate --cv``: clip UA (a clip's windows' mean probability,
7 classes, calm as neutral) and binary arousal UA (disgust left out), mean
and sd over folds.  Clean audio only, no calm corpus, no augmentation: compare
the two rows with each other, and only loosely with the CNN's CV rows.

    python bench/whisper_probe.py [--json] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402
import numpy as np  # noqa: E402

NAME = "whisper_probe"
PAD_FRAMES = 1000  # 10 s of log-mel frames: the transcriber's encoder_padding
WINDOW_POSITIONS = 125  # encoder positions (2 log-mel frames each) of a 2.5 s window


def vectors(limit: int | None):
    import soundfile as sf

    from stream_ser.features import raw_features
    from stream_ser.sources import condition
    from stream_ser.training.dataset import DEFAULT_DATA, label_of, read_manifest
    from stream_ser.transcribe import TranscribeOptions, load_whisper
    from stream_ser.windows import clip_windows, cut

    whisper = load_whisper(TranscribeOptions(encoder_padding=None))
    clips = read_manifest(DEFAULT_DATA)
    if limit:
        clips = clips[:: max(1, len(clips) // limit)][:limit]  # spread over the actors
    rows = {"mfcc": [], "whisper": []}
    clip_of, labels, speakers, emotions = [], [], [], []
    t0 = time.process_time()
    for c, clip in enumerate(clips):
        y, sr = sf.read(clip.path, dtype="float32")
        assert sr == 16000, clip.path
        y = condition(y)
        for w in clip_windows(y):
            audio = cut(y, w)
            raw = raw_features(audio).astype(np.float64)
            rows["mfcc"].append(np.concatenate([raw.mean(0), raw.std(0)]))
            mel = whisper.feature_extractor(audio)[:, :-1]  # (80, 250): the window's frames
            mel = np.pad(mel, ((0, 0), (0, PAD_FRAMES - mel.shape[1])))
            states = np.array(whisper.encode(np.ascontiguousarray(mel, dtype=np.float32)))[0, :WINDOW_POSITIONS]
            rows["whisper"].append(np.concatenate([states.mean(0), states.std(0)]))
            clip_of.append(c)
        labels.append(label_of(clip.emotion))
        speakers.append(clip.speaker)
        emotions.append(clip.emotion)
    cpu = time.process_time() - t0
    return {k: np.array(v) for k, v in rows.items()}, np.array(clip_of), labels, speakers, emotions, cpu


def by_speaker(x: np.ndarray, speaker_of_window: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for s in np.unique(speaker_of_window):
        sel = speaker_of_window == s
        out[sel] = (x[sel] - x[sel].mean(0)) / (x[sel].std(0) + 1e-6)
    return out


def probe(x, clip_of, labels, speakers, emotions, folds):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict

    from stream_ser.labels import EMOTIONS
    from stream_ser.training.cv import _ua, arousal_ua
    from stream_ser.training.metrics import clip_predictions

    names = list(EMOTIONS)
    clip_y = np.array([names.index(label) for label in labels])
    y = clip_y[clip_of]
    spk = np.array(speakers)[clip_of]
    rows = []
    for k, fold in enumerate(folds):
        test = np.isin(spk, fold)
        best = None
        for c in (0.01, 0.1, 1.0):  # chosen on the training folds only (grouped by speaker)
            model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
            p = cross_val_predict(model, x[~test], y[~test], groups=spk[~test], cv=GroupKFold(4), method="predict_proba")
            inner = _ua(y[~test], p.argmax(1), len(names))
            if best is None or inner > best[0]:
                best = (inner, c)
        model = LogisticRegression(C=best[1], max_iter=2000, class_weight="balanced").fit(x[~test], y[~test])
        probs = model.predict_proba(x[test])
        test_clips = np.unique(clip_of[test])
        local = {c: i for i, c in enumerate(test_clips)}
        pred = clip_predictions(probs, np.array([local[c] for c in clip_of[test]]), len(test_clips))
        clip_probs = np.array([probs[clip_of[test] == c].mean(0) for c in test_clips])
        rows.append({"fold": k, "actors": fold, "C": best[1], "clip_ua": round(_ua(clip_y[test_clips], pred, len(names)), 4),
                     "arousal_ua": round(arousal_ua([emotions[c] for c in test_clips], clip_probs, names), 4)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--limit", type=int, default=None, help="N clips spread over the manifest (a smoke run)")
    args = ap.parse_args()
    from stream_ser.training.cv import fold_speakers
    from stream_ser.training.dataset import DEFAULT_DATA

    C.log("whisper probe: windows, features and encoder states ...")
    xs, clip_of, labels, speakers, emotions, cpu = vectors(args.limit)
    folds = fold_speakers(DEFAULT_DATA)
    spk = np.array(speakers)[clip_of]
    result = {"windows": int(len(clip_of)), "clips": len(labels), "extract_cpu_s": round(cpu, 1), "rows": {}}
    for name, x in xs.items():
        C.log(f"probe on {name} ({x.shape[1]} values per window) ...")
        folds_rows = probe(by_speaker(x, spk), clip_of, labels, speakers, emotions, folds)
        clip_ua = [r["clip_ua"] for r in folds_rows]
        arousal = [r["arousal_ua"] for r in folds_rows]
        result["rows"][name] = {"dims": int(x.shape[1]), "folds": folds_rows,
                                "clip_ua_mean": round(float(np.mean(clip_ua)), 4), "clip_ua_sd": round(float(np.std(clip_ua)), 4),
                                "arousal_ua_mean": round(float(np.mean(arousal)), 4), "arousal_ua_sd": round(float(np.std(arousal)), 4)}
    table = [[name, r["dims"], f"{r['clip_ua_mean']:.3f} ± {r['clip_ua_sd']:.3f}", f"{r['arousal_ua_mean']:.3f} ± {r['arousal_ua_sd']:.3f}",
              " ".join(f"{f['clip_ua']:.3f}" for f in r["folds"])] for name, r in result["rows"].items()]
    text = (C.table(table, ["vectors", "values", "clip UA (5 folds)", "arousal UA", "per fold"])
            + f"\n{result['windows']} windows of {result['clips']} clips; extraction {result['extract_cpu_s']} CPU s")
    C.finish(NAME, result, args.json, text)


if __name__ == "__main__":
    main()
