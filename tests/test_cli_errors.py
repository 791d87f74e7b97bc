"""Bad input: one line on stderr naming the problem, exit 2, no traceback."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from .conftest import ROOT, SHARED, run_cli


def one_line_error(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [l for l in result.stderr.splitlines() if l.startswith("stream-ser:")]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_help_does_not_import_the_heavy_stack():
    code = ("import sys, stream_ser.cli as c\n"
            "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('tensorflow', 'faster_whisper', 'librosa', 'sounddevice') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "listen" in r.stdout and "replay" in r.stdout


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "truncated-header", "random-bytes"])
def test_bad_file(tmp_path, case):
    path = tmp_path / "call.wav"
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "truncated-header":
        sf.write(path, np.zeros(16000, np.float32), 16000)
        path.write_bytes(path.read_bytes()[:30])
    elif case == "random-bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 50000, dtype=np.uint8).tobytes())
    one_line_error(run_cli("replay", path, "--speed", "0", "--plain"), str(path))


def test_text_named_mp3_is_one_line(tmp_path):
    """libsndfile's MP3 decoder writes its own notes on stderr for such a file."""
    path = tmp_path / "call.mp3"
    path.write_text("not audio at all, just text\n" * 200)
    r = run_cli("replay", path, "--speed", "0", "--plain")
    one_line_error(r, str(path))
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_speed_must_be_a_finite_pace(tone, value):
    one_line_error(run_cli("replay", tone, "--plain", f"--speed={value}"), "--speed")


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = tmp_path / "call.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    path.chmod(0)
    one_line_error(run_cli("replay", path, "--plain"), "permission")


@pytest.fixture
def tone(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    return path


def test_missing_model_dir(tmp_path, tone):
    one_line_error(run_cli("replay", tone, "--speed", "0", "--plain", "--models", tmp_path / "nope"), "not found")


def _models_copy(tmp_path):
    from stream_ser.emotion import DEFAULT_MODELS

    if not (DEFAULT_MODELS / "labels.json").exists():
        pytest.skip("no shipped model")
    d = tmp_path / "models"
    shutil.copytree(DEFAULT_MODELS, d)
    return d


def test_corrupt_model_file(tmp_path, tone):
    d = _models_copy(tmp_path)
    for name in ("emotion.tflite", "emotion.keras"):
        (d / name).write_bytes(b"not a model" * 100)
    one_line_error(run_cli("replay", tone, "--speed", "0", "--plain", "--models", d), "corrupt")


@pytest.mark.parametrize("case", ["moved", "malformed"])
def test_model_trained_on_other_features(tmp_path, tone, case):
    """A model whose recorded feature fingerprint this extractor does not
    reproduce is refused, not fed skewed features."""
    d = _models_copy(tmp_path)
    meta = json.loads((d / "labels.json").read_text())
    if case == "moved" and meta["normalisation"].get("features") == "whisper":
        meta["normalisation"]["features_probe"]["mean"] = [v + 0.5 for v in meta["normalisation"]["features_probe"]["mean"]]
        needles = ("other encoder states",)  # as if another whisper model were bundled
    elif case == "moved":
        meta["normalisation"]["features_probe"]["mean"][2] += 20.0  # as if the MFCC's log floor had moved
        needles = ("other features", "mfcc0 mean")
    else:
        meta["normalisation"]["features_probe"] = {"mean": [None] * 22}
        needles = ("unreadable features_probe",)
    (d / "labels.json").write_text(json.dumps(meta))
    one_line_error(run_cli("replay", tone, "--speed", "0", "--plain", "--models", d), *needles)
    if SHARED.is_dir():  # evaluate reads the manifest before it looks at the model
        for args in (("--speech",), ("--split", "test")):
            one_line_error(run_cli("evaluate", *args, "--model", d), *needles)


@pytest.mark.parametrize("labels", ['{"labels": ["a", "b"]}', "not json", '{"labels": []}'])
def test_wrong_labels_file(tmp_path, tone, labels):
    d = _models_copy(tmp_path)
    (d / "labels.json").write_text(labels)
    one_line_error(run_cli("replay", tone, "--speed", "0", "--plain", "--models", d), "labels")


@pytest.mark.parametrize("prior", [["neutral"], {"calm": 1.0}, {"neutral": "high"}, {"neutral": float("nan")}])
def test_bad_log_prior(tmp_path, tone, prior):
    d = _models_copy(tmp_path)
    meta = json.loads((d / "labels.json").read_text())
    meta["log_prior"] = prior
    (d / "labels.json").write_text(json.dumps(meta))
    one_line_error(run_cli("replay", tone, "--speed", "0", "--plain", "--no-transcript", "--models", d), "log_prior")


def test_missing_asr_model(tmp_path, tone):
    one_line_error(run_cli("replay", tone, "--speed", "0", "--plain", "--asr-model", tmp_path / "no-such-model"), "ASR model")


def test_jsonl_in_missing_directory(tmp_path, tone):
    one_line_error(run_cli("replay", tone, "--plain", "--jsonl", tmp_path / "no" / "dir" / "e.jsonl"), "cannot write")


def test_unknown_device():
    one_line_error(run_cli("listen", "-d", "no-such-device-xyz", "--plain"), "no-such-device-xyz")
    one_line_error(run_cli("listen", "-d", "999", "--plain"), "999")


@pytest.mark.parametrize("fmt,subtype,width", [("WAV", "PCM_16", 2), ("WAVEX", "PCM_24", 3)])
def test_truncated_wav_keeps_events_and_says_so(tmp_path, fmt, subtype, width):
    from .conftest import DATA, read_events

    y, sr = sf.read(DATA / "jfk.flac", dtype="float32")
    path = tmp_path / "cut.wav"
    sf.write(path, y, sr, format=fmt, subtype=subtype)
    header = len(path.read_bytes()) - width * len(y)
    path.write_bytes(path.read_bytes()[: header + width * 6 * sr])  # the header still declares 11 s; 6 s remain
    jsonl = tmp_path / "e.jsonl"
    line = one_line_error(run_cli("replay", path, "--speed", "0", "--plain", "--no-transcript", "--jsonl", jsonl), "truncated")
    assert str(path) in line
    emo = [e for e in read_events(jsonl) if e["type"] == "emotion"]
    assert emo and max(e["end"] for e in emo) <= 6.0 + 1e-3


def test_damaged_ogg_vorbis_says_how_much_was_lost(tmp_path):
    """libsndfile skips (or stops at) a damaged Ogg page without an error: the
    shortfall against the frames the file declares is said, the events kept."""
    from .conftest import DATA, read_events

    y, sr = sf.read(DATA / "jfk.flac", dtype="float32")
    path = tmp_path / "damaged.ogg"
    sf.write(path, y, sr, format="OGG", subtype="VORBIS")
    data = bytearray(path.read_bytes())
    k = int(len(data) * 0.7)
    data[k : k + 400] = bytes(400)
    path.write_bytes(bytes(data))
    with sf.SoundFile(path) as f:  # the premise: libsndfile reads less than it declares, and says nothing
        assert len(f.read(dtype="float32")) < f.frames - sr // 10
    jsonl = tmp_path / "e.jsonl"
    line = one_line_error(run_cli("replay", path, "--speed", "0", "--plain", "--no-transcript", "--jsonl", jsonl),
                          "damaged data", "could not be decoded", "of the 11.0 s")
    assert str(path) in line
    assert [e for e in read_events(jsonl) if e["type"] == "emotion"]
    # an undamaged Ogg Vorbis file reads whole, without a word
    sf.write(path, y, sr, format="OGG", subtype="VORBIS")
    r = run_cli("replay", path, "--speed", "0", "--plain", "--no-transcript")
    assert r.returncode == 0 and "stream-ser:" not in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_neutral_bias_must_be_finite(tone, value):
    r = run_cli("replay", tone, "--plain", "--neutral-bias", value)
    assert r.returncode == 2 and "--neutral-bias: must be a finite number from -20 to 20" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_evaluate_keep_calm_needs_an_8_class_model(tmp_path):
    d = _models_copy(tmp_path)
    one_line_error(run_cli("evaluate", "--keep-calm", "--model", d), "has 7 classes, not 8", "--keep-calm")


def test_evaluate_plot_into_missing_directory(tmp_path):
    d = _models_copy(tmp_path)
    one_line_error(run_cli("evaluate", "--model", d, "--plot", tmp_path / "no" / "cm.png"), "--plot")


def test_export_bad_checkpoints(tmp_path):
    d = _models_copy(tmp_path)
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    one_line_error(run_cli("export", text, "--out", tmp_path / "out"), "not a .keras model file")
    # a checkpoint away from its run directory: its normalisation is unknown, so refuse
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(d / "emotion.keras", lone / "best.keras")
    one_line_error(run_cli("export", lone / "best.keras", "--out", tmp_path / "out"), "norm.json")
    assert not (tmp_path / "out" / "labels.json").exists()


def test_complete_wav_with_trailing_chunk_is_not_truncated(tmp_path):
    from stream_ser.sources import _wav_missing_bytes

    path = tmp_path / "odd.wav"
    sf.write(path, np.zeros(1001, np.float32), 16000, subtype="PCM_U8")  # odd data length: one pad byte
    data = bytearray(path.read_bytes())
    data += b"LIST" + (4).to_bytes(4, "little") + b"INFO"
    data[4:8] = (len(data) - 8).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert _wav_missing_bytes(path) == 0
    path.write_bytes(bytes(data[:-6]))  # the trailing chunk cut, the audio whole
    assert _wav_missing_bytes(path) == 0
    path.write_bytes(bytes(data[:100]))
    assert _wav_missing_bytes(path) == 1001 - (100 - 44)


def test_transcript_files_need_the_transcript(tone, tmp_path):
    one_line_error(run_cli("replay", tone, "--plain", "--no-transcript", "--srt", tmp_path / "t.srt"), "--no-transcript")
    assert not (tmp_path / "t.srt").exists()


def test_asr_model_names_offline():
    from stream_ser.emotion import ModelError
    from stream_ser.transcribe import TranscribeOptions, load_whisper

    from .conftest import DATA

    model = load_whisper(TranscribeOptions(model="tiny.en"))  # the bundled model, by its name, offline
    audio, _ = sf.read(DATA / "jfk.flac", dtype="float32")
    segments, _ = model.transcribe(audio[: 3 * 16000], beam_size=1, language="en")
    assert "americans" in " ".join(s.text for s in segments).lower()
    with pytest.raises(ModelError, match="not available offline"):
        load_whisper(TranscribeOptions(model="no-such-whisper-model"))
