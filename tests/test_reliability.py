"""Reliability: short and long input, level problems, full disks, slow stages."""

import json
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from stream_ser.emotion import EmotionOptions
from stream_ser.features import normalise, raw_features
from stream_ser.pipeline import Pipeline, PipelineOptions
from stream_ser.sources import FileSource

from .conftest import CLI, ROOT, SR, read_events, run_cli, run_pipeline


def jfk_audio(jfk):
    return sf.read(jfk, dtype="float32")[0]


@pytest.mark.parametrize("seconds", [0.3, 2.5])
def test_short_speech(tmp_path, jfk, emotion_model, whisper_model, seconds):
    audio = jfk_audio(jfk)[int(0.3 * SR) : int((0.3 + seconds) * SR)]  # starts in speech ("And so ...")
    path = tmp_path / "short.wav"
    sf.write(path, audio, SR)
    events = run_pipeline(path, emotion_model, whisper_model)
    emo = [e for e in events if e["type"] == "emotion"]
    assert len(emo) >= 1  # one zero-padded window, not a crash
    # the window is 2.5 s for the model (zero-padded); the event spans the audio there is
    assert all(e["end"] == pytest.approx(min(e["start"] + 2.5, seconds), abs=1e-3) for e in emo), emo
    assert events[-1]["type"] == "status"


def test_clipping_and_quiet_input_warn(tmp_path, jfk, emotion_model):
    audio = jfk_audio(jfk)
    loud, quiet = tmp_path / "loud.wav", tmp_path / "quiet.wav"
    sf.write(loud, np.clip(audio * 20, -1, 1), SR, subtype="FLOAT")
    rms = np.sqrt(np.mean(audio[np.abs(audio) > 0.01] ** 2))
    sf.write(quiet, audio * (10 ** (-50 / 20) / rms), SR, subtype="FLOAT")
    warn = lambda path: {w.split(" (")[0] for e in run_pipeline(path, emotion_model, speed=4.0) if e["type"] == "status" for w in e["warnings"]}
    assert "clipping" in warn(loud)
    assert "input very quiet" in warn(quiet)
    assert not warn(jfk)  # ordinary speech with pauses: no warning at all


def test_speech_too_quiet_for_the_vad_warns(tmp_path, jfk, emotion_model):
    """A microphone turned far down: nothing reaches the VAD as speech, so
    there is no speech level to judge; the stream says so instead of waiting."""
    audio = jfk_audio(jfk)
    faint = tmp_path / "faint.wav"
    sf.write(faint, np.tile(audio, 2) * 10 ** (-62 / 20), SR, subtype="FLOAT")  # peak near -64 dBFS, 22 s
    events = run_pipeline(faint, emotion_model, speed=0)
    assert not [e for e in events if e["type"] == "speech"]
    warnings = [w for e in events if e["type"] == "status" for w in e["warnings"]]
    assert any(w.startswith("no speech in the first") and "very quiet (peak -6" in w for w in warnings), warnings
    # a quiet room after ordinary speech is a pause, not a microphone turned down
    pause = tmp_path / "pause.wav"
    room = np.random.default_rng(0).standard_normal(12 * SR).astype(np.float32) * 10 ** (-60 / 20)
    sf.write(pause, np.concatenate([audio, room]), SR, subtype="FLOAT")
    warnings = [w for e in run_pipeline(pause, emotion_model, speed=0) if e["type"] == "status" for w in e["warnings"]]
    assert not [w for w in warnings if w.startswith("no speech")], warnings


def test_a_vad_blip_in_faint_input_still_warns(tmp_path, jfk, emotion_model):
    """jfk at -50 dBFS peak: the VAD calls a fraction of a second speech, which
    is no voice heard; the faint input is still said, once 10 s have passed."""
    audio = jfk_audio(jfk)
    faint = tmp_path / "faint50.wav"
    sf.write(faint, audio * (10 ** (-50 / 20) / np.abs(audio).max()), SR, subtype="FLOAT")
    events = run_pipeline(faint, emotion_model, speed=0)
    speech = [e for e in events if e["type"] == "speech"]
    assert speech and speech[-1]["end"] - speech[0]["start"] < 1.0  # the blip this test is about
    warnings = [w for e in events if e["type"] == "status" for w in e["warnings"]]
    assert any(w.startswith("almost no speech in the first 11 s") and "very quiet (peak -50 dBFS)" in w for w in warnings), warnings


def test_closed_stdout_ends_the_session_cleanly(tmp_path, jfk):
    """`stream-ser replay call.wav | head -2`: the reader goes away; the
    session ends as on Ctrl-C (exit 141), every event so far is in the JSONL."""
    jsonl = tmp_path / "e.jsonl"
    p = subprocess.Popen(CLI + ["replay", str(jfk), "--speed", "1", "--plain", "--no-transcript", "--jsonl", str(jsonl)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    first = p.stdout.readline()
    p.stdout.close()  # as `head -1` does once it has its line
    err = p.stderr.read()
    assert p.wait(timeout=60) == 141, err[-2000:]
    assert "emotion" in first and "Traceback" not in err and "terminate called" not in err, err[-2000:]
    events = read_events(jsonl)  # every line is whole JSON
    emo = [e for e in events if e["type"] == "emotion"]
    assert emo and emo[-1]["end"] < 10.0  # ended early, at real-time pace
    assert "session: jfk.flac" in err  # the summary still goes to stderr


def test_stop_ends_a_slow_replay_at_once(jfk):
    """A replay paced far below real time (`--speed 0.01`, the slowest allowed)
    waits 3.2 s for its first block; a stop (Ctrl-C, SIGTERM, q) must not wait with it."""
    import threading

    source = FileSource(jfk, speed=0.01)
    blocks = []
    reader = threading.Thread(target=lambda: blocks.extend(source.blocks()))
    reader.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    source.request_stop()
    reader.join(5.0)
    assert not reader.is_alive() and time.monotonic() - t0 < 1.0
    assert blocks == []  # nothing had played yet
    source.close()


def test_read_only_output_path(tmp_path, jfk):
    if os.access("/sys", os.W_OK) and not os.path.exists("/sys/kernel"):
        pytest.skip("no read-only location")
    r = run_cli("replay", jfk, "--plain", "--jsonl", "/sys/stream-ser-events.jsonl")
    assert r.returncode == 2 and "cannot write /sys/stream-ser-events.jsonl" in r.stderr and "Traceback" not in r.stderr


def test_disk_full_mid_run_keeps_valid_jsonl(tmp_path, jfk):
    jsonl = tmp_path / "e.jsonl"

    def small_disk():  # the file may grow to 3 kB, then writes fail as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))

    r = subprocess.run(CLI + ["replay", str(jfk), "--speed", "0", "--plain", "--jsonl", str(jsonl)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, preexec_fn=small_disk,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert any(l.startswith("stream-ser: cannot write") for l in r.stderr.splitlines())
    text = jsonl.read_text()
    assert 0 < len(text) <= 3000 and text.endswith("\n")
    for line in text.splitlines():
        json.loads(line)


class SlowThenFast:
    """An emotion model that takes 500 ms a window for its first windows."""

    labels = ("a", "b")

    def __init__(self, slow_windows):
        self.calls, self.slow_windows = 0, slow_windows
        self.extract = raw_features

    def new_normaliser(self):
        return normalise

    def predict(self, features):
        self.calls += 1
        if self.calls <= self.slow_windows:
            time.sleep(0.5)
        return np.array([0.6, 0.4])


def test_slow_stage_drops_counted_and_recovers(joined):
    path, _ = joined
    source = FileSource(path, speed=4.0)
    source.live = True  # behave like a microphone: never wait for a stage
    options = PipelineOptions(transcript=False, emotion=EmotionOptions(queue_size=2), status_interval=0.25)
    model = SlowThenFast(slow_windows=6)
    pipeline = Pipeline(source, options, emotion_model=model)
    t0 = time.monotonic()
    events = list(pipeline.events())
    took = time.monotonic() - t0
    duration = sf.info(path).duration
    assert took < duration / 4 + 3  # capture kept its pace: never blocked by the slow stage
    status = [e for e in events if e.type == "status"]
    assert status[-1].dropped_windows > 0
    assert any("dropped" in w for e in status for w in e.warnings)
    emo = [e for e in events if e.type == "emotion"]
    assert model.calls > model.slow_windows + 5  # recovered: later windows were analysed
    assert max(e.latency_ms for e in emo[-3:]) < 200


def test_hour_long_file_runs_with_flat_memory(tmp_path, jfk):
    # 60 min of speech and pauses, emotion only, as fast as possible
    audio = jfk_audio(jfk)
    block = np.concatenate([audio, np.zeros(4 * SR, np.float32)])  # 15 s
    path = tmp_path / "hour.wav"
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        for _ in range(240):
            f.write(block)
    jsonl = tmp_path / "hour.jsonl"
    t0 = time.monotonic()
    p = subprocess.Popen(CLI + ["replay", str(path), "--speed", "0", "--plain", "--no-transcript", "--jsonl", str(jsonl)],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    rss = []
    while p.poll() is None:
        try:
            rss.append(int(next(l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS")).split()[1]))
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            pass
        time.sleep(0.5)
    assert p.returncode == 0, p.stderr.read()[-2000:]
    events = read_events(jsonl)
    emo = [e for e in events if e["type"] == "emotion"]
    assert len(emo) >= 240 * 9  # ~10 windows per 11 s utterance
    assert max(e["end"] for e in emo) > 3590
    # memory: the second half of the run holds no more than the first half plus 10%
    half = len(rss) // 2
    assert rss and max(rss[half:]) <= 1.1 * max(rss[:half]), (max(rss[:half]), max(rss[half:]))


class SlowWhisper:
    """Stands in for faster-whisper on a machine far too slow for it: one decode
    takes longer than the transcriber may fall behind (max_lag)."""

    def transcribe(self, audio, **kw):
        time.sleep(4.0)
        return iter([]), None


class SlowAtTheEnd:
    """The real model, but once ``slow`` is set each decode first waits 3 s:
    the last decode of a session stopped on a busy machine."""

    def __init__(self, model):
        self.model, self.slow = model, False

    def transcribe(self, audio, **kw):
        if self.slow:
            time.sleep(3.0)
        return self.model.transcribe(audio, **kw)


def test_stop_keeps_the_words_already_shown(jfk, emotion_model, whisper_model):
    """Ctrl-C mid-sentence while the last decode is too slow to finish within
    the 2 s exit budget: the partial text on screen is committed as final, so
    it reaches the JSONL and SRT as final text, and nothing comes after it."""
    whisper = SlowAtTheEnd(whisper_model)
    pipeline = Pipeline(FileSource(jfk, speed=1.0), PipelineOptions(), emotion_model=emotion_model, whisper_model=whisper)
    events, shown = [], None
    for ev in pipeline.events():
        events.append(ev)
        if shown is None and ev.type == "transcript" and not ev.final and ev.text and ev.start > 5.0:
            shown = ev  # "what your country ...", still open
            whisper.slow = True
            pipeline.stop()
    assert shown is not None, [e for e in events if e.type == "transcript"]
    after = [e for e in events[events.index(shown) + 1:] if e.type == "transcript" and e.utterance == shown.utterance]
    assert len(after) == 1 and after[0].final and after[0].text == shown.text, after
    assert after[0].emotion is not None  # tagged like any final
    finals = [e.text for e in events if e.type == "transcript" and e.final]
    assert len(finals) == len(set(finals)), finals  # nothing committed twice


def test_transcriber_that_cannot_keep_up_skips_visibly(jfk, emotion_model):
    from stream_ser.transcribe import TranscribeOptions

    source = FileSource(jfk, speed=1.0)
    source.live = True
    options = PipelineOptions(transcribe=TranscribeOptions(max_lag=3.0), status_interval=0.5)
    events = list(Pipeline(source, options, emotion_model=emotion_model, whisper_model=SlowWhisper()).events())
    status = [e for e in events if e.type == "status"]
    assert status[-1].skipped_audio_s > 0
    assert any(w.startswith("transcript behind") for e in status for w in e.warnings)
