"""Any rate, channel count, sample format and container gives the same events
(within one hop) as the 16 kHz mono original; the clock survives resampling."""

import numpy as np
import pytest
import soundfile as sf
import soxr

from stream_ser.errors import SourceError
from stream_ser.sources import FileSource

from .conftest import SR, run_cli, run_pipeline

CASES = [
    (8000, 1, "WAV", "PCM_16"),
    (11025, 2, "WAV", "PCM_U8"),
    (22050, 6, "WAV", "PCM_24"),
    (44100, 2, "WAV", "PCM_32"),
    (48000, 2, "WAV", "FLOAT"),
    (96000, 1, "FLAC", "PCM_24"),
    (48000, 2, "OGG", "VORBIS"),
    (44100, 2, "MP3", "MPEG_LAYER_III"),
]


@pytest.fixture(scope="module")
def reference(jfk, emotion_model):
    audio, _ = sf.read(jfk, dtype="float32")
    return audio, [e for e in run_pipeline(jfk, emotion_model) if e["type"] == "emotion"]


def write_variant(audio, path, rate, channels, fmt, subtype):
    y = soxr.resample(audio, SR, rate) if rate != SR else audio
    y = np.repeat(y[:, None], channels, axis=1) * 0.9 if channels > 1 else y * 0.9
    sf.write(path, y, rate, format=fmt, subtype=subtype)


@pytest.mark.parametrize("rate,channels,fmt,subtype", CASES, ids=[f"{r}-{c}ch-{f}-{s}" for r, c, f, s in CASES])
def test_variant_matches_16k_mono(tmp_path, reference, emotion_model, rate, channels, fmt, subtype):
    audio, ref = reference
    path = tmp_path / f"v.{fmt.lower()}"
    write_variant(audio, path, rate, channels, fmt, subtype)
    got = [e for e in run_pipeline(path, emotion_model) if e["type"] == "emotion"]
    assert len(got) == len(ref) > 0
    for a, b in zip(got, ref):
        assert abs(a["start"] - b["start"]) <= 1.0  # within one hop
        # 2.5 s, or ending with the recording (the padded last windows)
        assert a["end"] - a["start"] == pytest.approx(2.5) or a["end"] == pytest.approx(len(audio) / SR, abs=0.1), a


@pytest.mark.parametrize("rate", [44100, 48000])
def test_clock_across_resampling(tmp_path, rate):
    # 10 s at the device/file rate must become exactly 10 s on the 16 kHz clock
    t = np.arange(10 * rate) / rate
    path = tmp_path / "tone.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    src = FileSource(path, speed=0)
    blocks = [b for b, _ in src.blocks()]
    total = sum(len(b) for b in blocks)
    assert abs(total - 10 * SR) <= 2
    y = np.concatenate(blocks)
    # and the tone is still 440 Hz (no drift): count zero crossings
    crossings = np.count_nonzero(np.diff(np.signbit(y[SR : 9 * SR]).astype(np.int8)))
    assert abs(crossings / 2 / 8 - 440) < 1


def test_m4a_through_pyav(tmp_path, jfk, emotion_model, reference):
    from stream_ser import codec

    path = tmp_path / "call.m4a"
    path.write_bytes(codec.encode(reference[0], SR, "m4a", 64))
    got = [e for e in run_pipeline(path, emotion_model) if e["type"] == "emotion"]
    assert len(got) == len(reference[1])


def test_mp3_keeps_its_rate_level_and_a_quiet_stderr(tmp_path, jfk):
    """MP3 is decoded at the file's own rate and channels, mixed to mono like
    every other file (a channel mean, not a louder down-mix), and without the
    decoder chatter libsndfile's mpg123 prints in block reads."""
    from stream_ser import codec

    audio, _ = sf.read(jfk, dtype="float32")
    stereo = np.stack([audio, audio], 1) * (0.9 / np.abs(audio).max())
    wav, mp3 = tmp_path / "s.wav", tmp_path / "s.mp3"
    sf.write(wav, stereo, SR)
    mp3.write_bytes(codec.encode(soxr.resample(stereo, SR, 44100), 44100, "mp3", 128))

    def level(path):
        src = FileSource(path, speed=0)
        x = np.concatenate([b for b, _ in src.blocks()])
        return src, 10 * np.log10(np.mean(x**2)), len(x)

    src, db, n = level(mp3)
    _, ref_db, ref_n = level(wav)
    assert (src.sample_rate, src.channels) == (44100, 2)
    assert abs(db - ref_db) < 1.0 and abs(n - ref_n) < 0.05 * SR, (db, ref_db, n, ref_n)
    mono = tmp_path / "m.mp3"  # 16 kHz mono MP3: the case that printed mpg123 errors
    sf.write(mono, audio, SR, format="MP3")  # libsndfile's own encoder: its file is decoded by PyAV too
    r = run_cli("replay", mono, "--speed", "0", "--plain", "--no-transcript")
    assert r.returncode == 0, r.stderr[-2000:]
    noise = [l for l in r.stderr.splitlines() if "layer3" in l or "mpg123" in l or "error" in l.lower()]
    assert not noise, noise[:5]


def _read_all(path, block_seconds):
    src = FileSource(path, speed=0, block_seconds=block_seconds)
    blocks, error = [], None
    try:
        for x, _ in src.blocks():
            blocks.append(x)
    except SourceError as e:
        error = str(e)
    finally:
        src.close()
    return np.concatenate(blocks), error, len(blocks)


def test_fast_replay_blocks_hold_the_paced_blocks_audio(tmp_path, jfk):
    # a fast replay reads 0.512 s blocks, a paced one 32 ms: the same samples
    # come out, resampled or through PyAV, and a damaged file keeps the audio
    # before its damage (the failed block is read again in 32 ms pieces)
    from stream_ser import codec

    y, _ = sf.read(jfk, dtype="float32")
    resampled = tmp_path / "call-44k.wav"
    sf.write(resampled, soxr.resample(y, SR, 44100), 44100)
    mp3 = tmp_path / "call.mp3"
    mp3.write_bytes(codec.encode(y, SR, "mp3", 64))
    damaged = tmp_path / "damaged.flac"
    sf.write(damaged, y, SR)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4000] = bytes(4000)
    damaged.write_bytes(bytes(data))
    for path in (resampled, mp3, damaged):
        paced, paced_error, paced_blocks = _read_all(path, 0.032)
        fast, fast_error, fast_blocks = _read_all(path, None)
        assert np.array_equal(fast, paced) and fast_error == paced_error, path.name
        assert fast_blocks < paced_blocks / 8, (path.name, fast_blocks, paced_blocks)  # codec frames joined too
    assert paced_error and "decoding failed mid-file" in paced_error and 4 * SR < len(paced) < 8 * SR
