"""Start-up time: ``stream-ser --help``, and launch-to-first-audio of ``listen``.

  --help       wall time of ``stream-ser --help`` (median of 5; target <= 0.3 s)
  listen       on the virtual microphone (tests/virtual_mic.py): from launching
               ``stream-ser listen --plain --jsonl X`` to the emitted_at of the
               first status event with end > 0 (the first captured block; all
               models loaded).  Cold = the first run in this process (whatever
               the OS page cache holds), warm = median of the next --warm runs.
               Each run is then ended with SIGINT.

    python bench/startup.py [--warm 2] [--json]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

NAME = "startup"


def help_time() -> float:
    t0 = time.perf_counter()
    r = subprocess.run(C.cli_cmd() + ["--help"], cwd=C.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"stream-ser --help exited {r.returncode}: {r.stderr.decode(errors='replace')[-400:]}")
    return dt


def listen_open(mic, tmp: Path, k: int, timeout: float = 180.0) -> dict:
    jsonl = tmp / f"listen{k}.jsonl"
    env = dict(mic.env, TF_CPP_MIN_LOG_LEVEL="3")
    launched = time.time()
    p = subprocess.Popen(C.cli_cmd() + ["listen", "--plain", "--jsonl", str(jsonl)], cwd=C.ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tail = C.EventTail(jsonl)
    first = None
    try:
        deadline = time.monotonic() + timeout
        while first is None and time.monotonic() < deadline and p.poll() is None:
            first = next((e for e in tail.poll() if e.get("type") == "status" and e.get("end", 0) > 0), None)
            if first is None:
                time.sleep(0.02)
        cpu = C.proc_cpu_seconds(p.pid)
        p.send_signal(signal.SIGINT)
        try:
            _, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if first is None:
        raise RuntimeError(f"listen never opened the stream (exit {p.returncode}): {err.decode(errors='replace')[-600:]}")
    return {"open_s": round(first["emitted_at"] - launched, 3), "cpu_s_at_open": cpu, "exit_code": p.returncode}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--help-runs", type=int, default=5, help="runs of stream-ser --help (default 5)")
    ap.add_argument("--warm", type=int, default=2, help="warm listen runs after the cold one (default 2)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    C.need_pulse()
    C.log("startup: stream-ser --help ...")
    helps = [round(help_time(), 3) for _ in range(args.help_runs)]
    from stream_ser.virtual_mic import VirtualMic

    tmp = C.tempdir(NAME)
    runs = []
    with VirtualMic() as mic:
        for k in range(1 + args.warm):
            C.log(f"startup: listen run {k + 1}/{1 + args.warm} ({'cold' if k == 0 else 'warm'}) ...")
            runs.append(listen_open(mic, tmp, k))
    cold = runs[0]["open_s"]
    warm = round(statistics.median(r["open_s"] for r in runs[1:]), 3) if len(runs) > 1 else None
    result = {
        "help_s": {"median": round(statistics.median(helps), 3), "runs": helps},
        "listen_open_s": {"cold": cold, "warm_median": warm, "runs": runs},
        "cli": " ".join(os.path.basename(c) for c in C.cli_cmd()),
        "targets": [C.target("stream-ser --help (median)", round(statistics.median(helps), 3), "<=", 0.3, "s")],
    }

    def text() -> str:
        rows = [["stream-ser --help", result["help_s"]["median"], " ".join(f"{x:.3f}" for x in helps)],
                ["listen: launch -> first status (cold)", cold, ""],
                ["listen: launch -> first status (warm, median)", warm, " ".join(f"{r['open_s']:.2f}" for r in runs[1:])]]
        return C.table(rows, ["start-up", "seconds", "runs"])

    C.finish(NAME, result, args.json, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
