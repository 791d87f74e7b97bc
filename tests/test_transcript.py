"""The live transcript at real-time pace (issue 21): every decode is bounded,
so no committed span waits for a runaway decode."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from .conftest import DATA, SPEECH, SR, need_shared, run_pipeline

# The recordings, joined with 1 s gaps, up to the one whose decode once ran away
# (a repetition loop, "flower-f-f-f-...", re-decoded at five temperatures): with
# the unbounded decoder this 40 s replay committed "out" 6.7 s after its audio.
STALL_PREFIX = ("jfk.flac", "fw_stereo_left.flac", "fw_stereo_right.flac",
                "librispeech_1089-134686-0000.flac", "librispeech_1089-134686-0001.flac")


class CountingModel:
    """A WhisperModel whose CTranslate2 generate calls are counted (and their longest output)."""

    def __init__(self, whisper):
        self.whisper, self.calls, self.longest = whisper, 0, 0

    def transcribe(self, *args, **kw):
        real = self.whisper.model

        class Counting:
            def __getattr__(_, name):
                return getattr(real, name)

            def generate(_, *a, **k):
                results = real.generate(*a, **k)
                self.calls += 1
                self.longest = max([self.longest] + [len(s) for r in results for s in r.sequences_ids])
                return results

        self.whisper.model = Counting()
        try:
            segments, info = self.whisper.transcribe(*args, **kw)
            return list(segments), info
        finally:
            self.whisper.model = real


def test_a_decode_that_loops_is_cut_short(whisper_model):
    """The 9.2 s of "He hoped there would be stew ... peppered flour f" that
    made greedy whisper repeat "-f" to its 448-token limit and then re-decode
    at higher temperatures: now one decode, of at most 16 + 8 tokens a second."""
    need_shared()
    from stream_ser.ring import RingBuffer
    from stream_ser.transcribe import TranscribeOptions, Transcriber

    y, sr = sf.read(SPEECH / "librispeech_1089-134686-0000.flac", dtype="float32")
    assert sr == SR
    audio = y[int(0.06 * SR):int(9.28 * SR)]
    ring = RingBuffer(30)
    ring.write(audio)
    model = CountingModel(whisper_model)
    t = Transcriber(model, ring, lambda e: None, TranscribeOptions(), live=False)
    words = t._decode(0, len(audio), "")
    assert model.calls == 1, f"{model.calls} decoder calls for one decode (temperature fallback)"
    assert model.longest <= 16 + 8 * len(audio) / SR
    assert "hoped there would be stew" in " ".join(w.key for w in words)


@pytest.fixture(scope="module")
def stall_prefix(tmp_path_factory):
    need_shared()
    parts = []
    for name in STALL_PREFIX:
        y, sr = sf.read(SPEECH / name, dtype="float32")
        assert sr == SR
        parts += [y, np.zeros(SR, np.float32)]
    path = tmp_path_factory.mktemp("audio") / "stall_prefix.wav"
    sf.write(path, np.concatenate(parts), SR)
    return path


def test_speed_one_commits_every_span_within_4_s(stall_prefix, emotion_model, whisper_model):
    """Real-time replay: no final span is emitted more than 4 s after its audio
    ended (a commit waits for at most a decode or two; a stall took 6.7-9 s)."""
    events = run_pipeline(stall_prefix, emotion_model, whisper_model, speed=1.0)
    finals = [e for e in events if e["type"] == "transcript" and e["final"] and e["text"].strip()]
    words = " ".join(e["text"] for e in finals).lower()
    assert "stew for dinner" in words and "country" in words, words  # the transcript is there ...
    late = [(e["text"], e["latency_ms"]) for e in finals if e["latency_ms"] > 4000]
    assert not late, f"committed more than 4 s after their audio: {late}"  # ... and on time


def test_the_encoder_hears_the_decoded_audio_and_the_padding_only(whisper_model, monkeypatch):
    """faster-whisper pads every decode to whisper's 30 s window; the encoder
    gets the decoded audio and ``encoder_padding`` (10 s) of that padding, in
    hundreds of frames, and the words are still heard."""
    from faster_whisper import WhisperModel

    from stream_ser.transcribe import TranscribeOptions, decode_kwargs, load_whisper

    frames = []
    parent_encode = WhisperModel.encode

    def encode(self, features):  # what the transcriber's model hands CTranslate2
        frames.append(features.shape[-1])
        return parent_encode(self, features)

    monkeypatch.setattr(WhisperModel, "encode", encode)
    y, sr = sf.read(DATA / "jfk.flac", dtype="float32")
    o = TranscribeOptions()
    texts = []
    for seconds in (3, 11):
        segments, _ = whisper_model.transcribe(y[: seconds * sr], **decode_kwargs(o, seconds, o.final_beam_size))
        texts.append(" ".join(s.text for s in segments).lower())
    # 301 + 1000 frames, rounded up to hundreds; jfk's 11 s are ~10 s once faster-whisper's VAD filter drops the pauses
    assert frames == [1300, 2000], frames
    assert "so my fellow americans" in texts[0]
    assert "so my fellow americans" in texts[1] and "ask what you can do for your country" in texts[1]

    # 25 s of speech and 10 s of padding are more than whisper's window: nothing is cut
    frames.clear()
    list(whisper_model.transcribe(np.tile(y, 3)[: 25 * sr], **decode_kwargs(o, 25, 1))[0])
    assert frames and frames[0] == 3000

    frames.clear()
    whole = load_whisper(TranscribeOptions(encoder_padding=None))
    list(whole.transcribe(y[: 3 * sr], **decode_kwargs(o, 3, 1))[0])
    assert frames == [3000]
    with pytest.raises(ValueError):
        load_whisper(TranscribeOptions(encoder_padding=-5))
