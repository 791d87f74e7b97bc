"""Compressed files decode in-process (PyAV): no ffmpeg binary on PATH, a
quiet stderr, and one-line errors for a corrupt file."""

import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from stream_ser import codec
from stream_ser.errors import SourceError

from .conftest import ROOT, SR, run_cli

# what `replay --plain` writes on stderr: its status lines and summary, nothing else
SUMMARY = re.compile(r"^(status |session: |emotion windows: |transcript: |events: |emotion latency: |transcript latency: |input: )")


@pytest.fixture(scope="module")
def audio(jfk):
    return sf.read(jfk, dtype="float32")[0]


@pytest.fixture(scope="module")
def no_ffmpeg(tmp_path_factory):
    """A PATH on which no ffmpeg (nor anything else) is found."""
    bin_dir = tmp_path_factory.mktemp("bin")
    assert shutil.which("ffmpeg", path=str(bin_dir)) is None
    return {"PATH": str(bin_dir)}


@pytest.mark.parametrize("kind,name", [("mp3", "call.mp3"), ("m4a", "call.m4a"), ("opus", "call.opus")])
def test_replay_without_ffmpeg_is_quiet(tmp_path, audio, no_ffmpeg, kind, name):
    path = tmp_path / name
    path.write_bytes(codec.encode(audio, SR, kind, 48))
    r = run_cli("replay", path, "--speed", "0", "--plain", env=no_ffmpeg)
    assert r.returncode == 0, r.stderr[-2000:]
    words = re.sub(r"[^a-z ]", "", " ".join(line.split(")", 1)[-1] for line in r.stdout.lower().splitlines()))
    # the decode is whole (tiny.en may hear the 1 s fragment "ask not" of a 48 kbit/s file as "asked not")
    assert "what your country can do for you ask what you can do for your country" in " ".join(words.split()), r.stdout
    noise = [line for line in r.stderr.splitlines() if line.strip() and not SUMMARY.match(line)]
    assert not noise, noise[:5]


def test_junk_named_mp3_is_one_line_and_exit_2(tmp_path, no_ffmpeg):
    path = tmp_path / "call.mp3"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 40000, dtype=np.uint8).tobytes())
    r = run_cli("replay", path, "--speed", "0", "--plain", env=no_ffmpeg)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"stream-ser: {path}: cannot decode audio: not a supported audio format, "
                                             f"or corrupt (Invalid data found when processing input)"], r.stderr


def test_damaged_mp3_is_analysed_and_said_in_one_line(tmp_path, audio, no_ffmpeg):
    """Damage mid-file: the decoder skips the bad packets and goes on; the session
    ends with one line saying so and a non-zero exit (as for a truncated WAV)."""
    good = codec.encode(audio, SR, "mp3", 64)
    path = tmp_path / "damaged.mp3"
    path.write_bytes(good[:30000] + np.random.default_rng(1).integers(0, 256, 8000, dtype=np.uint8).tobytes() + good[38000:])
    r = run_cli("replay", path, "--speed", "0", "--plain", "--no-transcript", env=no_ffmpeg)
    assert r.returncode != 0
    extra = [line for line in r.stderr.splitlines() if not SUMMARY.match(line)]
    assert len(extra) == 1 and "damaged packets skipped" in extra[0] and str(path) in extra[0], r.stderr
    assert "emotion windows:" in r.stderr  # what decoded was analysed


def test_a_skipped_packet_keeps_the_clock(tmp_path, audio):
    """A container with timestamps (m4a): the audio of damaged packets comes back
    as silence, so what follows keeps its time in the file."""
    data = bytearray(codec.encode(audio, SR, "m4a", 64))
    data[40000:52000] = np.random.default_rng(1).integers(0, 256, 12000, dtype=np.uint8).tobytes()
    path = tmp_path / "damaged.m4a"
    path.write_bytes(bytes(data))
    d = codec.Decoder(path)
    y = np.concatenate(list(d.blocks(4096)))
    assert d.damaged > 0
    assert abs(len(y) - len(audio)) < 0.1 * SR, (len(y), len(audio))  # without the fill: ~1.5 s short


def test_video_file_audio_track(tmp_path, audio):
    """The audio track of a file that has a video track first."""
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=5)
        video.width = video.height = 32
        sound = out.add_stream("aac", rate=SR, layout="mono")
        for i in range(55):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 4, np.uint8), format="rgb24")
            for p in video.encode(frame):
                out.mux(p)
        frame = av.AudioFrame.from_ndarray(audio[None, :], format="fltp", layout="mono")
        frame.sample_rate = SR
        for f in (frame, None):
            for p in sound.encode(f):
                out.mux(p)
        for p in video.encode(None):
            out.mux(p)
    with av.open(str(path)) as c:
        assert c.streams.video[0].index == 0 and c.streams.audio  # the video track comes first
    y, rate = codec.read(path)
    assert rate == SR and abs(len(y) - len(audio)) < 0.1 * SR
    # the jfk sound itself, at the AAC encoder's delay (at most 2048 samples)
    best = max(np.corrcoef(y[lag + 2000 : lag + 150000, 0], audio[2000:150000])[0, 1] for lag in range(0, 2049, 64))
    assert best > 0.9, best


def test_no_audio_track_is_one_line(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "silent-film.mp4"
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=5)
        video.width = video.height = 32
        for i in range(5):
            for p in video.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
                out.mux(p)
        for p in video.encode(None):
            out.mux(p)
    with pytest.raises(SourceError, match="no audio track"):
        codec.Decoder(path)


@pytest.mark.parametrize("name", ["mp3", "opus"])
def test_codec_round_trip_is_aligned(audio, name):
    """The evaluation's and training's codec conditions: same length, realigned,
    and close to the clean clip (a misaligned copy would correlate near 0)."""
    from stream_ser.training.augment import apply

    out = apply(name, audio, np.random.default_rng(0))
    assert out.shape == audio.shape and out.dtype == np.float32
    assert np.corrcoef(out, audio)[0, 1] > 0.9


def test_an_encoder_missing_from_pyav_is_one_line(monkeypatch, audio):
    monkeypatch.setitem(codec.CODECS, "mp3", ("mp3", "no_such_encoder"))
    with pytest.raises(SourceError, match=r"^cannot encode mp3 in-process \(no_such_encoder: not in this PyAV build\)$"):
        codec.encode(audio, SR, "mp3", 32)


def test_evaluate_says_a_condition_it_cannot_simulate_and_goes_on(monkeypatch, capsys, tmp_path):
    """`evaluate --condition all` on a PyAV without the MP3 encoder: one line for
    mp3, the other conditions still scored (here only mp3 is asked: exit 1)."""
    from .conftest import need_shared

    need_shared()
    from stream_ser.cli import main

    monkeypatch.setenv("STREAM_SER_CACHE", str(tmp_path))
    monkeypatch.setitem(codec.CODECS, "mp3", ("mp3", "no_such_encoder"))
    # the bundled model has heard every actor and evaluate refuses it; this test is about
    # the codec, not the scores, so a copy that says it heard the train actors only
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models, ignore=shutil.ignore_patterns("runs", "*.png", "evaluation.json"))
    meta = json.loads((models / "labels.json").read_text())
    meta.pop("train_speakers")
    meta["trained_on"] = ["train"]
    (models / "labels.json").write_text(json.dumps(meta))
    assert main(["evaluate", "--split", "test", "--condition", "mp3", "--json", "--model", str(models)]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == "[]"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stream-ser: condition mp3 skipped: cannot encode mp3 in-process (no_such_encoder: "), err


@pytest.mark.parametrize("name,fmt,encoder,rate", [("a.webm", "webm", "libopus", 48000), ("a.mov", "mov", "aac", SR),
                                                   ("a.aac", "adts", "aac", SR), ("a.ac3", "ac3", "ac3", 48000)])
def test_other_containers(tmp_path, audio, name, fmt, encoder, rate):
    """Opus in WebM, AAC in QuickTime and raw ADTS, AC-3: the whole clip, at the codec's rate."""
    av = pytest.importorskip("av")
    import soxr

    y = soxr.resample(audio, SR, rate) if rate != SR else audio
    path = tmp_path / name
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(encoder, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(y[None, :]), format="fltp", layout="mono")
        frame.sample_rate = rate
        for f in (frame, None):
            for p in stream.encode(f):
                out.mux(p)
    got, got_rate = codec.read(path)
    assert got_rate == rate and abs(len(got) / rate - len(audio) / SR) < 0.1
