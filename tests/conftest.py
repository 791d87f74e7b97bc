"""Shared fixtures: real audio from ../shared/data (skipped where absent) and
audio made here (espeak-ng, tones, silence, noise)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SPEECH = SHARED / "speech"
SER = SHARED / "ser"
SR = 16000
CLI = [sys.executable, "-m", "stream_ser"]


def need_shared():
    if not (SPEECH / "manifest.csv").exists():
        pytest.skip("../shared/data is not here (a user's clone)")


def need(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def jfk() -> Path:
    """J. F. Kennedy, 11 s, public domain: in the repository, so tests that need only it run in any clone."""
    return DATA / "jfk.flac"


@pytest.fixture(scope="session")
def joined(tmp_path_factory) -> tuple[Path, list[tuple[float, float]]]:
    """All shared speech recordings joined with 1 s gaps (~70 s), and where each lies."""
    need_shared()
    import csv

    rows = list(csv.DictReader(open(SPEECH / "manifest.csv")))
    parts, spans, t = [], [], 0.0
    for r in rows:
        y, sr = sf.read(SPEECH / r["path"], dtype="float32")
        assert sr == SR
        parts += [y, np.zeros(SR, np.float32)]
        spans.append((t, t + len(y) / SR))
        t += len(y) / SR + 1.0
    path = tmp_path_factory.mktemp("audio") / "joined.wav"
    sf.write(path, np.concatenate(parts), SR)
    return path, spans


def espeak(text: str, path: Path, rate: int = SR) -> Path:
    need("espeak-ng")
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    y, sr = sf.read(raw, dtype="float32")
    import soxr

    sf.write(path, soxr.resample(y, sr, rate) if sr != rate else y, rate)
    return path


def run_cli(*args, timeout=180, env=None, **kw) -> subprocess.CompletedProcess:
    e = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=e, **kw)


def read_events(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def schema_errors(events: list[dict]) -> list[str]:
    """Every violation of the shipped event schema (stream_ser/events.schema.json) in ``events``."""
    jsonschema = pytest.importorskip("jsonschema")
    from stream_ser import schema

    validator = jsonschema.Draft202012Validator(schema.load())
    return [f"{e.get('type')} {list(err.absolute_path)}: {err.message}" for e in events for err in validator.iter_errors(e)]


@pytest.fixture(scope="session")
def emotion_model():
    from stream_ser.emotion import DEFAULT_MODELS, EmotionModel

    if not (DEFAULT_MODELS / "labels.json").exists():
        pytest.skip("no shipped emotion model in models/")
    return EmotionModel(DEFAULT_MODELS)


@pytest.fixture(scope="session")
def whisper_model():
    from stream_ser.transcribe import TranscribeOptions, load_whisper

    return load_whisper(TranscribeOptions())


def run_pipeline(path, emotion_model, whisper_model=None, speed=0.0, **option_changes):
    """Replay ``path`` in-process with already loaded models; returns the events."""
    from stream_ser.pipeline import Pipeline, PipelineOptions
    from stream_ser.sources import FileSource

    options = PipelineOptions(transcript=whisper_model is not None)
    for k, v in option_changes.items():
        setattr(options, k, v)
    p = Pipeline(FileSource(path, speed=speed), options, emotion_model=emotion_model, whisper_model=whisper_model)
    return [e.to_dict() for e in p.events()]
