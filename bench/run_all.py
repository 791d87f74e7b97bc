"""Run every benchmark with short settings (``make bench``, < 15 min on 2 free
cores) and print one table of every target: met / missed / figure.

Each script runs as a subprocess with --json; its one JSON object is collected
(also in bench/results/<name>.json), a script that fails is reported and the
rest still run.  Writes bench/results/summary.json.

    python bench/run_all.py [--soak [--soak-minutes 60]] [--only a,b] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

NAME = "summary"


def plan(args) -> list[tuple[str, list[str], float]]:
    """(script, arguments, timeout s)."""
    p = [
        ("startup", [], 300),
        ("window", ["--runs", "100"], 600),
        ("throughput", ["--minutes", "5"], 900),
        ("latency", [], 600),
        ("transcript", [], 1200),
        ("decode_threads", [], 300),
        ("encoder_padding", [], 600),
        ("live", ["--minutes", "3"], 900),
        ("dashboard", [], 300),
        ("api_loop", [], 900),
    ]
    if args.soak:
        p.append(("soak", ["--minutes", f"{args.soak_minutes:g}"], args.soak_minutes * 60 + 900))
    if args.only:
        keep = set(args.only.split(","))
        p = [x for x in p if x[0] in keep]
    return p


def run_one(name: str, extra: list[str], timeout: float) -> dict:
    cmd = [sys.executable, str(C.BENCH / f"{name}.py"), *extra, "--json"]
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, cwd=C.ROOT, stdout=subprocess.PIPE, stderr=None, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s", "elapsed_s": round(time.monotonic() - t0, 1)}
    elapsed = round(time.monotonic() - t0, 1)
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    if r.returncode != 0 or not lines:
        return {"ok": False, "error": f"exit {r.returncode}" + (f": {lines[-1][:300]}" if lines else ""), "elapsed_s": elapsed}
    try:
        obj = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        return {"ok": False, "error": f"stdout is not one JSON object ({e})", "elapsed_s": elapsed}
    if len(lines) != 1:
        obj.setdefault("warnings", []).append(f"{len(lines) - 1} extra stdout lines before the JSON object")
    return {"ok": True, "elapsed_s": elapsed, "result": obj}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--soak", action="store_true", help="also run bench/soak.py")
    ap.add_argument("--soak-minutes", type=float, default=60.0)
    ap.add_argument("--only", metavar="LIST", help="comma-separated subset (startup,window,throughput,latency,transcript,decode_threads,encoder_padding,live,dashboard,api_loop,soak)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    C.need_data()
    runs = {}
    t_all = time.monotonic()
    for name, extra, timeout in plan(args):
        C.log(f"\n=== bench/{name}.py {' '.join(extra)} ===")
        runs[name] = run_one(name, extra, timeout)
        x = runs[name]
        C.log(f"=== {name}: {'ok' if x['ok'] else 'FAILED (' + x['error'] + ')'} in {x['elapsed_s']} s ===")
    targets = []
    for name, x in runs.items():
        if x["ok"]:
            for t in x["result"].get("targets", []):
                targets.append({"bench": name, **t})
    summary = {
        "elapsed_s": round(time.monotonic() - t_all, 1),
        "scripts": {n: {"ok": x["ok"], "elapsed_s": x["elapsed_s"], "error": x.get("error")} for n, x in runs.items()},
        "targets": targets,
        "met": sum(t["met"] is True for t in targets), "missed": sum(t["met"] is False for t in targets),
        "unmeasured": sum(t["met"] is None for t in targets),
        "results": {n: x["result"] for n, x in runs.items() if x["ok"]},
    }

    def text() -> str:
        rows = []
        for t in targets:
            status = "n/a" if t["met"] is None else ("met" if t["met"] else "MISSED")
            rows.append([t["bench"], t["name"], f"{C.fmt(t['value'])} {t['unit']}".strip(), f"{t['op']} {C.fmt(t['limit'])} {t['unit']}".strip(), status])
        for n, x in runs.items():
            if not x["ok"]:
                rows.append([n, "(script failed)", x["error"][:60], "", "FAILED"])
        head = f"bench summary: {summary['met']} met, {summary['missed']} missed, {summary['unmeasured']} n/a; " \
               f"{sum(not x['ok'] for x in runs.values())} script(s) failed; {summary['elapsed_s']:.0f} s\n"
        return head + "\n" + C.table(rows, ["bench", "target", "figure", "goal", ""])

    C.finish(NAME, summary, args.json, text, show_targets=False)
    return 0 if all(x["ok"] for x in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
