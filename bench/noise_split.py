"""What the 10 dB noise condition is made of: white noise and babble apart,
and babble of ordinary talk beside them.

``stream-ser evaluate --cv`` scores one "noisy" condition, 10 dB SNR against the
clip's active speech level (P.56, :func:`stream_ser.training.augment.speech_level`), white noise or babble (three other actors' clips of the
same split summed) chosen per clip.  This scores each cross-validation fold
model (``runs/NAME/foldK/last.keras``) on its own actors' clips under each
kind alone, and under "talk" (three calm read-speech clips of the calm
corpus's test speakers, ``../shared/data/neutral``, summed: background talk that acts no
emotion, which evaluate does not score), with the VAD on the noisy audio as ``replay`` runs it, plus the
clean clips; clip UA at the run's calibrated prior (0 if none), mean and sd
over the folds.  The noise is drawn with a fixed seed, the same for every run.

    python bench/noise_split.py --runs cvH,cvH_s1,cvT,cvT_s1 [--snr 10] [--json]

Needs ../shared/data/ser and the run directories (not in the repository);
the figures quoted in models/MODEL_CARD.md are its --json output,
models/runs/noise_split.json (and noise_split_5db.json, --snr 5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402


def noisy_sets(data_dir: Path, snr: float, kind: str, talk_dir: Path) -> dict:
    import soundfile as sf

    from stream_ser.features import extractor
    from stream_ser.sources import condition
    from stream_ser.training import augment
    from stream_ser.training.dataset import WindowSet, read_manifest
    from stream_ser.windows import clip_windows, cut

    clips = read_manifest(data_dir)
    audio = [sf.read(c.path, dtype="float32")[0] for c in clips]
    # the calm corpus's test speakers: no model heard them, as a voice or as training babble
    talk = [sf.read(c.path, dtype="float32")[0] for c in read_manifest(talk_dir) if c.split == "test"]
    extract = extractor(kind)
    out = {}
    for name in ("white", "babble", "talk"):
        rng = np.random.default_rng(20)
        xs, owner = [], []
        for i, (clip, y) in enumerate(zip(clips, audio)):
            # as evaluate's conditions: three clips drawn among the other speakers of the same split
            # (a draw among all clips, filtered after, left most clips of a 3-actor split with white noise)
            pool = [j for j, c in enumerate(clips) if c.speaker != clip.speaker and c.split == clip.split]
            others = [audio[j] for j in rng.choice(pool, 3)]
            if name == "talk":  # three calm read-speech clips (the calm corpus's speakers, no actor)
                others = [talk[j] for j in rng.choice(len(talk), 3)]
            noisy = condition(augment.add_noise(y, rng, snr_db=snr, babble=None if name == "white" else others))
            for w in clip_windows(noisy):
                xs.append(extract(cut(noisy, w)))
                owner.append(i)
        out[f"{name}_{snr:g}db"] = WindowSet(np.stack(xs).astype(np.float32), np.array(owner),
                                             [c.emotion for c in clips], [c.speaker for c in clips], 0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True, help="run directories under runs/, comma-separated")
    ap.add_argument("--snr", type=float, default=10.0, help="SNR in dB (default 10, evaluate's)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from stream_ser.features import kind_of
    from stream_ser.labels import EMOTIONS
    from stream_ser.training import cv, normalise
    from stream_ser.training.cli import load_keras
    from stream_ser.training.dataset import DEFAULT_DATA

    NEUTRAL = DEFAULT_DATA.parent / "neutral"

    runs = [C.ROOT / "runs" / r for r in args.runs.split(",")]
    kinds = {kind_of(normalise.spec_for(r / "fold0" / "last.keras")) for r in runs}
    if len(kinds) != 1:
        sys.exit("noise_split: the runs use different features; score them apart")
    kind = kinds.pop()
    sets = {"clean": cv.all_actors(DEFAULT_DATA, features=kind), **noisy_sets(DEFAULT_DATA, args.snr, kind, NEUTRAL)}
    result = {"snr_db": args.snr, "runs": {}}
    for run in runs:
        scored = json.loads((C.ROOT / "models" / "runs" / f"{run.name}.json").read_text()) if (C.ROOT / "models" / "runs" / f"{run.name}.json").exists() else {}
        bias = scored.get("calibrated_bias") or 0.0
        per = {n: [] for n in sets}
        for k, speakers in enumerate(cv.fold_speakers(DEFAULT_DATA)):
            path = run / f"fold{k}" / "last.keras"
            model, spec = load_keras(path), normalise.spec_for(path)
            for n, ws in sets.items():
                per[n].append(cv.Scored(model, cv.select(ws, set(speakers)), spec, EMOTIONS, seeds=(0,)).clip_scores(bias, 0)["ua"])
        result["runs"][run.name] = {"neutral_bias": bias, **{n: {"mean": round(statistics.mean(v), 4), "sd": round(statistics.stdev(v), 4),
                                                               "folds": [round(x, 4) for x in v]} for n, v in per.items()}}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    names = list(sets)
    print(f"clip UA over the 5 folds (mean +- sd), VAD on the noisy audio, {args.snr:g} dB SNR")
    print(f"{'run':<10}" + "".join(f"{n:>18}" for n in names))
    for r, row in result["runs"].items():
        print(f"{r:<10}" + "".join(f"{row[n]['mean']:>11.3f} +- {row[n]['sd']:.3f}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
