"""Memory of the Python API over many files: ``stream_ser.replay`` in one loop.

A script that scores an archive calls ``for ev in stream_ser.replay(path)``
once per file, in one process.  Each call loads its own models, so memory has
to come back when a call ends.  This runs ``--rounds`` rounds over the shared
speech recordings (transcript on, ``speed=0``; they all end cleanly, and the
ways a call ends in an error are checked by tests/test_pipeline.py), never
calling the garbage collector itself, and prints RSS after every file.  The
first rounds grow a little (the allocator's per-thread arenas fill); the
figure is the growth per call over the second half of the rounds, which
should be near 0.  Before the stages' error callback stopped making a
reference cycle (pipeline._weak), it was about 80 MiB per call
(bench/results/archive/api_loop_c688982_before_weak_callback.json).

    python bench/api_loop.py [--rounds 8] [--json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

NAME = "api_loop"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8, help="passes over the speech recordings (default 8, at least 2)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if args.rounds < 2:
        ap.error("--rounds must be at least 2")
    paths = [C.SPEECH / r["path"] for r in C.speech_rows()]
    import stream_ser

    rows, ends = [], []
    with C.stdout_to_stderr():
        for k in range(1, args.rounds + 1):
            for p in paths:
                t0 = time.perf_counter()
                n = sum(1 for _ in stream_ser.replay(str(p), speed=0))
                st = C.proc_status(os.getpid())
                rows.append({"round": k, "file": p.name, "events": n, "seconds": round(time.perf_counter() - t0, 2),
                             "rss_mib": round(st["VmRSS"], 1)})
                C.log(f"round {k}  {p.name:40s} {n:4d} events  {rows[-1]['seconds']:6.2f} s  RSS {st['VmRSS']:7.1f} MiB")
            ends.append(rows[-1]["rss_mib"])
    half = len(ends) // 2  # the steady state: from the end of this round to the end of the last
    growth = round(ends[-1] - ends[half - 1], 1) if half >= 1 else None
    per_call = round(growth / (len(paths) * (len(ends) - half)), 2) if growth is not None else None
    result = {"files": len(paths), "rounds": args.rounds, "calls": len(rows), "rss_end_of_round_mib": ends,
              "steady_from_round": half, "growth_steady_mib": growth, "growth_per_call_mib": per_call,
              "targets": [C.target("RSS growth per replay() call, second half", per_call, "<=", 1.0, "MiB")],
              "calls_detail": rows}

    def text() -> str:
        return (C.table([[i + 1, e] for i, e in enumerate(ends)], ["round", "RSS at its end, MiB"])
                + f"\n\n{len(rows)} calls of stream_ser.replay over {len(paths)} files; growth after round {half}: {growth} MiB"
                  f" ({per_call} MiB per call)")

    C.finish(NAME, result, args.json, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
