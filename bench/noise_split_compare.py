"""Per-fold differences between runs in a noise_split JSON (bench/noise_split.py --json).

    python bench/noise_split_compare.py models/runs/noise_split.json --a cvT,cvT_s1 --b cvH,cvH_s1
    python bench/noise_split_compare.py models/runs/noise_split_cvV.json models/runs/noise_split.json --a cvV,cvV_s1 --b cvT,cvT_s1

Runs may come from several files written at the same SNR (the noise is drawn
with a fixed seed, the same in every file).  Pairs the i-th run of --a with the i-th of --b (seed with seed), fold with fold,
and prints the mean and sd of the differences per kind of noise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="+")
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    args = ap.parse_args()
    runs, snrs = {}, set()
    for f in args.file:
        data = json.load(open(f))
        snrs.add(data["snr_db"])
        runs.update(data["runs"])
    if len(snrs) > 1:
        sys.exit(f"noise_split_compare: the files were written at different SNRs ({', '.join(map(str, sorted(snrs)))} dB)")
    a, b = args.a.split(","), args.b.split(",")
    if len(a) != len(b):
        sys.exit("noise_split_compare: --a and --b need as many runs each")
    kinds = [k for k, v in runs[a[0]].items() if isinstance(v, dict)]
    print(f"{'kind':<14} {'A mean':>8} {'B mean':>8} {'A-B per fold, mean':>19} {'sd':>6}")
    for k in kinds:
        d = [x - y for ra, rb in zip(a, b) for x, y in zip(runs[ra][k]["folds"], runs[rb][k]["folds"])]
        ma = statistics.mean(runs[r][k]["mean"] for r in a)
        mb = statistics.mean(runs[r][k]["mean"] for r in b)
        print(f"{k:<14} {ma:8.3f} {mb:8.3f} {statistics.mean(d):+19.4f} {statistics.stdev(d):6.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
