"""`stream-ser listen` on a real (virtual) microphone: a PulseAudio null sink
whose monitor is the default input, fed with paplay."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import CLI, ROOT, need, read_events, run_cli, schema_errors
from stream_ser.virtual_mic import VirtualMic
from stream_ser.windows import WindowOptions


@pytest.fixture
def mic():
    need("pulseaudio", "pactl", "paplay")
    with VirtualMic() as m:
        yield m


def start_listen(mic, jsonl: Path, *extra):
    env = dict(mic.env, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(CLI + ["listen", "--plain", "--jsonl", str(jsonl), *map(str, extra)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def events_of(path):
    try:
        return read_events(path)
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def stream_open(path):
    return any(e["type"] == "status" and e["end"] > 0 for e in events_of(path))


def test_listen_matches_replay(mic, jfk, tmp_path):
    jsonl = tmp_path / "listen.jsonl"
    p = start_listen(mic, jsonl)
    try:
        assert wait_for(lambda: stream_open(jsonl), 90), p.stderr.read() if p.poll() is not None else "no stream"
        mic.play(jfk).wait(timeout=30)
        time.sleep(3.0)  # hangover + last windows
        p.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        p.wait(timeout=10)
        assert time.monotonic() - t0 < 3.0
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, p.stderr.read()[-2000:]
    live = events_of(jsonl)
    r = run_cli("replay", jfk, "--speed", "1", "--plain", "--jsonl", tmp_path / "replay.jsonl", "--no-transcript")
    assert r.returncode == 0, r.stderr[-2000:]
    ref = read_events(tmp_path / "replay.jsonl")

    lead, hop = WindowOptions().lead, WindowOptions().hop

    def utterances(events):
        """Each utterance's onset, end and number of windows, after checking that every window sits where
        the window logic puts it on the same clock as the VAD: onset - lead + k*hop, never before 0."""
        onsets = {e["utterance"]: e["start"] for e in events if e["type"] == "speech" and e["state"] == "start"}
        ends = {e["utterance"]: e["start"] for e in events if e["type"] == "speech" and e["state"] == "end"}
        windows = {}
        for e in events:
            if e["type"] == "emotion":
                windows.setdefault(e["utterance"], []).append(e["start"])
        for u, starts in windows.items():
            expected = [max(0.0, onsets[u] - lead + k * hop) for k in range(len(starts))]
            assert max(abs(a - b) for a, b in zip(starts, expected)) <= 0.011, (u, starts, expected)
        return [(onsets[u], ends.get(u), len(windows.get(u, []))) for u in sorted(onsets)]

    live_utt, ref_utt = utterances(live), utterances(ref)
    assert sum(n for *_, n in ref_utt) > 0 and sum(n for *_, n in live_utt) > 0
    # ... on the same clock: after the first onset's shift, every onset of the run that found fewer
    # utterances is one of the other's within a few 30 ms VAD frames (PulseAudio's resampling may move
    # a decision by a frame or two, and so join or part two utterances across a pause near the VAD's
    # hangover; a whole-hop clock error fails) ...
    shift = live_utt[0][0] - ref_utt[0][0]
    fewer, more, sign = (live_utt, ref_utt, -1) if len(live_utt) <= len(ref_utt) else (ref_utt, live_utt, 1)
    for onset, *_ in fewer:
        assert min(abs(onset + sign * shift - o) for o, *_ in more) <= 0.25, (live_utt, ref_utt, shift)
    # ... and an utterance both runs bound alike (same onset and end) has the same number of windows
    same = [(n, m) for o, e, n in live_utt for p_, q, m in ref_utt
            if e is not None and q is not None and abs(o - shift - p_) <= 0.25 and abs(e - shift - q) <= 0.25]
    assert same and all(n == m for n, m in same), (live_utt, ref_utt)
    words = " ".join(e["text"] for e in live if e["type"] == "transcript" and e["final"]).lower()
    assert "country" in words, words
    last = [e for e in live if e["type"] == "status"][-1]
    assert last["overflows"] == 0 and last["dropped_samples"] == 0
    assert last["sample_rate"] > 0
    assert not schema_errors(live + ref), schema_errors(live + ref)[:5]  # a live session keeps the event contract too


def test_device_vanishing_ends_cleanly_with_events_on_disk(mic, jfk, tmp_path):
    jsonl = tmp_path / "e.jsonl"
    p = start_listen(mic, jsonl, "--no-transcript")
    try:
        assert wait_for(lambda: stream_open(jsonl), 90)
        mic.play(jfk)
        assert wait_for(lambda: any(e["type"] == "emotion" for e in events_of(jsonl)), 30)
        mic.kill_sink()
        p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    err = p.stderr.read()
    assert p.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    assert [l for l in err.splitlines() if l.startswith("stream-ser:")][0].count("\n") == 0
    events = read_events(jsonl)  # every line still parses
    assert any(e["type"] == "emotion" for e in events)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_during_replay_flush_and_exit(tmp_path, jfk, sig, code):
    jsonl, srt = tmp_path / "e.jsonl", tmp_path / "e.srt"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.Popen(CLI + ["replay", str(jfk), "--speed", "1", "--plain", "--jsonl", str(jsonl), "--srt", str(srt)],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: any(e["type"] == "transcript" and e["final"] for e in events_of(jsonl)), 90)
        p.send_signal(sig)
        t0 = time.monotonic()
        p.wait(timeout=10)
        assert time.monotonic() - t0 < 2.5
    finally:
        if p.poll() is None:
            p.kill()
    err = p.stderr.read()
    assert p.returncode == code, err[-2000:]
    assert "Traceback" not in err and "session: jfk.flac" in err  # the summary was printed
    events = read_events(jsonl)
    assert events[-1]["type"] == "status"  # the final status was flushed
    assert srt.read_text().startswith("1\n")


def test_kill_9_leaves_valid_jsonl(tmp_path, jfk):
    jsonl = tmp_path / "e.jsonl"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.Popen(CLI + ["replay", str(jfk), "--speed", "1", "--plain", "--jsonl", str(jsonl)],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(events_of(jsonl)) >= 5, 90)
        assert p.poll() is None  # still analysing when it is killed: the file is cut mid-session
        p.kill()
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
    lines = jsonl.read_text().splitlines()
    assert len(lines) >= 5
    for line in lines:
        json.loads(line)
