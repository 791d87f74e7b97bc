"""Regenerate the README's example outputs from real runs of this checkout.

    python bench/readme_examples.py              # plain, summary, SRT and JSONL examples
    python bench/readme_examples.py --dashboard  # also the dashboard picture (needs tmux; ~15 s)

The examples are the fenced blocks after ``<!-- readme-test: example NAME -->``.
``tests/test_readme.py`` compares them with a fresh run (latencies and wall
times aside), so after a change of the model or the transcriber it fails
until this script has been run and the new README committed.  The runs are
the README's own first-run command, on ``tests/data/jfk.flac``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FIRST_RUN = ["replay", "tests/data/jfk.flac", "--speed", "0", "--plain", "--jsonl", "events.jsonl", "--srt", "jfk.srt"]


def replace_example(text: str, name: str, body: str) -> str:
    pattern = re.compile(r"(<!-- readme-test: example " + re.escape(name) + r" -->\n```[\w-]*\n)(.*?)(\n```)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README has no example block {name!r}")
    return pattern.sub(lambda m: m[1] + body.rstrip("\n") + m[3], text, count=1)


def stream_ser(*args, cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "stream_ser", *args], cwd=cwd, env=env, capture_output=True, text=True, **kw)


def first_run(work: Path) -> dict[str, str]:
    (work / "tests" / "data").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "data" / "jfk.flac", work / "tests" / "data" / "jfk.flac")
    r = stream_ser(*FIRST_RUN, cwd=work, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"the first run failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
    events = [json.loads(line) for line in (work / "events.jsonl").read_text().splitlines()]
    # one of each kind, in session order: the first status, speech, emotion and final transcript, the last status
    firsts = [next(e for e in events if e["type"] == "status"), next(e for e in events if e["type"] == "speech"),
              next(e for e in events if e["type"] == "emotion"),
              next(e for e in events if e["type"] == "transcript" and e["final"]), [e for e in events if e["type"] == "status"][-1]]
    cues = (work / "jfk.srt").read_text().split("\n\n")
    return {"plain": r.stdout, "summary": "\n".join(l for l in r.stderr.splitlines() if l.strip()),
            "srt": "\n\n".join(cues[:2]), "jsonl": "\n".join(json.dumps(e, separators=(",", ":")) for e in firsts)}


def dashboard(work: Path) -> str:
    """The dashboard 8 s into a real-time replay, at 80x24, read back with tmux capture-pane."""
    if not shutil.which("tmux"):
        raise SystemExit("--dashboard needs tmux")
    name = f"readme-{os.getpid()}"
    cmd = f"cd {work} && TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH={ROOT} {sys.executable} -m stream_ser replay tests/data/jfk.flac 2>/dev/null; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", cmd], check=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the models have loaded once the clock runs
            pane = subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout
            if re.search(r"elapsed 0:0[1-9]", pane):
                break
            time.sleep(0.2)
        time.sleep(8)
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True, check=True).stdout.rstrip("\n")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dashboard", action="store_true", help="also re-capture the dashboard picture with tmux")
    args = p.parse_args(argv)
    text = README.read_text()
    with tempfile.TemporaryDirectory() as d:
        for name, body in first_run(Path(d)).items():
            text = replace_example(text, name, body)
        if args.dashboard:
            text = replace_example(text, "dashboard", dashboard(Path(d)))
    README.write_text(text)
    print("README.md examples regenerated; review `git diff README.md` (prose that quotes them may need a word)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
