"""Generated replay command lines and recordings, many of them: issue 24's
properties over thousands of cases (the CI runs a small seeded profile in
tests/test_fuzz.py; this is the large one).

Each case (tests/fuzzing.py) is a recording of a generated rate, channel
count, format, sample type and length (0 s to minutes) with NaN/Inf/huge/DC
content, with generated numeric options and output paths.  It must end within
its bound with exit 0/1/2, print no traceback, leave every JSONL strictly
valid, leave the input unchanged, leave existing outputs unchanged when it
fails at start and never emptied when it fails, and leave no temporary file.
Most cases run in-process (``stream_ser.cli.main``, models loaded once); every
``--every``-th runs as a real process, and one in ``--signal-every`` gets
SIGTERM at a random moment (exit 143/130 or done within 2 s).

    python bench/fuzz.py [--cases 2000] [--seed 0] [--long 0.02] [--json]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common as C  # noqa: E402
from tests.fuzzing import (SIGNAL_CODES, Audio, RandomDraw, _bound, _strict, check_case, draw_case,  # noqa: E402
                           shared_models)

NAME = "fuzz"


def signal_case(seed: int, where: Path) -> list[str]:
    """A real-time replay that gets SIGTERM at a random moment: it must end within 2 s."""
    d = RandomDraw(seed)
    where.mkdir(parents=True, exist_ok=True)
    src = Audio(kind="speech", seconds=d.choice((3.0, 11.0))).write(where / "in.wav")
    data = src.read_bytes()
    out = where / "e.jsonl"
    if d.chance(0.5):
        out.write_text('{"type":"old"}\n')
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(C.ROOT))
    args = ["--no-transcript"] if d.chance(0.5) else []
    p = subprocess.Popen([sys.executable, "-m", "stream_ser", "replay", str(src), "--speed", "1", "--plain", "--jsonl", str(out), *args],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(d.uniform(0.0, 8.0))
    sig = d.choice((signal.SIGTERM, signal.SIGINT))
    t0 = time.monotonic()
    p.send_signal(sig)
    try:
        p.wait(2.5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return [f"still running {time.monotonic() - t0:.1f} s after {sig.name}"]
    err = p.stderr.read()
    code = 128 - p.returncode if p.returncode < 0 else p.returncode
    problems = []
    if code not in SIGNAL_CODES | {0}:
        problems.append(f"exit {p.returncode} after {sig.name}")
    if "Traceback" in err:
        problems.append("traceback: " + err[err.index("Traceback"):][-400:])
    if src.read_bytes() != data:
        problems.append("input changed")
    if out.exists() and _strict(out.read_text()):
        problems.append("JSONL not strict")
    if list(where.glob("*.partial")):  # outputs open only once the signal handlers are in place
        problems.append("left a .partial file")
    return problems


def _hung(k: int, seed: int, case) -> None:
    print(f"case {k} (seed {seed}) outlived SIGTERM by 20 s: {case.describe()}", file=sys.stderr, flush=True)
    os._exit(3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--long", type=float, default=0.02, help="share of cases with 1-2.5 minutes of audio")
    ap.add_argument("--every", type=int, default=50, help="every N-th case as a real process")
    ap.add_argument("--signal-every", type=int, default=100, help="every N-th case: SIGTERM/SIGINT at a random moment")
    ap.add_argument("--start", type=int, default=0, help="first case number (to re-run one case: --start K --cases 1)")
    ap.add_argument("--trace", action="store_true", help="print each case before it runs")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    tried, failures, codes, t0 = 0, [], {}, time.monotonic()
    kinds = {"in-process": 0, "process": 0, "signal": 0}
    with shared_models(), tempfile.TemporaryDirectory() as tmp:
        for k in range(a.start, a.start + a.cases):
            seed = a.seed * 1_000_003 + k
            where = Path(tmp) / f"case{k}"
            if a.signal_every and k % a.signal_every == a.signal_every - 1:
                problems, kind, code = signal_case(seed, where), "signal", "signal"
            else:
                d = RandomDraw(seed)
                case = draw_case(d, seed, long=d.chance(a.long))
                kind = "process" if a.every and k % a.every == a.every - 1 else "in-process"
                if a.trace:
                    print(f"case {k}: {case.describe()}", flush=True)
                # an in-process case past its bound gets SIGTERM (the session's own handler stops it:
                # exit 143, a failure); one that outlives that by 20 s ends the run, said so
                bound = _bound(case)
                nudge = threading.Timer(bound, os.kill, (os.getpid(), signal.SIGTERM))
                give_up = threading.Timer(bound + 20, _hung, (k, seed, case))
                if kind == "in-process":
                    nudge.start(), give_up.start()
                try:
                    r = check_case(case, where, subprocess_run=kind == "process")
                finally:
                    nudge.cancel(), give_up.cancel()
                problems, code = r.problems, r.code
            tried += 1
            kinds[kind] += 1
            codes[str(code)] = codes.get(str(code), 0) + 1
            if problems:
                failures.append({"case": k, "seed": seed, "kind": kind, "problems": problems})
                if not a.json:
                    print(f"case {k} (seed {seed}, {kind}): {problems}", flush=True)
            subprocess.run(["rm", "-rf", str(where)])
            if not a.json and (k + 1) % 100 == 0:
                print(f"{k + 1} cases, {len(failures)} failures, {time.monotonic() - t0:.0f} s", flush=True)
    result = {"cases_tried": tried, "failures": len(failures), "failed_cases": failures[:50], "exit_codes": codes,
              "kinds": kinds, "seconds": round(time.monotonic() - t0, 1), "seed": a.seed}
    text = (f"cases tried: {tried}  failures: {len(failures)}  ({kinds['in-process']} in-process, {kinds['process']} processes, "
            f"{kinds['signal']} signalled; {result['seconds']} s)\nexit codes: {codes}")
    C.finish(NAME, result, a.json, text, show_targets=False)


if __name__ == "__main__":
    main()
