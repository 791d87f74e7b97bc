"""Property tests over generated command lines and audio (tests/fuzzing.py):
whatever a user types, the run ends in time with exit 0/1/2 (130/143 for a
signal), no traceback, strict JSONL, and no file of theirs lost.

CI runs a small seeded profile (derandomized: the same cases every run); the
larger run is ``python bench/fuzz.py``.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .fuzzing import ROOT, SIGNAL_CODES, Audio, Case, HypothesisDraw, _strict, check_case, draw_audio, draw_case, shared_models

PROFILE = settings(max_examples=int(os.environ.get("STREAM_SER_FUZZ_EXAMPLES", "40")), derandomize=True, deadline=None,
                   database=None, suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.fixture(scope="module")
def models():
    with shared_models():
        yield


@PROFILE
@given(data=st.data())
def test_generated_command_lines_keep_every_property(models, tmp_path_factory, data):
    case = draw_case(HypothesisDraw(data), transcript_chance=0.1)
    result = check_case(case, tmp_path_factory.mktemp("case"))
    assert not result.problems, (result.problems, case.describe())


@settings(PROFILE, max_examples=max(1, PROFILE.max_examples // 20))  # in-process above runs them all; CI's 20 minutes
@given(data=st.data())
def test_generated_audio_through_the_real_command(tmp_path_factory, data):
    """A few of the cases as real processes (the entry point, fd 2 quieting, exit)."""
    d = HypothesisDraw(data)
    case = Case(audio=draw_audio(d), options=["--speed", "0", "--no-transcript"], outputs={"jsonl": "existing"})
    result = check_case(case, tmp_path_factory.mktemp("case"), subprocess_run=True)
    assert not result.problems, (result.problems, case.describe())


@pytest.mark.parametrize("sig, after", [(signal.SIGTERM, 0.5), (signal.SIGINT, 0.4), (signal.SIGINT, 1.2), (signal.SIGTERM, 6.0)])
def test_a_signal_at_any_moment_ends_within_2s(tmp_path, sig, after):
    """Before, during and after model loading: exit 143/130 (or done) within 2 s,
    no traceback (bench/fuzz.py found Ctrl-C inside numpy's import printing
    one), files strict."""
    case = Case(audio=Audio(kind="speech", seconds=11.0))
    src = case.audio.write(tmp_path / "in.wav")
    out = tmp_path / "e.jsonl"
    out.write_text('{"type":"old"}\n')
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "stream_ser", "replay", str(src), "--speed", "1", "--plain", "--jsonl", str(out)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    data = src.read_bytes()
    time.sleep(after)
    t0 = time.monotonic()
    p.send_signal(sig)
    try:
        p.wait(2.0 + 0.5)  # 2 s, and the interpreter's own exit
    finally:
        if p.poll() is None:
            p.kill()
    elapsed = time.monotonic() - t0
    err = p.stderr.read()
    code = 128 - p.returncode if p.returncode < 0 else p.returncode  # killed before its handler: as the shell says it
    assert code in SIGNAL_CODES | {0}, (p.returncode, err[-1500:])
    assert elapsed <= 2.5 and "Traceback" not in err, (elapsed, err[-1500:])
    assert src.read_bytes() == data
    text = out.read_text()
    assert text and not _strict(text)  # old file whole, or the new one strict
    assert not list(tmp_path.glob("*.partial"))


def test_the_judge_sees_each_broken_property(tmp_path):
    """The properties above can fail: each kind of damage is reported."""
    from .fuzzing import _digest, judge

    src, old, jsonl = tmp_path / "in.wav", tmp_path / "old.srt", tmp_path / "e.jsonl"
    src.write_bytes(b"RIFF....")
    old.write_text("1\n")
    before = {f: (_digest(f), f.stat().st_size) for f in (src, old)}
    src.write_bytes(b"{}\n")
    old.write_text("")
    jsonl.write_text('{"a":NaN}\n{"b":1}\n')
    (tmp_path / ".e.jsonl.x.partial").write_text("")
    problems = judge(-1, "Traceback (most recent call last):\n", 99.0, 10.0, tmp_path, before, [jsonl], [src])
    text = " | ".join(problems)
    for needle in ("exit code -1", "traceback", "took 99.0 s", "input in.wav changed", "old.srt emptied by a failed run",
                   "1 lines not strict JSON", "1 events not in the event schema", "left behind"):
        assert needle in text, (needle, problems)
    old.write_text("2\n")
    problems = judge(2, "stream-ser: bad option\n", 1.0, 10.0, tmp_path, before, [], [])
    assert any("old.srt changed by a run that failed at start" in p for p in problems), problems
