"""How far the old noise level was off: the speech level ``add_noise`` used
before 2026-12-02 (the mean square of the samples above 10% of the clip's
peak) against ITU-T P.56 active speech level
(:func:`stream_ser.training.augment.speech_level`), and P.56 against the
whole clip's mean power, in dB, over every 12th clip of ../shared/data/ser.

    python bench/speech_level.py [--json]

The printout quoted in models/MODEL_CARD.md and models/runs/cv_plan7.rule is
models/runs/speech_level.txt.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402,F401  (puts the checkout first on sys.path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import soundfile as sf

    from stream_ser.training.augment import speech_level
    from stream_ser.training.dataset import DEFAULT_DATA, read_manifest

    old_over_p56, p56_over_mean = [], []
    clips = read_manifest(DEFAULT_DATA)[::12]
    for c in clips:
        y = sf.read(c.path, dtype="float32")[0]
        old = np.mean(y[np.abs(y) > 0.1 * np.abs(y).max()] ** 2)
        level = speech_level(y)
        old_over_p56.append(10 * np.log10(old / level))
        p56_over_mean.append(10 * np.log10(level / np.mean(y**2)))

    def stats(v):
        return {k: round(float(np.percentile(v, q)), 2) for k, q in (("p10", 10), ("median", 50), ("p90", 90))}

    result = {"clips": len(clips), "old_over_p56_db": stats(old_over_p56), "p56_over_clip_mean_db": stats(p56_over_mean)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{len(clips)} clips (every 12th of {DEFAULT_DATA.name}/manifest.csv), dB: p10 / median / p90")
    for name, key in (("old level (samples > 10% of peak) over P.56", "old_over_p56_db"),
                      ("P.56 over the whole clip's mean power", "p56_over_clip_mean_db")):
        s = result[key]
        print(f"{name:<46} {s['p10']:6.2f} / {s['median']:6.2f} / {s['p90']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
