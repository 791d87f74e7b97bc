"""End to end on real speech: windows, transcript, exports, the Python API."""

import re
import time

import numpy as np
import pytest
import soundfile as sf

import stream_ser

from .conftest import SR, espeak, read_events, run_cli, run_pipeline

LEAD = 0.4


def test_joined_recordings_windows_lie_in_speech(joined, emotion_model):
    path, spans = joined
    events = run_pipeline(path, emotion_model)
    emo = [e for e in events if e["type"] == "emotion"]
    assert len(emo) >= len(spans)
    starts = [e["start"] for e in emo]
    assert starts == sorted(starts)
    duration = sf.info(path).duration
    for e in emo:
        # 2.5 s, except the last windows, which end with the recording (zero-padded to 2.5 s)
        assert e["end"] - e["start"] == pytest.approx(2.5, abs=1e-3) or e["end"] == pytest.approx(duration, abs=1e-3), e
        assert e["end"] <= duration + 1e-3
        anchor = e["start"] + LEAD  # where the window's speech begins
        # each window is anchored in a recording (+- the lead), none in a 1 s gap
        assert any(a - LEAD - 0.1 <= anchor <= b for a, b in spans), e
        assert abs(sum(e["probs"].values()) - 1) < 1e-3 and e["label"] in e["probs"]
    statuses = [e for e in events if e["type"] == "status"]
    assert statuses and statuses[-1]["dropped_samples"] == 0 and statuses[-1]["overflows"] == 0


def test_python_api_yields_events(jfk):
    """The documented API, end to end: what each event says, not only that it came."""
    events = list(stream_ser.replay(str(jfk), speed=0))
    duration = sf.info(jfk).duration
    speech = [e for e in events if e.type == "speech"]
    assert [e.state for e in speech] == ["start", "end"] * (len(speech) // 2) and len(speech) >= 4
    assert [e.utterance for e in speech] == [k // 2 for k in range(len(speech))]
    utterances = {e.utterance for e in speech}
    emotion = [e for e in events if e.type == "emotion"]
    assert len(emotion) >= 8 and {e.utterance for e in emotion} <= utterances
    for e in emotion:
        assert e.label == max(e.probs, key=e.probs.get) and e.confidence == e.probs[e.label]
        assert abs(sum(e.probs.values()) - 1) < 1e-3 and 0 <= e.arousal <= 1
        assert 0 <= e.start < e.end <= duration + 1e-3 and e.latency_ms >= 0
    finals = [e for e in events if e.type == "transcript" and e.final and e.text]
    text = " ".join(e.text for e in finals).lower()
    assert "ask not what your country can do for you" in text, text
    assert all(e.emotion and e.emotion["label"] in emotion[0].probs for e in finals)  # every span tagged
    status = [e for e in events if e.type == "status"]
    assert events[-1] is status[-1] and status[-1].end == pytest.approx(duration, abs=0.05)
    assert [s.end for s in status] == sorted(s.end for s in status)


def words(events):
    return " ".join(e["text"] for e in events if e["type"] == "transcript" and e["final"]).lower()


def test_first_word_after_silence_is_kept(tmp_path, emotion_model, whisper_model):
    speech, _ = sf.read(espeak("Tomorrow we leave for the mountains.", tmp_path / "s.wav"), dtype="float32")
    path = tmp_path / "late.wav"
    sf.write(path, np.concatenate([np.zeros(2 * SR, np.float32), speech, np.zeros(SR, np.float32)]), SR)
    text = words(run_pipeline(path, emotion_model, whisper_model))
    assert text.split()[0].strip(".,!?") == "tomorrow", text


def _tones(seconds):
    # music-like: a melody of harmonic notes with chords and vibrato
    rng = np.random.default_rng(3)
    out = []
    for _ in range(int(seconds * 4)):
        t = np.arange(SR // 4) / SR
        f = 220 * 2 ** (rng.integers(0, 24) / 12)
        note = sum(np.sin(2 * np.pi * f * k * t + 0.3 * np.sin(2 * np.pi * 5 * t)) / k for k in (1, 2, 3))
        chord = np.sin(2 * np.pi * f * 1.5 * t) * 0.5
        out.append((0.2 * (note + chord) * np.minimum(1, 20 * t)).astype(np.float32))
    return np.concatenate(out)


def test_fast_replay_decodes_depend_on_the_audio_only(tmp_path, emotion_model, whisper_model):
    # tones that the VAD takes for a 3 s and a 30 s utterance: a fast replay
    # decodes the long one in pieces cut by the audio alone, whatever the read
    # size and however far the capture thread has got (here: while the first
    # decode is slowed down, it reads the whole long utterance and its end)
    from stream_ser.pipeline import Pipeline, PipelineOptions
    from stream_ser.sources import FileSource

    path = tmp_path / "tones.wav"
    sf.write(path, np.concatenate([_tones(3), np.zeros(2 * SR, np.float32), _tones(30)]), SR)

    class Recording:
        def __init__(self, first_delay):
            self.lengths, self.first_delay = [], first_delay

        def __getattr__(self, name):
            return getattr(whisper_model, name)

        def transcribe(self, audio, **kw):
            if not self.lengths:
                time.sleep(self.first_delay)
            self.lengths.append(round(len(audio) / SR, 2))
            return whisper_model.transcribe(audio, **kw)

    def decodes(block_seconds, first_delay=0.0):
        model = Recording(first_delay)
        p = Pipeline(FileSource(path, speed=0, block_seconds=block_seconds), PipelineOptions(),
                     emotion_model=emotion_model, whisper_model=model)
        events = [e.to_dict() for e in p.events()]
        utterances = [(e["state"], e["start"]) for e in events if e["type"] == "speech"]
        transcript = [(e["start"], e["end"], e["text"]) for e in events if e["type"] == "transcript"]
        return utterances, model.lengths, transcript

    small = decodes(0.032)
    assert [s for s, _ in small[0]] == ["start", "end", "start", "end"]  # the case under test
    assert 15.0 in small[1] and len(small[1]) >= 3, small[1]  # the long one is cut
    assert decodes(None) == small
    assert decodes(None, first_delay=2.0) == small


@pytest.mark.parametrize("kind", ["silence", "white-noise", "tones"])
def test_no_words_on_non_speech(tmp_path, emotion_model, whisper_model, kind):
    n = 60 * SR
    audio = {"silence": lambda: np.zeros(n, np.float32),
             "white-noise": lambda: (0.1 * np.random.default_rng(0).standard_normal(n)).astype(np.float32),
             "tones": lambda: _tones(60)}[kind]()
    path = tmp_path / f"{kind}.wav"
    sf.write(path, audio, SR)
    events = run_pipeline(path, emotion_model, whisper_model)
    assert words(events) == ""
    if kind != "tones":
        assert not [e for e in events if e["type"] == "emotion"]


def test_cli_replay_exports(tmp_path, jfk):
    out = {k: tmp_path / f"e.{k}" for k in ("jsonl", "srt", "vtt")}
    r = run_cli("replay", jfk, "--speed", "0", "--plain", "--jsonl", out["jsonl"], "--srt", out["srt"], "--vtt", out["vtt"])
    assert r.returncode == 0, r.stderr[-2000:]
    events = read_events(out["jsonl"])
    duration = sf.info(jfk).duration
    for e in events:
        assert {"type", "start", "end", "emitted_at", "latency_ms"} <= set(e)
        # no event claims audio after the recording's end (the last windows are padded, not longer)
        assert 0 <= e["start"] <= e["end"] <= duration + 1e-3, e
    finals = [e for e in events if e["type"] == "transcript" and e["final"]]
    # a span starts where its utterance's speech does, not over the pause before it
    # (Whisper put "ask not" at 2.75 s; the VAD hears it from 3.27 s)
    onset = {e["utterance"]: e["start"] for e in events if e["type"] == "speech" and e["state"] == "start"}
    assert all(e["start"] >= onset[e["utterance"]] - 1e-3 for e in finals), (finals, onset)
    text = " ".join(e["text"] for e in finals).lower()
    for w in ("fellow", "americans", "country"):
        assert w in text, text
    labels = {"angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised"}
    assert finals and all(e["emotion"] and e["emotion"]["label"] in labels for e in finals), finals
    srt = out["srt"].read_text()
    assert re.search(r"^1\n00:00:0\d,\d{3} --> 00:00:\d\d,\d{3}\n\((angry|disgust|fearful|happy|neutral|sad|surprised) 0\.\d\d\) ", srt, re.M), srt
    assert out["vtt"].read_text().startswith("WEBVTT\n\n00:00:")
    # plain output: one line per emotion window and per committed span
    assert re.search(r"^\[\s*\d+\.\d-\s*\d+\.\d\] \((\w+) 0\.\d\d\) .*country", r.stdout, re.M), r.stdout
    assert "session: jfk.flac" in r.stderr


def test_speed_one_paces_like_a_microphone(jfk, emotion_model):
    t0 = time.monotonic()
    events = run_pipeline(jfk, emotion_model, speed=1.0)
    took = time.monotonic() - t0
    assert 10.8 <= took <= 12.5, took  # 11.0 s of audio
    emo = [e for e in events if e["type"] == "emotion"]
    # at real-time pace an emotion event is emitted right after its window's last sample
    assert emo and max(e["latency_ms"] for e in emo) < 1000
