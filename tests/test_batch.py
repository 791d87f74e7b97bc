"""stream-ser batch and report: a small archive in mixed formats with one bad
file, a rerun, kill -9, Ray against the local engine, and the report in a
real browser.  Short recordings cut from tests/data/jfk.flac; emotion only
where the transcript is not the point."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, ROOT, need

JFK = ROOT / "tests" / "data" / "jfk.flac"


def batch(*args, timeout=300, env=None):
    e = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    t0 = time.monotonic()
    r = subprocess.run(CLI + ["batch", *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=e)
    return r, time.monotonic() - t0


def cut(dst: Path, start: float, seconds: float, *extra: str) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", str(start), "-t", str(seconds), "-i", str(JFK), *extra, str(dst)], check=True)
    return dst


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Six recordings, four formats, two folders with the same file name, one corrupt."""
    need("ffmpeg")
    d = tmp_path_factory.mktemp("archive")
    cut(d / "call1.wav", 0, 4)
    cut(d / "b" / "call1.flac", 3, 4, "-ar", "44100", "-ac", "2")
    cut(d / "call3.ogg", 5, 4)
    cut(d / "b" / "call4.mp3", 6, 4)
    cut(d / "call5.m4a", 1, 4)
    (d / "notes.txt").write_text("not audio: a folder walk leaves it out")
    (d / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + os.urandom(2000))
    return d


def read_table(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


@pytest.fixture(scope="module")
def first_run(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    r, seconds = batch(archive, "--out", out, "--workers", "2", "--no-transcript")
    return out, r, seconds


def test_archive_with_a_bad_file(archive, first_run):
    out, r, _ = first_run
    assert r.returncode == 1, r.stderr
    assert "1 of 6 recordings failed" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    rows = read_table(out / "calls.parquet")
    assert len(rows) == 6
    bad = [x for x in rows if x["error"]]
    assert [x["recording"] for x in bad] == ["broken"] and "broken.wav" in bad[0]["error"] and "\n" not in bad[0]["error"]
    good = [x for x in rows if not x["error"]]
    assert len(good) == 5
    assert {x["recording"] for x in good} == {"call1", "b__call1", "call3", "b__call4", "call5"}  # unique names
    for x in good:
        assert 3.9 < x["duration_s"] < 4.1 and x["windows"] >= 2 and x["dominant"]
        shares = [v for k, v in x.items() if k.startswith("share_")]
        assert abs(sum(shares) - 1) < 1e-3
        assert 0 <= x["arousal_mean"] <= x["arousal_peak"] <= 1
        for ext in ("jsonl", "srt", "html"):
            assert (out / "calls" / f"{x['recording']}.{ext}").is_file()
        page = (out / "calls" / f"{x['recording']}.html").read_text()
        assert 'src="plotly.min.js"' in page and len(page) < 200_000  # the library once, not per page
    assert (out / "calls" / "plotly.min.js").stat().st_size > 1_000_000
    csv = (out / "calls.csv").read_text().splitlines()
    assert len(csv) == 7 and csv[0].startswith('"recording","path","duration_s"')
    segs = read_table(out / "segments.parquet")
    n_windows = sum(x["windows"] for x in rows)
    assert sum(1 for s in segs if s["type"] == "emotion") == n_windows
    assert {s["recording"] for s in segs} == {x["recording"] for x in good}
    events = [json.loads(line) for line in (out / "calls" / "call1.jsonl").read_text().splitlines()]
    assert sum(e["type"] == "emotion" for e in events) == next(x["windows"] for x in rows if x["recording"] == "call1")


def test_rerun_skips_everything_quickly_then_redoes_what_changed(archive, first_run):
    import io

    import pyarrow.parquet as pq

    out, _, first = first_run
    before = (out / "calls.parquet").read_bytes()
    r, seconds = batch(archive, "--out", out, "--workers", "2", "--no-transcript")
    assert r.returncode == 1  # the bad file is still bad
    assert "0 analysed, 6 unchanged (skipped), 1 failed" in r.stderr
    assert seconds < 0.1 * first, (seconds, first)
    assert pq.read_table(io.BytesIO(before)).to_pylist() == read_table(out / "calls.parquet")
    st = (archive / "call3.ogg").stat()
    os.utime(archive / "call3.ogg", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # "changed"
    more = archive.parent / (archive.name + "-more")  # and two more bad ones: empty, and cut short
    more.mkdir()
    (more / "empty.wav").write_bytes(b"")
    (more / "cut.wav").write_bytes((archive / "call1.wav").read_bytes()[:80_000])
    r, _ = batch(archive, more, "--out", out, "--workers", "1", "--no-transcript")
    assert "8 recordings: 3 analysed, 5 unchanged (skipped), 3 failed" in r.stderr, r.stderr
    rows = {x["recording"]: x for x in read_table(out / "calls.parquet")}
    assert "file is empty" in rows["empty"]["error"] and rows["empty"]["windows"] == 0
    assert "truncated" in rows["cut"]["error"] and rows["cut"]["windows"] >= 1  # the audio before the cut is kept
    r, _ = batch(archive, "--out", out, "--workers", "2", "--no-transcript", "--force")
    assert "6 analysed, 0 unchanged" in r.stderr, r.stderr
    rows = read_table(out / "calls.parquet")
    assert len(rows) == 8 and len({x["recording"] for x in rows}) == 8  # the tables keep every recording ever done here


def batch_under_way(tmp_path, records: int, **popen):
    """Eight 6 s recordings, one worker, emotion only; returns once ``records``
    recordings are done: (process, input folder, output folder)."""
    need("ffmpeg")
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(8):
        cut(src / f"r{i}.wav", i % 5, 6)
    e = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.Popen(CLI + ["batch", str(src), "--out", str(out), "--workers", "1", "--no-transcript"], cwd=ROOT, env=e, **popen)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob(".batch/records/*.json"))) < records and p.poll() is None:
        time.sleep(0.01)
    return p, src, out


def test_kill_9_then_rerun_loses_and_duplicates_nothing(tmp_path):
    p, src, out = batch_under_way(tmp_path, 2, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.killpg(p.pid, signal.SIGKILL)  # the driver and its worker, mid-batch
    p.wait()
    done_at_kill = len(list(out.glob(".batch/records/*.json")))
    assert 2 <= done_at_kill < 8, done_at_kill  # it really was mid-batch
    r, _ = batch(src, "--out", out, "--workers", "1", "--no-transcript")
    assert r.returncode == 0, r.stderr
    assert f"{8 - done_at_kill} analysed, {done_at_kill} unchanged" in r.stderr, r.stderr
    rows = read_table(out / "calls.parquet")
    assert sorted(x["recording"] for x in rows) == [f"r{i}" for i in range(8)]
    segs = read_table(out / "segments.parquet")
    keys = [(s["recording"], s["start"], s["type"]) for s in segs]
    assert len(keys) == len(set(keys)) == sum(x["windows"] for x in rows)
    assert not list(out.rglob("*.~tmp*"))


def test_ctrl_c_keeps_what_was_completed(tmp_path):
    p, _, out = batch_under_way(tmp_path, 1, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.send_signal(signal.SIGINT)  # no new recordings; the one in flight finishes
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    done = sorted(json.loads(f.read_text())["name"] for f in out.glob(".batch/records/*.json"))
    assert 1 <= len(done) < 8
    assert sorted(x["recording"] for x in read_table(out / "calls.parquet")) == done


def test_a_worker_that_dies_costs_one_row_and_is_replaced(tmp_path):
    need("ffmpeg")
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        cut(src / f"w{i}.wav", 0, 11)
    e = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")  # with the transcript: a recording takes long enough to be hit
    p = subprocess.Popen(CLI + ["batch", str(src), "--out", str(out), "--workers", "1"], cwd=ROOT, env=e,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob(".batch/records/*.json")) and p.poll() is None:
        time.sleep(0.01)
    time.sleep(0.2)  # the worker has taken the second recording
    workers = [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and _parent(d) == p.pid
               and b"spawn_main" in _read(d / "cmdline")]
    assert len(workers) == 1
    os.kill(workers[0], signal.SIGKILL)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "w1.wav: worker process died (signal 9) on this recording" in err, err
    rows = {x["recording"]: x for x in read_table(out / "calls.parquet")}
    assert rows["w0"]["error"] is None and rows["w2"]["error"] is None  # the replacement did the third
    r, _ = batch(src, "--out", out, "--workers", "1")  # a crash is not the recording's fault: retried
    assert r.returncode == 0 and "1 analysed, 2 unchanged" in r.stderr, r.stderr


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _parent(proc: Path) -> int | None:
    stat = _read(proc / "stat")
    return int(stat[stat.rfind(b")") + 2:].split()[1]) if stat else None


def test_usage_errors_are_one_line(tmp_path, archive):
    r, _ = batch(tmp_path / "nope", "--out", tmp_path / "o")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no such file" in r.stderr
    (tmp_path / "empty").mkdir()
    r, _ = batch(tmp_path / "empty", "--out", tmp_path / "o")
    assert r.returncode == 2 and "no recordings found" in r.stderr
    fake = tmp_path / "noray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    r, _ = batch(archive / "call1.wav", "--out", tmp_path / "o", "--ray", env={"PYTHONPATH": str(fake.parent)})
    assert r.returncode == 2 and r.stderr.strip() == "stream-ser: --ray needs Ray: pip install 'stream-ser[ray]'", r.stderr
    if shutil.which("ray") or Path(sys.executable).with_name("ray").exists():
        r, _ = batch(archive / "call1.wav", "--out", tmp_path / "o", "--ray", "127.0.0.1:1", timeout=60)  # nothing listens there
        assert r.returncode == 2 and r.stderr.strip() == "stream-ser: cannot connect to the Ray cluster at 127.0.0.1:1: Connection refused", r.stderr


def test_summarise_negative_run_and_arousal():
    from stream_ser.session import summarise

    def em(start, label, arousal):
        return {"type": "emotion", "start": start, "end": start + 2.5, "label": label, "confidence": 0.5, "probs": {label: 1.0},
                "latency_ms": 5.0, "emitted_at": 100 + start, "arousal": arousal, "utterance": 0}

    events = [em(0, "sad", 0.2), em(1, "angry", 0.9), em(2, "neutral", 0.1), em(3, "sad", 0.3),
              em(10, "sad", 0.2), em(11, "disgust", None), em(12, "fearful", 0.8),  # 10.0-14.5: the longest run
              {"type": "speech", "state": "start", "start": 0.0, "end": 0.0, "utterance": 0},
              {"type": "speech", "state": "end", "start": 5.5, "end": 5.5, "utterance": 0},
              {"type": "transcript", "start": 0, "end": 2, "text": "two words", "final": True, "latency_ms": 900.0, "emitted_at": 101}]
    s = summarise(events)
    assert s["negative_run_s"] == 4.5
    assert s["windows"] == 7 and s["shares"]["sad"] == round(3 / 7, 4) and s["dominant"] == "sad"
    assert s["arousal_peak"] == 0.9 and s["arousal_mean"] == round((0.2 + 0.9 + 0.1 + 0.3 + 0.2 + 0.8) / 6, 4)
    assert s["speech_s"] == 5.5 and s["words"] == 2 and s["duration_s"] == 14.5


# ---- with the transcript: Ray against the local engine, and the report in a browser ----

@pytest.fixture(scope="module")
def two_calls(tmp_path_factory) -> Path:
    need("ffmpeg")
    d = tmp_path_factory.mktemp("two")
    cut(d / "first.wav", 0, 5)
    cut(d / "second.flac", 5, 6, "-ar", "22050")
    return d


@pytest.fixture(scope="module")
def local_run(two_calls, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    r, _ = batch(two_calls, "--out", out, "--workers", "1")
    assert r.returncode == 0, r.stderr
    return out


def _labels_and_text(out: Path) -> dict:
    got = {}
    for f in sorted((out / "calls").glob("*.jsonl")):
        events = [json.loads(line) for line in f.read_text().splitlines()]
        got[f.stem] = ([(e["start"], e["end"], e["label"], e["probs"]) for e in events if e["type"] == "emotion"],
                       [(e["text"], (e["emotion"] or {}).get("label")) for e in events if e["type"] == "transcript" and e["final"]])
    return got


def test_batch_events_are_replays_events(two_calls, local_run, tmp_path):
    """A recording in a batch goes through the pipeline as `replay --speed 0` does."""
    jsonl = tmp_path / "replay.jsonl"
    r = subprocess.run(CLI + ["replay", str(two_calls / "second.flac"), "--speed", "0", "--plain", "--jsonl", str(jsonl)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert r.returncode == 0, r.stderr
    replayed = [json.loads(line) for line in jsonl.read_text().splitlines()]
    batched = _labels_and_text(local_run)["second"]
    assert batched == ([(e["start"], e["end"], e["label"], e["probs"]) for e in replayed if e["type"] == "emotion"],
                       [(e["text"], (e["emotion"] or {}).get("label")) for e in replayed if e["type"] == "transcript" and e["final"]])


def _sockets_beyond_loopback(pids: set[int]) -> list[str]:
    """TCP sockets (listening or connected) of these processes whose own
    address is not 127.0.0.1, or that are connected to a peer other than
    127.0.0.1; read with ``ss`` (iproute2)."""
    need("ss")
    lines = subprocess.run(["ss", "-Htnap"], capture_output=True, text=True, check=True).stdout.splitlines()
    ours = [x for x in lines if any(f"pid={pid}," in x for pid in pids)]
    assert ours, "ss shows no socket of the Ray head: the check would see nothing"

    def host(a: str) -> str:
        return a.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
    def listening(peer: str) -> bool:  # a listener's peer is a wildcard: "<any>:*"
        return peer.rsplit(":", 1)[1] == "*"
    return [x for x in ours if host(x.split()[3]) != "127.0.0.1" or not (host(x.split()[4]) == "127.0.0.1" or listening(x.split()[4]))]


def test_ray_gives_the_same_labels_and_text_as_local(two_calls, local_run, tmp_path):
    pytest.importorskip("ray")
    from tests.ray_head import LOOPBACK_ONLY, head_pids, ray_command, ray_head

    if ray_command() is None:
        pytest.skip("no ray command beside this python")
    out = tmp_path / "ray"
    with ray_head(2, dict(os.environ, PYTHONPATH=str(ROOT))) as address:  # the workers import this checkout, as the driver does
        # the driver too: ray.init turns 127.0.0.1 into the machine's own address unless told this
        r, _ = batch(two_calls, "--out", out, "--ray", address, env={"RAY_ADDRESS": "", **LOOPBACK_ONLY})
        beyond = _sockets_beyond_loopback(head_pids(address))
    assert beyond == [], beyond
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    local, remote = _labels_and_text(local_run), _labels_and_text(out)
    assert set(local) == {"first", "second"} and local == remote
    assert all(texts for _, texts in local.values())
    rows = {x["recording"]: x for x in read_table(out / "calls.parquet")}
    assert {k: (v["windows"], v["words"], v["dominant"]) for k, v in rows.items()} == \
           {x["recording"]: (x["windows"], x["words"], x["dominant"]) for x in read_table(local_run / "calls.parquet")}


def test_report_in_headless_chromium(local_run, tmp_path):
    need("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    page_path = local_run / "calls" / "first.html"
    words = [json.loads(line) for line in (local_run / "calls" / "first.jsonl").read_text().splitlines()]
    text = " ".join(e["text"] for e in words if e["type"] == "transcript" and e["final"])
    assert text
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            page.wait_for_selector(".main-svg", timeout=20000)  # plotly drew the chart
            body = page.inner_text("body")
            legend = page.eval_on_selector_all(".legendtext", "els => els.map(e => e.textContent)")  # SVG text
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert all(u.startswith("file://") for u in requests), requests  # nothing from the network
    for w in text.split()[:6]:
        assert w in body
    assert {"angry", "neutral", "sad"} <= set(legend), legend
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert img.std() > 20 and len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # not blank: text, colours, a chart


def test_report_command_writes_html_and_png(local_run, tmp_path):
    pytest.importorskip("matplotlib")
    events = local_run / "calls" / "second.jsonl"
    r = subprocess.run(CLI + ["report", str(events), "--out", str(tmp_path / "r.html"), "--png", str(tmp_path / "r.png")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "r.html").read_text()
    assert len(page) > 1_000_000 and "<script src=" not in page  # plotly.js inlined: the page stands alone
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "emotion"\nnot json\n{}\n')
    r = subprocess.run(CLI + ["report", str(bad)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == f"stream-ser: {bad}: line 1 is not JSON"
    for line, says in (('{"type": "foo", "start": 0, "end": 1}', "line 1 is not a stream-ser event"),
                       ('{"type": "emotion", "start": 0, "end": "x"}', "line 1 is not a stream-ser event"),
                       ('{"type": "emotion", "start": 0, "end": 2.5, "label": "sad", "confidence": "high"}',
                        "events with a field of the wrong type")):
        bad.write_text(line + "\n")
        r = subprocess.run(CLI + ["report", str(bad)], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr


def test_a_ray_worker_reads_the_drivers_file_in_place_or_asks_for_its_bytes(tmp_path):
    # the actor class alone, without a cluster: a node that sees the driver's
    # file (same size and time) reads it there; any other asks for the bytes
    from stream_ser.pipeline import PipelineOptions
    from stream_ser.ray_engine import RayWorker

    path = tmp_path / "call.flac"
    shutil.copy(ROOT / "tests" / "data" / "jfk.flac", path)
    st = path.stat()
    worker = RayWorker(PipelineOptions(transcript=False))
    in_place = worker.run("call", "call.flac", None, str(path), (st.st_size, st.st_mtime_ns))
    assert in_place["error"] is None and "need_bytes" not in in_place
    assert worker.run("call", "call.flac", None, str(path), (st.st_size + 1, st.st_mtime_ns)) == {"need_bytes": True}
    assert worker.run("call", "call.flac", None, str(tmp_path / "elsewhere.flac"), (st.st_size, st.st_mtime_ns)) == {"need_bytes": True}
    sent = worker.run("call", "call.flac", path.read_bytes(), str(path))

    def emotions(result):
        return [(e["start"], e["label"]) for e in result["events"] if e["type"] == "emotion"]

    assert len(emotions(in_place)) >= 8 and emotions(in_place) == emotions(sent)
