"""Nothing a user types loses their data: the output policy (stream_ser/outputs.py).

Each test named test_issue24_* is a reproduction from issue 24."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from stream_ser.errors import UsageError
from stream_ser.events import EmotionEvent, StatusEvent
from stream_ser.outputs import Output, OutputFile, Outputs, check_outputs

from .conftest import CLI, ROOT, run_cli
from .fuzzing import JFK, _strict

OLD = '{"type":"old"}\n'


@pytest.fixture
def rec(tmp_path):
    """A speech recording (jfk, 11 s) as WAV, and its bytes."""
    y, sr = sf.read(JFK, dtype="float32")
    path = tmp_path / "v.wav"
    sf.write(path, y, sr)
    return path, path.read_bytes()


def one_line(r, code, *needles):
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("stream-ser:")]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("kind", ["jsonl", "srt"])
def test_issue24_output_that_is_the_input_is_refused(rec, kind):
    path, data = rec
    one_line(run_cli("replay", path, "--speed", "0", f"--{kind}", path, "--no-transcript" if kind == "jsonl" else "--plain"),
             2, "input recording")
    assert path.read_bytes() == data


def test_issue24_output_symlink_to_the_input_is_refused(rec, tmp_path):
    path, data = rec
    link = tmp_path / "events.jsonl"
    link.symlink_to(path)
    hard = tmp_path / "hard.jsonl"
    os.link(path, hard)
    for out in (link, hard):
        one_line(run_cli("replay", path, "--speed", "0", "--jsonl", out, "--no-transcript"), 2, "input recording")
    assert path.read_bytes() == data


@pytest.mark.parametrize("why", [["--asr-model", "/nonexistent"], ["--hop", "nan"], ["--models", "/nonexistent"]])
def test_issue24_startup_error_keeps_existing_outputs(rec, tmp_path, why):
    path, _ = rec
    jsonl, srt = tmp_path / "old.jsonl", tmp_path / "old.srt"
    jsonl.write_text(OLD)
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nyesterday\n\n")
    before = jsonl.read_bytes(), srt.read_bytes()
    r = run_cli("replay", path, "--speed", "0", "--jsonl", jsonl, "--srt", srt, *why)
    one_line(r, 2)
    assert (jsonl.read_bytes(), srt.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.jsonl", "old.srt", "v.wav"]  # no temporary left


def test_issue24_two_outputs_on_one_path_are_refused(rec, tmp_path):
    path, _ = rec
    same = tmp_path / "same.out"
    one_line(run_cli("replay", path, "--speed", "0", "--jsonl", same, "--srt", same), 2, "--jsonl and --srt")
    assert not same.exists()


def test_issue24_empty_output_path_is_refused(rec):
    path, _ = rec
    one_line(run_cli("replay", path, "--speed", "0", "--jsonl", "", "--no-transcript"), 2, "--jsonl", "empty")


def test_issue24_second_writer_of_one_jsonl_is_refused(rec, tmp_path):
    path, _ = rec
    out = tmp_path / "c.jsonl"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    first = subprocess.Popen(CLI + ["replay", str(path), "--speed", "1", "--jsonl", str(out), "--no-transcript", "--plain"],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180  # a loaded machine takes its time to load the models
        while not out.exists() and time.monotonic() < deadline:  # created once its models have loaded
            time.sleep(0.1)
        assert out.exists() and first.poll() is None  # the first session is writing
        second = run_cli("replay", path, "--speed", "0", "--jsonl", out, "--no-transcript")
        one_line(second, 2, "another stream-ser session")
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(30)
    assert first.returncode == 130, first.stderr.read()
    assert not _strict(out.read_text()) and out.read_text()


def test_existing_output_is_replaced_at_the_end_and_new_one_grows(rec, tmp_path):
    """An existing file stays whole until the session ends, then is replaced in
    one rename; a new file grows as events happen."""
    path, _ = rec
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    old.write_text(OLD)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.Popen(CLI + ["replay", str(path), "--speed", "2", "--jsonl", str(old), "--no-transcript", "--plain"],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    q = subprocess.Popen(CLI + ["replay", str(path), "--speed", "2", "--jsonl", str(new), "--no-transcript", "--plain"],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        grown = lambda f: f.exists() and f.stat().st_size > 0
        while not (grown(new) and any(map(grown, tmp_path.glob(".old.jsonl.*.partial")))) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert grown(new)  # a new file: events as they happen
        assert old.read_text() == OLD  # an existing file: intact while the session runs ...
        assert len(list(tmp_path.glob(".old.jsonl.*.partial"))) == 1  # ... its replacement growing beside it
    finally:
        assert p.wait(60) == 0 and q.wait(60) == 0
    lines = old.read_text().splitlines()
    assert lines and not _strict(old.read_text())
    assert all(json.loads(l)["type"] != "old" for l in lines)
    assert not list(tmp_path.glob("*.partial"))


def test_append_adds_to_the_jsonl(rec, tmp_path):
    path, _ = rec
    out = tmp_path / "a.jsonl"
    out.write_text(OLD)
    r = run_cli("replay", path, "--speed", "0", "--jsonl", out, "--no-transcript", "--append", "--plain")
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert text.startswith(OLD) and len(text.splitlines()) > 10 and not _strict(text)
    one_line(run_cli("replay", path, "--speed", "0", "--srt", tmp_path / "x.srt", "--append"), 2, "--append")


def test_symlinked_output_writes_through_the_link(tmp_path):
    target = tmp_path / "real.jsonl"
    target.write_text(OLD)
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    f = OutputFile(Output("jsonl", str(link)))
    f.write(b'{"a":1}\n')
    f.close()
    assert link.is_symlink() and target.read_text() == '{"a":1}\n'


def test_failed_session_without_output_keeps_the_old_file(tmp_path):
    old = tmp_path / "old.jsonl"
    old.write_text(OLD)
    f = OutputFile(Output("jsonl", str(old)))
    f.close(keep=False)  # the session failed before any event
    assert old.read_text() == OLD and not list(tmp_path.glob("*.partial"))
    f = OutputFile(Output("jsonl", str(old)))
    f.write(b'{"a":1}\n')
    f.close(keep=False)  # failed after an event: what was produced is kept
    assert old.read_text() == '{"a":1}\n'


def test_preflight_names_each_problem(tmp_path, rec):
    path, _ = rec
    (tmp_path / "d").mkdir()
    cases = {
        "directory": Output("jsonl", str(tmp_path / "d")),
        "does not exist": Output("srt", str(tmp_path / "nowhere" / "x.srt")),
        "empty path": Output("vtt", " "),
        "input recording": Output("jsonl", str(tmp_path / "." / "v.wav")),
    }
    for needle, o in cases.items():
        with pytest.raises(UsageError, match=needle):
            check_outputs([o], [str(path)])
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(UsageError, match="symlink loop"):
        check_outputs([Output("jsonl", str(loop))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "loop", "v.wav"]  # pre-flight touches nothing


def test_jsonl_refuses_nan_and_infinity(tmp_path):
    """Nothing non-finite is ever written as JSON: the event is refused, the file stays strict."""
    out = tmp_path / "e.jsonl"
    outputs = Outputs([Output("jsonl", str(out))])
    outputs.open()
    good = StatusEvent(type="status", start=0, end=1, emitted_at=0, latency_ms=0)
    bad = EmotionEvent(type="emotion", start=0, end=2.5, emitted_at=0, latency_ms=math.nan, label="angry", confidence=math.nan)
    with pytest.raises(ValueError):
        bad.to_json()
    assert outputs.write(good) is None and outputs.write(bad) is None and outputs.write(good) is None
    assert outputs.refused == 1
    outputs.close()
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and not _strict(out.read_text())
    assert json.loads(lines[0])["level_dbfs"] is None  # -inf level: null, not -Infinity


@pytest.mark.parametrize("kind", ["srt", "vtt"])
def test_issue24_subtitles_to_dev_full_is_one_line(rec, kind):
    path, _ = rec
    r = run_cli("replay", path, "--speed", "0", "--plain", f"--{kind}", "/dev/full")
    one_line(r, 1, "/dev/full")


def test_output_fifo_without_reader_is_refused_not_hung(rec, tmp_path):
    path, _ = rec
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    one_line(run_cli("replay", path, "--speed", "0", "--jsonl", fifo, "--no-transcript", timeout=120), 2, "FIFO")


def test_a_failing_output_does_not_let_another_empty_its_old_file(tmp_path):
    """Found by bench/fuzz.py: --jsonl /dev/full stopped the session (exit 1),
    and the --srt beside it, with no words yet, replaced yesterday's SRT with nothing."""
    tone = tmp_path / "tone.wav"
    sf.write(tone, 0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * 16000) / 16000), 16000)
    srt = tmp_path / "old.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nyesterday\n\n")
    before = srt.read_bytes()
    r = run_cli("replay", tone, "--speed", "0", "--plain", "--jsonl", "/dev/full", "--srt", srt)
    one_line(r, 1, "/dev/full")
    assert srt.read_bytes() == before and not list(tmp_path.glob(".*.partial"))


def test_event_from_dict_reverses_to_dict():
    import math

    from stream_ser.events import EmotionEvent, SpeechEvent, StatusEvent, TranscriptEvent, event_from_dict

    events = [SpeechEvent("speech", 0.3, 0.3, 100.0, 1.0, state="start", utterance=0),
              EmotionEvent("emotion", 0.0, 2.5, 101.0, 20.0, label="sad", confidence=0.4, probs={"sad": 0.4, "neutral": 0.6},
                           window_probs={"sad": 0.5, "neutral": 0.5}, utterance=0, arousal=0.1),
              TranscriptEvent("transcript", 0.3, 2.0, 102.0, 900.0, text="hello", final=True,
                              emotion={"label": "sad", "confidence": 0.4}, utterance=0),
              StatusEvent("status", 0.0, 3.0, 103.0, 0.0, source="x.wav", sample_rate=16000, level_dbfs=-math.inf,
                          warnings=["input is faint"])]
    for e in events:
        d = json.loads(e.to_json())
        assert event_from_dict(d).to_dict() == d
    assert event_from_dict(events[-1].to_dict()).level_dbfs == -math.inf  # silence's null reads back as -inf
    with pytest.raises(ValueError, match="unknown event type 'nope'"):
        event_from_dict({"type": "nope"})
