"""The event contract: every event of real sessions validates against the shipped
JSON Schema, the schema rejects drift, and the events module, the schema and the
README's events reference say the same thing."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

from stream_ser import events as ev
from stream_ser import schema

from .conftest import ROOT, SR, run_cli, run_pipeline, schema_errors

jsonschema = pytest.importorskip("jsonschema")

CLASSES = {"emotion": ev.EmotionEvent, "transcript": ev.TranscriptEvent, "speech": ev.SpeechEvent, "status": ev.StatusEvent}


@pytest.fixture(scope="module")
def validator():
    s = schema.load()
    jsonschema.Draft202012Validator.check_schema(s)
    return jsonschema.Draft202012Validator(s)


def problems(validator, events: list[dict]) -> list[str]:
    """Every schema violation, and what a schema cannot say: end >= start."""
    out = schema_errors(events)
    out += [f"{e['type']} ends before it starts: {e}" for e in events if e["end"] < e["start"]]
    return out


def check_session(validator, events: list[dict]) -> None:
    assert events, "a session without events"
    assert not problems(validator, events), problems(validator, events)[:10]
    status = [e for e in events if e["type"] == "status"]
    assert status and all(e["schema_version"] == ev.SCHEMA_VERSION for e in status)
    json.loads(json.dumps(events, allow_nan=False))  # strict JSON, as the JSONL writer writes it


# ---- the contract itself -------------------------------------------------------------

def test_schema_is_valid_and_versioned_once(validator):
    s = schema.load()
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema.version(s) == ev.SCHEMA_VERSION == s["$defs"]["status"]["properties"]["schema_version"]["const"]
    assert set(s["properties"]["type"]["enum"]) == set(CLASSES) == set(schema.EVENT_TYPES)


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_schema_lists_exactly_the_dataclass_fields(kind):
    """A field added to (or removed from) an event class without the schema fails here, before any replay."""
    d = schema.load()["$defs"]
    fields = {f.name for f in dataclasses.fields(CLASSES[kind])}
    assert set(d[kind]["properties"]) == fields, set(d[kind]["properties"]) ^ fields
    assert set(d[kind]["required"]) | set(d["common"]["required"]) == fields
    assert set(d["common"]["properties"]) == {f.name for f in dataclasses.fields(ev.Event)}
    for name, node in d[kind]["properties"].items():  # each field documented (the README's table is made of these)
        assert name in d["common"]["properties"] or node.get("description"), (kind, name)


def good_events() -> list[dict]:
    common = dict(start=1.0, end=3.5, emitted_at=1.8e9, latency_ms=4.2)
    probs = {"happy": 0.7, "neutral": 0.3}
    return [ev.EmotionEvent(type="emotion", label="happy", confidence=0.7, probs=probs, window_probs=probs, arousal=0.7, **common).to_dict(),
            ev.TranscriptEvent(type="transcript", text="hi", emotion={"label": "happy", "confidence": 0.7}, **common).to_dict(),
            ev.SpeechEvent(type="speech", state="start", **common).to_dict(),
            ev.StatusEvent(type="status", source="x.wav", sample_rate=16000, **common).to_dict()]


def test_the_schema_refuses_drift(validator):
    """Strict: an unknown field, a missing one, a wrong type or an unknown event type is an error."""
    good = good_events()
    assert not problems(validator, good)
    assert good[3]["level_dbfs"] is None  # a silent span: null, allowed
    bad = [{**good[0], "valence": 0.2}, {k: v for k, v in good[1].items() if k != "final"},
           {**good[2], "state": "middle"}, {**good[3], "sample_rate": "16k"}, {**good[3], "schema_version": "0.9"},
           {**good[0], "confidence": 1.5}, {**good[1], "emotion": {"label": "happy"}}, {**good[0], "type": "summary"},
           {**good[2], "utterance": -1}]
    for e in bad:
        assert list(validator.iter_errors(e)), e


# ---- real sessions ---------------------------------------------------------------------

def test_jfk_with_transcript_validates(validator, jfk, emotion_model, whisper_model):
    events = run_pipeline(jfk, emotion_model, whisper_model, speed=0)
    check_session(validator, events)
    kinds = {e["type"] for e in events}
    assert kinds == set(CLASSES), kinds
    assert any(e["type"] == "transcript" and e["final"] for e in events)


def test_jfk_emotion_only_and_44k_stereo_validate(validator, jfk, emotion_model, tmp_path):
    import soxr

    check_session(validator, run_pipeline(jfk, emotion_model, speed=0))
    y, _ = sf.read(jfk, dtype="float32")
    stereo = tmp_path / "jfk44.wav"
    sf.write(stereo, np.stack([soxr.resample(y, SR, 44100)] * 2, axis=1), 44100)
    events = run_pipeline(stereo, emotion_model, speed=0)
    check_session(validator, events)
    assert {e["sample_rate"] for e in events if e["type"] == "status"} == {44100}


def test_silence_validates_with_null_level(validator, emotion_model, tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(12 * SR, np.float32), SR)
    events = run_pipeline(path, emotion_model, speed=0)
    check_session(validator, events)
    status = [e for e in events if e["type"] == "status"]
    assert all(e["level_dbfs"] is None for e in status)
    assert any(w.startswith("no speech in the first") for e in status for w in e["warnings"])


def test_truncated_file_events_validate(validator, jfk, emotion_model, tmp_path):
    """A file cut short: the events before the cut follow the contract too."""
    from stream_ser.errors import SourceError
    from stream_ser.pipeline import Pipeline, PipelineOptions
    from stream_ser.sources import FileSource

    y, _ = sf.read(jfk, dtype="float32")
    path = tmp_path / "cut.wav"
    sf.write(path, y, SR, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[: 44 + 2 * 6 * SR])  # the header still says 11 s
    events = []
    with pytest.raises(SourceError, match="truncated"):
        with Pipeline(FileSource(path, speed=0), PipelineOptions(transcript=False), emotion_model=emotion_model) as p:
            for e in p.events():
                events.append(e.to_dict())
    check_session(validator, events)
    assert any(e["type"] == "emotion" for e in events)


def test_cli_prints_the_shipped_schema():
    r = run_cli("schema", timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout) == schema.load(), r.stderr
    r = run_cli("schema", "--markdown", timeout=60)
    assert r.returncode == 0 and r.stdout == schema.markdown()


def test_readme_events_reference_is_the_schema():
    """The README's events tables are generated from the schema (`python bench/readme_table.py`)."""
    from bench.readme_table import block

    assert block((ROOT / "README.md").read_text(), "events") == schema.markdown().strip(), \
        "README's events reference differs from the schema: run `python bench/readme_table.py`"
