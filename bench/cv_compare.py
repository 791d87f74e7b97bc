"""Paired per-fold differences between cross-validated recipes (issue 20's decision rule).

Reads ``stream-ser evaluate --cv ... --write`` results (models/runs/NAME.json),
each at its own calibrated neutral prior, and prints for every metric: the mean
over the folds of each side's runs (several runs = seeds), and the per-fold
differences A - B, paired by fold and by position in the list (seed), with
their mean and sd.  ``--members`` instead compares A (one run, e.g. a seed
ensemble) with the mean of the B runs fold by fold.

    python bench/cv_compare.py --a cvWS,cvWS_s1 --b cvW,cvW_s1 [--json]
    python bench/cv_compare.py --a cvWS_ens --b cvWS,cvWS_s1 --members [--json]

Outputs of the comparisons quoted in models/MODEL_CARD.md are in models/runs/cmp_*.txt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

RUNS = C.ROOT / "models" / "runs"
METRICS = ("clip_ua", "window_ua", "arousal_ua", "telephone_ua", "noisy_ua", "reverb_ua", "mp3_ua")


def folds(name: str, metric: str) -> list[float]:
    d = json.loads((RUNS / f"{name}.json").read_text())
    bias = d["calibrated_bias"] if d["calibrated_bias"] is not None else 0.0
    return [f[metric] for f in d["by_bias"][f"{bias:g}"]["folds"]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="run names, comma-separated (models/runs/NAME.json)")
    ap.add_argument("--b", required=True, help="run names, comma-separated")
    ap.add_argument("--members", action="store_true", help="A is one run, compared with the mean of the B runs per fold")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    a, b = args.a.split(","), args.b.split(",")
    if not args.members and len(a) != len(b):
        sys.exit("cv_compare: --a and --b need as many runs (paired by seed)")
    rows = []
    for m in METRICS:
        fa, fb = [folds(n, m) for n in a], [folds(n, m) for n in b]
        if args.members:
            diffs = [x - statistics.mean(ys) for x, *ys in zip(fa[0], *fb)]
        else:
            diffs = [x - y for ra, rb in zip(fa, fb) for x, y in zip(ra, rb)]
        rows.append({"metric": m, "a_mean": round(statistics.mean(v for r in fa for v in r), 4),
                     "b_mean": round(statistics.mean(v for r in fb for v in r), 4),
                     "diff_mean": round(statistics.mean(diffs), 4), "diff_sd": round(statistics.stdev(diffs), 4),
                     "diffs": [round(d, 4) for d in diffs]})
    text = C.table([[r["metric"], r["a_mean"], r["b_mean"], f'{r["diff_mean"]:+.4f}', r["diff_sd"]] for r in rows],
                   ["metric", f"A {args.a}", f"B {args.b}", "A-B per fold, mean", "sd"])
    # (no bench/results file: the runs compared are in models/runs, and so is this output)
    print(json.dumps({"a": a, "b": b, "members": args.members, "rows": rows}) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
