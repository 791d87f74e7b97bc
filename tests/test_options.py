"""Issue 25's options: ``--version``, ``--compute auto|cpu|cuda`` for both
models, and ``--subtitles text`` (clean SRT/VTT cues)."""

import re
from importlib.metadata import version

import pytest

from stream_ser.events import TranscriptEvent
from stream_ser.outputs import subtitle_cue

from .conftest import ROOT, run_cli


def test_version_is_the_package_metadata():
    r = run_cli("--version", timeout=60)
    assert r.returncode == 0
    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert r.stdout.strip() == f"stream-ser {version('stream-ser')}" == f"stream-ser {declared}"


def test_subtitle_cue_with_and_without_the_emotion():
    e = TranscriptEvent("transcript", 3.3, 4.5, 0.0, 0.0, text="ask not", emotion={"label": "neutral", "confidence": 0.37})
    assert subtitle_cue(e, 1, "srt") == "1\n00:00:03,300 --> 00:00:04,500\n(neutral 0.37) ask not\n\n"
    assert subtitle_cue(e, 1, "srt", "text") == "1\n00:00:03,300 --> 00:00:04,500\nask not\n\n"
    assert subtitle_cue(e, 1, "vtt", "text") == "00:00:03.300 --> 00:00:04.500\nask not\n\n"


def test_compute_cpu_hides_the_gpus_from_tensorflow_and_runs_whisper_on_cpu(monkeypatch):
    from stream_ser import device
    from stream_ser.emotion import DEFAULT_MODELS, EmotionModel
    from stream_ser.transcribe import TranscribeOptions, load_whisper

    if not (DEFAULT_MODELS / "labels.json").exists():
        pytest.skip("no shipped emotion model in models/")
    calls = []
    monkeypatch.setattr(device, "tensorflow_cpu_only", lambda: calls.append("cpu only"))
    EmotionModel(DEFAULT_MODELS, device="auto")
    assert calls == []
    EmotionModel(DEFAULT_MODELS, device="cpu")
    assert calls == ["cpu only"]
    assert load_whisper(TranscribeOptions(device="cpu")).model.device == "cpu"


def test_compute_cuda_without_a_gpu_falls_back_in_one_line_and_subtitles_text_are_clean(tmp_path, jfk):
    """One replay for two options: ``--compute cuda`` on a machine without a GPU
    says so in one line and runs on the CPU; ``--subtitles text`` writes SRT and
    VTT cues without the "(label conf)" prefix (the terminal keeps it)."""
    from stream_ser.device import cuda_devices, resolve

    if cuda_devices():
        pytest.skip("a CUDA device is here: nothing falls back")
    assert resolve("cuda")[0] == "cpu" and resolve("cpu") == ("cpu", None) and resolve("auto") == ("auto", None)
    srt, vtt = tmp_path / "a.srt", tmp_path / "a.vtt"
    r = run_cli("replay", jfk, "--speed", "0", "--plain", "--compute", "cuda", "--srt", srt, "--vtt", vtt, "--subtitles", "text")
    assert r.returncode == 0, r.stderr[-2000:]
    notes = [line for line in r.stderr.splitlines() if "--compute" in line or "CUDA" in line]
    assert notes == ["stream-ser: --compute cuda: no CUDA device found (none visible to CTranslate2); "
                     "running both models on the CPU"], r.stderr
    assert "ask not" in r.stdout.lower()
    assert re.search(r"^\[ *\d+\.\d- *\d+\.\d\] \(\w+ \d\.\d\d\) ", r.stdout, re.M)  # the terminal keeps its labels
    for path, header in ((srt, ""), (vtt, "WEBVTT\n\n")):
        text = path.read_text()
        assert text.startswith(header)
        cues = [c.splitlines() for c in text[len(header):].strip().split("\n\n")]
        words = [c[-1] for c in cues]
        assert len(cues) >= 3 and all("-->" in c[-2] for c in cues), text
        assert not [w for w in words if w.startswith("(")], words  # no "(label conf)" prefix
        assert "ask not" in " ".join(words).lower()
    r = run_cli("replay", jfk, "--compute", "gpu", timeout=60)
    assert r.returncode == 2 and "--compute" in r.stderr and "Traceback" not in r.stderr


def test_compute_does_not_change_what_batch_counts_as_done():
    """A batch rerun with another --compute skips what is analysed: the device decides where, not what."""
    from stream_ser.batch import model_identity
    from stream_ser.pipeline import PipelineOptions

    a, b = PipelineOptions(), PipelineOptions()
    b.transcribe.device = b.emotion.device = "cpu"
    b.emotion.feature_threads = 1  # how many windows at once: the same events (batch sets it per worker)
    assert model_identity(a) == model_identity(b)
    b.emotion.neutral_bias = 0.5  # ... while what decides the events does
    assert model_identity(a) != model_identity(b)
