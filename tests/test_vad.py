"""The VAD gate on silence, noise, tones and real speech."""

import numpy as np
import soundfile as sf

from stream_ser.vad import VadGate, VadOptions

from .conftest import SR, espeak

rng = np.random.default_rng(0)


def utterances(audio, **kw):
    gate = VadGate(VadOptions(**kw))
    out = []
    for i in range(0, len(audio), 512):
        out += gate.push(audio[i : i + 512])
    return out + gate.flush(), gate


def test_digital_silence_is_never_speech():
    got, gate = utterances(np.zeros(10 * SR, np.float32))
    assert got == [] and gate.speech_frames == 0


def test_white_noise_is_not_speech_forever():
    # webrtcvad alone calls white noise speech; the flatness check must not
    for level in (0.01, 0.1, 0.5):
        got, gate = utterances((level * rng.standard_normal(10 * SR)).astype(np.float32))
        assert gate.speech_frames / gate.frames < 0.02, level
        assert got == [], level


def test_dc_offset_is_not_speech():
    got, _ = utterances(np.full(5 * SR, 0.3, np.float32))
    assert got == []


def test_espeak_sentence_after_silence_starts_near_its_onset(tmp_path):
    speech, _ = sf.read(espeak("Please call me back as soon as you can.", tmp_path / "s.wav"), dtype="float32")
    audio = np.concatenate([np.zeros(2 * SR, np.float32), speech, np.zeros(2 * SR, np.float32)])
    got, _ = utterances(audio)
    starts = [u for u in got if u.kind == "start"]
    ends = [u for u in got if u.kind == "end"]
    assert len(starts) >= 1 and len(ends) == len(starts)
    first_voice = 2 * SR + int(np.argmax(np.abs(speech) > 0.02))
    assert abs(starts[0].sample - first_voice) < 0.15 * SR
    assert starts[0].preroll_start == starts[0].sample - int(0.3 * SR)  # 0.3 s pre-roll
    assert ends[-1].sample <= len(audio) - 1.5 * SR  # ends soon after the speech


def test_quiet_speech_is_still_found(tmp_path):
    speech, _ = sf.read(espeak("This is said very quietly.", tmp_path / "q.wav"), dtype="float32")
    rms = np.sqrt(np.mean(speech[np.abs(speech) > 1e-4] ** 2))
    quiet = (speech * 10 ** (-50 / 20) / rms).astype(np.float32)  # -50 dBFS
    got, _ = utterances(np.concatenate([np.zeros(SR, np.float32), quiet, np.zeros(SR, np.float32)]))
    assert any(u.kind == "start" for u in got)


def test_real_recording_gaps_split_utterances(joined):
    path, spans = joined
    audio, _ = sf.read(path, dtype="float32")
    got, _ = utterances(audio)
    starts = [u.sample / SR for u in got if u.kind == "start"]
    # every recording is found, and no utterance starts inside a 1 s gap
    for a, b in spans:
        assert any(a - 0.1 <= s <= b for s in starts), (a, b)
    for s in starts:
        assert any(a - 0.1 <= s <= b for a, b in spans), s
