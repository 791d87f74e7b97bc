"""Numbers checked at the door, audio conditioned at the source, closed streams
and special files.  Each test named test_issue24_* is a reproduction from issue 24."""

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from stream_ser.errors import UsageError
from stream_ser.limits import OptionError
from stream_ser.pipeline import Pipeline, PipelineOptions
from stream_ser.sources import Conditioner, FileSource
from stream_ser.windows import WindowOptions

from .conftest import CLI, ROOT, SR, run_cli, run_pipeline
from .fuzzing import JFK, _strict
from .test_outputs import one_line


@pytest.fixture(scope="module")
def speech():
    return sf.read(JFK, dtype="float32")[0]


def write(tmp_path, name, audio, subtype="FLOAT"):
    path = tmp_path / name
    sf.write(path, audio, SR, subtype=subtype)
    return path


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize("hop", ["1e-6", "nan", "inf", "1e305", "0", "-1"])
def test_issue24_hop_out_of_range_is_one_line(speech, tmp_path, hop):
    """--hop 1e-6 rounded to 0 samples and grew memory without end; nan/inf/1e305 gave tracebacks."""
    path = write(tmp_path, "in.wav", speech[: 3 * SR])
    r = run_cli("replay", path, "--speed", "0", "--no-transcript", f"--hop={hop}", timeout=40)
    one_line(r, 2, "--hop", "0.01")


@pytest.mark.parametrize("argv, flag", [
    (["--speed=1e-9"], "--speed"), (["--speed=1e9"], "--speed"), (["--neutral-bias=1e308"], "--neutral-bias"),
    (["--vad-mode=7"], "--vad-mode"),
])
def test_numbers_out_of_range_exit_2(speech, tmp_path, argv, flag):
    path = write(tmp_path, "in.wav", speech[:SR])
    r = run_cli("replay", path, "--no-transcript", *argv)
    assert r.returncode == 2 and "Traceback" not in r.stderr and flag in r.stderr, r.stderr


def test_options_check_themselves_for_the_python_api():
    with pytest.raises(OptionError, match="hop"):
        WindowOptions(hop=1e-6)
    o = PipelineOptions()
    o.window.hop = float("nan")  # set after construction: the pipeline checks before it loads anything
    with pytest.raises(UsageError, match="hop"):
        Pipeline(None, o)
    with pytest.raises(UsageError, match="speed"):
        FileSource(JFK, speed=float("inf"))


# ---------------------------------------------------------------- audio at the source
def test_conditioner_zeroes_counts_and_removes_dc():
    c = Conditioner()
    x = np.array([np.nan, np.inf, -np.inf, 0.5, 1e30], np.float32)
    y = c.clean(x)
    assert np.isfinite(y).all() and c.nonfinite == 3 and c.loud == 1
    assert y[:3].tolist() == [0, 0, 0] and abs(y[4]) <= 1e6
    blocks = [np.full(1600, 0.5, np.float32) + 0.1 * np.sin(np.arange(1600) * 0.3 + k).astype(np.float32) for k in range(40)]
    out = np.concatenate([c.remove_dc(b) for b in blocks])  # state carries across blocks
    assert abs(out[-16000:].mean()) < 1e-3 and abs(out[0]) < 0.2


def _status_warnings(events):
    return [w for e in events if e["type"] == "status" for w in e["warnings"]]


def _finite(obj):
    if isinstance(obj, float):
        return np.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    return True


@pytest.mark.parametrize("case", ["few", "every7", "huge"])
def test_issue24_nonfinite_and_huge_audio(speech, tmp_path, emotion_model, case):
    """A few NaN/Inf: a librosa traceback and "peak":Infinity; every 7th NaN:
    "input silent" and no warning; x1e30: confidence NaN in the JSONL."""
    a = speech.astype(np.float64)
    if case == "few":
        a[[1000, 50000, 90000]] = [np.nan, np.inf, -np.inf]
    elif case == "every7":
        a[::7] = np.nan
    else:
        a = a * 1e30
    path = write(tmp_path, f"{case}.wav", a)
    events = run_pipeline(path, emotion_model)
    assert all(_finite(e) for e in events), [e for e in events if not _finite(e)][:2]
    warnings = " ".join(_status_warnings(events))
    assert ("NaN or infinite" in warnings) if case != "huge" else ("full scale" in warnings)
    if case != "huge":
        assert [e for e in events if e["type"] == "emotion"]  # the speech is still found
        assert [e for e in events if e["type"] == "speech"]


def test_issue24_nonfinite_audio_cli_jsonl_is_strict(speech, tmp_path):
    a = speech.astype(np.float64)
    a[[1000, 50000]] = [np.nan, np.inf]
    path, out = write(tmp_path, "nan.wav", a * 1e30), tmp_path / "e.jsonl"
    r = run_cli("replay", path, "--speed", "0", "--no-transcript", "--plain", "--jsonl", out)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert not _strict(out.read_text()) and len(out.read_text().splitlines()) > 5


def _words(events):
    return re.sub(r"[^a-z ]", "", " ".join(e["text"] for e in events if e["type"] == "transcript" and e["final"]).lower()).split()


@pytest.mark.parametrize("dc", [0.15, 0.5])
def test_issue24_dc_offset_is_removed_for_every_stage(speech, tmp_path, emotion_model, whisper_model, dc):
    """The issue saw a DC offset of 0.1-0.2 lose half the words and 0.5 all of
    them.  Removed at the source, the offset changes neither the words nor the
    emotion windows (before: the same labels at other confidences, 0.35 for 0.51)."""
    clean = run_pipeline(write(tmp_path, "clean.wav", speech), emotion_model, whisper_model)
    shifted = run_pipeline(write(tmp_path, "dc.wav", speech + dc), emotion_model, whisper_model)
    assert len(_words(clean)) >= 20
    assert len(set(_words(clean)) & set(_words(shifted))) / len(set(_words(clean))) >= 0.9, (_words(clean), _words(shifted))
    assert abs(len(_words(shifted)) - len(_words(clean))) <= 2
    emotions = lambda events: [(e["start"], e["label"], e["confidence"]) for e in events if e["type"] == "emotion"]
    a, b = emotions(clean), emotions(shifted)
    assert [x[:2] for x in a] == [x[:2] for x in b]
    assert max(abs(x[2] - y[2]) for x, y in zip(a, b)) < 0.03, (a, b)


# ---------------------------------------------------------------- streams and special files
def _closed(fd):
    return lambda: os.close(fd)


@pytest.mark.parametrize("fd", [1, 2])
def test_issue24_closed_stdout_or_stderr_still_writes_the_files(speech, tmp_path, fd):
    """stdout closed: AttributeError tracebacks and the JSONL stopped at 5 of 21
    events; stderr closed: nothing at all."""
    path, out = write(tmp_path, "in.wav", speech), tmp_path / "e.jsonl"
    full = run_cli("replay", path, "--speed", "0", "--no-transcript", "--plain", "--jsonl", tmp_path / "ref.jsonl")
    assert full.returncode == 0
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run(CLI + ["replay", str(path), "--speed", "0", "--no-transcript", "--jsonl", str(out)], cwd=ROOT, env=env,
                       preexec_fn=_closed(fd), capture_output=False, stdout=subprocess.PIPE if fd == 2 else None,
                       stderr=subprocess.PIPE if fd == 1 else None, timeout=180)
    assert r.returncode == 0
    if fd == 1:
        assert b"Traceback" not in r.stderr, r.stderr
    else:
        assert b"emotion" in r.stdout
    n = len((tmp_path / "ref.jsonl").read_text().splitlines())
    assert len(out.read_text().splitlines()) == n and not _strict(out.read_text())


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom", "fifo", "stdin-pipe"])
def test_issue24_special_input_files_say_what_they_are(tmp_path, special):
    """All four reported "file is empty"; the FIFO's writer blocked forever."""
    if special == "fifo":
        fifo = tmp_path / "in.wav"
        os.mkfifo(fifo)
        writer = subprocess.Popen(["sh", "-c", f"cat {JFK} > {fifo}"], stderr=subprocess.DEVNULL)
        try:
            one_line(run_cli("replay", fifo, "--speed", "0"), 2, "FIFO")
            writer.wait(10)  # let go, not blocked forever
        finally:
            if writer.poll() is None:  # never leave a blocked writer behind
                writer.kill()
    elif special == "stdin-pipe":
        one_line(run_cli("replay", "/dev/stdin", "--speed", "0", input="not audio\n"), 2, "pipe")
    else:
        one_line(run_cli("replay", special, "--speed", "0"), 2, "device")


def test_issue24_symlink_loop_says_loop(tmp_path):
    loop = tmp_path / "a.wav"
    loop.symlink_to(tmp_path / "b.wav")
    (tmp_path / "b.wav").symlink_to(loop)
    one_line(run_cli("replay", loop, "--speed", "0"), 2, "symlink loop")
    dangling = tmp_path / "d.wav"
    dangling.symlink_to(tmp_path / "gone.wav")
    one_line(run_cli("replay", dangling, "--speed", "0"), 2, "gone.wav", "does not exist")


def test_issue24_asr_model_that_is_an_audio_file(speech, tmp_path):
    """It advised passing local_files_only=False, which a CLI user cannot do."""
    path = write(tmp_path, "some.wav", speech[:SR])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    for model in (str(path), "some.wav"):
        r = subprocess.run(CLI + ["replay", str(path), "--speed", "0", "--asr-model", model], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=180)
        one_line(r, 2, "model directory")
        assert "local_files_only" not in r.stderr


def test_long_utterance_without_words_does_not_stall_a_fast_replay(tmp_path):
    """Found by bench/fuzz.py: 150 s that the VAD takes for speech (a DC level
    with a click every 1000 samples) and whisper finds no words in held the
    ring buffer at the utterance's start; at --speed 0 the replay then waited
    for ever, and SIGTERM did not end it."""
    x = np.full(150 * 8000, -1.5)
    x[::1000] = np.nan
    path = tmp_path / "clicks.wav"
    sf.write(path, x, 8000, subtype="FLOAT")
    r = run_cli("replay", path, "--speed", "0", "--plain", "--jsonl", tmp_path / "e.jsonl", timeout=150)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert "150.0 s of audio" in r.stderr
