"""The package is whole: a wheel built from this checkout, installed into a
fresh virtual environment outside it, replays a recording with the bundled
emotion and ASR models."""

import json
import shutil
import subprocess
import sys

from .conftest import DATA, ROOT


def test_wheel_installs_into_a_fresh_venv_and_replays(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "-o", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(dist.glob("stream_ser-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("stream_ser/events.schema.json", "stream_ser/models/emotion.tflite", "/licenses/LICENSE", "/licenses/NOTICE"):
        assert any(n.endswith(shipped) for n in names), shipped  # the event contract, the model, the licences
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    work = tmp_path / "elsewhere"  # not the checkout: nothing can come from it
    work.mkdir()
    audio = shutil.copy(DATA / "jfk.flac", work / "jfk.flac")
    r = subprocess.run([str(venv / "bin" / "stream-ser"), "replay", str(audio), "--speed", "0", "--plain", "--jsonl", "out.jsonl"],
                       cwd=work, capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import stream_ser.emotion as e; print(e.DEFAULT_MODELS)"],
                           cwd=work, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(venv)), where  # the model inside the installed package
    events = [json.loads(line) for line in (work / "out.jsonl").read_text().splitlines()]
    schema = subprocess.run([str(venv / "bin" / "stream-ser"), "schema"], cwd=work, capture_output=True, text=True, timeout=60)
    assert schema.returncode == 0 and json.loads(schema.stdout)["$id"].startswith("urn:stream-ser:events:"), schema.stderr
    assert {e["schema_version"] for e in events if e["type"] == "status"} == {json.loads(schema.stdout)["$id"].rsplit(":", 1)[1]}
    assert sum(e["type"] == "emotion" for e in events) >= 8
    text = " ".join(e["text"] for e in events if e["type"] == "transcript" and e["final"]).lower()
    assert "ask not what your country can do for you" in text, text
    # an MP3 with no ffmpeg binary anywhere on PATH (issue 25): decoded in-process, nothing on stderr but the summary
    from stream_ser import codec
    import soundfile as sf

    (work / "jfk.mp3").write_bytes(codec.encode(sf.read(DATA / "jfk.flac", dtype="float32")[0], 16000, "mp3", 48))
    empty = tmp_path / "bin"
    empty.mkdir()
    r = subprocess.run([str(venv / "bin" / "stream-ser"), "replay", "jfk.mp3", "--speed", "0", "--plain", "--no-transcript"],
                       cwd=work, capture_output=True, text=True, timeout=300, env={"PATH": str(empty), "HOME": str(tmp_path)})
    assert r.returncode == 0 and "emotion windows: " in r.stderr, r.stderr[-3000:]
    assert not [line for line in r.stderr.splitlines() if "mpg123" in line or "error" in line.lower()], r.stderr
