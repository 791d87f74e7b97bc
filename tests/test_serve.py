"""`stream-ser serve` in a real browser: Debian's chromium, headless, driven by
Playwright, against one server on 127.0.0.1 started once for the module.
Chromium's fake microphone plays jfk.flac (as 16-bit WAV)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile as sf

from .conftest import ROOT, espeak, need

MAX_SESSIONS = 2
MAX_UPLOAD_MB = 2
JFK = "ask not what your country"


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


@pytest.fixture(scope="module")
def audio(tmp_path_factory, jfk):
    d = tmp_path_factory.mktemp("serve-audio")
    y, sr = sf.read(jfk, dtype="float32")
    sf.write(d / "jfk.wav", y, sr, subtype="PCM_16")  # the fake microphone reads 16-bit PCM WAV
    other = espeak("Seven purple elephants were dancing slowly in the morning rain.", d / "elephants.wav")
    return {"mic": d / "jfk.wav", "flac": jfk, "other": other, "dir": d}


@pytest.fixture(scope="module")
def server_tmp(tmp_path_factory):
    """The server's temporary directory (its TMPDIR): where uploads are kept while they are analysed."""
    return tmp_path_factory.mktemp("serve-tmp")


def uploads_kept(server_tmp) -> list:
    """Files in the server's own directory (other libraries put theirs in TMPDIR too)."""
    return sorted(p.name for p in server_tmp.glob("stream-ser-serve-*/**/*") if p.is_file())


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_tmp):
    """The server, as a user starts it (its messages go to a file); its URL from its first line."""
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "stream_ser", "serve", "--port", "0", "--max-sessions", str(MAX_SESSIONS),
                                 "--max-upload-mb", str(MAX_UPLOAD_MB)], cwd=ROOT, stderr=f, stdout=f,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TMPDIR=str(server_tmp)))
    try:
        url, deadline = None, time.monotonic() + 120
        while url is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
            if m := re.search(r"serving (http://127\.0\.0\.1:\d+/)", log.read_text()):
                url = m.group(1)
        if url is None:
            pytest.fail("the server did not start: " + log.read_text()[-2000:])
        yield url
        proc.terminate()
        assert proc.wait(10) == 143  # SIGTERM: a graceful end ...
        assert not list(server_tmp.glob("stream-ser-serve-*")), list(server_tmp.iterdir())  # ... that leaves no file behind
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]  # every failure was handled
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="module")
def browser(audio):
    need("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={audio['mic']}", "--autoplay-policy=no-user-gesture-required"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def open_page(browser, server):
    """New pages on the server (closed at the end), each its own session; page errors, and
    any request that leaves the server (the page needs nothing from the internet), fail the test."""
    contexts, errors, elsewhere = [], [], []

    def make(width=1280, height=800):
        ctx = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith((server, server.replace("http", "ws"), "data:", "blob:"))
                else elsewhere.append(r.url))
        page.goto(server)
        page.wait_for_function("window.streamSer.session !== null", timeout=10000)
        return page

    yield make
    for ctx in contexts:
        ctx.close()
    assert not errors, errors
    assert not elsewhere, elsewhere


def state(page, what: str):
    return page.evaluate(f"window.streamSer.{what}")


def final_text(page) -> str:
    """The transcript as the page shows it (final spans)."""
    return words(" ".join(page.eval_on_selector_all("#transcript .text", "els => els.map(e => e.textContent)")))


def running(server) -> int:
    with urllib.request.urlopen(server + "status", timeout=5) as r:
        return json.load(r)["running"]


def upload(page, path, speed=0, name=None):
    page.set_input_files("#file", files=[{"name": name or path.name, "mimeType": "application/octet-stream",
                                          "buffer": path.read_bytes()}] if not isinstance(path, dict) else [path])
    page.select_option("#speed", str(speed))
    page.click("#analyse")


def test_record_in_two_sessions_apart_and_a_third_is_busy(open_page, server, audio):
    """Record from the (fake) microphone: the words and an emotion appear live.
    Meanwhile an upload in another tab runs in real time: neither transcript
    takes the other's words; a third analysis is told the server is busy; a
    closed tab frees its place within 2 s."""
    rec, other, third = open_page(), open_page(390, 844), open_page()
    rec.click("#record")
    rec.wait_for_function("window.streamSer.running === 'record'", timeout=10000)
    upload(other, audio["other"], speed=1)
    other.wait_for_function("window.streamSer.running === 'upload'", timeout=10000)
    third.click("#record")
    third.wait_for_selector("#message.busy", timeout=10000)
    assert "busy" in third.inner_text("#message") and "try again" in third.inner_text("#message")
    assert state(third, "running") is None

    rec.wait_for_function("""() => {
        const t = [...document.querySelectorAll('#transcript .text')].map(e => e.textContent).join(' ');
        return t.toLowerCase().replace(/[^a-z' ]/g, ' ').split(/\\s+/).join(' ').includes('ask not what your country')
            && window.streamSer.emotions.length > 0 }""", timeout=30000)
    labels = state(rec, "labels")
    assert rec.get_attribute("#badge", "data-label") in labels  # the current emotion is shown
    assert any(label in rec.inner_text("#transcript") for label in labels)  # spans are tagged
    other.wait_for_function("window.streamSer.ended === 1", timeout=30000)
    assert state(other, "lastEnd")["error"] is None
    theirs, mine = final_text(other), final_text(rec)
    assert "elephant" in theirs and "country" not in theirs, theirs
    assert "elephant" not in mine and "purple" not in mine, mine
    status = state(rec, "status")
    assert status["dropped_samples"] == 0 and status["source"] == "browser microphone"

    rec.close()  # the tab goes away mid-recording: its analysis ends and frees its place
    t0 = time.monotonic()
    while running(server) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert running(server) == 0 and time.monotonic() - t0 < 2.0


def test_upload_fills_the_view_and_downloads_are_valid(open_page, audio, server_tmp):
    page = open_page()
    upload(page, audio["flac"])
    page.wait_for_function("window.streamSer.ended === 1", timeout=60000)
    assert uploads_kept(server_tmp) == []  # analysed: deleted
    end = state(page, "lastEnd")
    assert end["error"] is None and end["name"] == "jfk"
    assert JFK in final_text(page)
    assert state(page, "emotions.length") >= 5
    assert page.get_attribute("#badge", "data-label") in state(page, "labels")
    assert page.evaluate("document.getElementById('progress').value") == 1
    assert page.locator("#timeline .main-svg").count() and page.locator("#bars .main-svg").count()  # plotly drew both
    got = {}
    for kind in ("jsonl", "srt", "html"):
        with page.expect_download() as d:
            page.click(f"#dl-{kind}")
        got[kind] = open(d.value.path(), encoding="utf-8").read()
        assert d.value.suggested_filename == f"jfk.{kind}"
    events = [json.loads(line) for line in got["jsonl"].splitlines()]
    assert {e["type"] for e in events} >= {"emotion", "transcript", "status", "speech"}
    assert all(isinstance(e["start"], (int, float)) and isinstance(e["emitted_at"], float) for e in events)
    assert not any(".upload" in str(e.get("source", "")) for e in events)  # the user's name, not the server's file
    cues = got["srt"].strip().split("\n\n")
    assert cues and all(re.fullmatch(r"\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n.+", c, re.S) for c in cues), got["srt"]
    assert "what your country can do for you" in words(got["srt"])
    assert got["html"].startswith("<!doctype html>") and "Emotion timeline" in got["html"]


def test_a_corrupt_upload_shows_its_error_and_the_next_one_works(open_page, audio, server_tmp):
    page = open_page()
    upload(page, {"name": "broken.wav", "mimeType": "audio/wav", "buffer": b"RIFF\x00\x00\x00\x00WAVEjunk" + os.urandom(5000)})
    page.wait_for_selector("#message:not([hidden])", timeout=20000)
    message = page.inner_text("#message")
    assert "broken" in message and "decode" in message and "\n" not in message.strip(), message
    assert ".upload" not in message and "/tmp" not in message  # no server path shown
    assert uploads_kept(server_tmp) == []
    upload(page, audio["flac"])
    page.wait_for_function("window.streamSer.ended === 1", timeout=60000)
    assert state(page, "lastEnd")["error"] is None and JFK in final_text(page)


def test_an_oversized_upload_gets_413_and_uploads_go_with_their_session(open_page, server, server_tmp):
    page = open_page()
    big = {"name": "big.wav", "mimeType": "audio/wav", "buffer": b"\0" * (MAX_UPLOAD_MB * 1024 * 1024 + 1)}
    upload(page, big)
    page.wait_for_selector("#message:not([hidden])", timeout=20000)
    assert "upload too large" in page.inner_text("#message")
    assert state(page, "running") is None
    session = state(page, "session")
    # a direct POST declaring too much: 413 before any of it is read (a client still sending the
    # whole body may find the socket closed before it reads the answer, hence a short body here)
    conn = http.client.HTTPConnection(server.split("/")[2], timeout=10)
    try:
        conn.request("POST", f"/upload/{session}", body=b"\0" * 1000,
                     headers={"Content-Length": str(MAX_UPLOAD_MB * 1024 * 1024 + 1)})
        answer = conn.getresponse()
        assert answer.status == 413 and b"--max-upload-mb" in answer.read()
    finally:
        conn.close()
    assert uploads_kept(server_tmp) == []

    kept = urllib.request.Request(f"{server}upload/{session}", data=b"RIFF" + b"\0" * 1000, method="POST",
                                  headers={"X-File-Name": "..%2F..%2Fetc%2Fpasswd"})
    with urllib.request.urlopen(kept, timeout=10) as r:
        assert json.load(r)["name"] == "passwd"  # a display name only
    assert [n.endswith(".upload") for n in uploads_kept(server_tmp)] == [True]  # sent, not analysed: kept under the server's name
    page.close()  # the session ends: its upload goes
    t0 = time.monotonic()
    while uploads_kept(server_tmp) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert uploads_kept(server_tmp) == [] and time.monotonic() - t0 < 2.0


def test_bad_origin_and_bad_host_are_refused_and_bad_messages_close_one_session(open_page, server):
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    ws_url = server.replace("http", "ws") + "ws"
    host = server.split("/")[2]
    for origin in ("http://evil.example", None):
        with pytest.raises(InvalidStatus) as e:
            connect(ws_url, origin=origin, open_timeout=5).close()
        assert e.value.response.status_code == 403
    request = urllib.request.Request(server, headers={"Host": "evil.example"})  # DNS rebinding
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=5)
    assert e.value.code == 400

    page = open_page()  # a session that must live through the others' misbehaviour
    for bad in ("not json", json.dumps({"cmd": "record", "rate": "fast"}), "x" * 5000, b"\0" * 301):
        with connect(ws_url, origin=f"http://{host}", open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "hello"
            ws.send(json.dumps({"cmd": "record", "rate": 44100}) if isinstance(bad, bytes) else bad)
            if isinstance(bad, bytes):  # odd-sized audio: not 16-bit PCM
                assert json.loads(ws.recv(timeout=5))["type"] == "started"
                ws.send(bad)
            closing = json.loads(ws.recv(timeout=5))
            assert closing["type"] == "error" and closing["message"].startswith("session closed"), closing
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd.code == 1008
    with connect(ws_url, origin=f"http://{host}", open_timeout=5, max_size=None) as ws:  # an oversized message
        ws.recv(timeout=5)
        ws.send(b"\0" * (300 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1009
    page.click("#record")
    page.wait_for_function("window.streamSer.running === 'record'", timeout=10000)
    page.click("#stop")
    page.wait_for_function("window.streamSer.ended === 1", timeout=20000)
    assert page.inner_text("#conn").startswith("connected")


def test_open_pages_are_capped(server):
    """Each connected page holds a directory (and maybe an upload): past OPEN_PER_PLACE x --max-sessions, "busy"."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    def status() -> dict:
        with urllib.request.urlopen(server + "status", timeout=5) as r:
            return json.load(r)

    t0 = time.monotonic()
    while status()["sessions"] and time.monotonic() - t0 < 5:  # the earlier tests' pages are gone
        time.sleep(0.05)
    ws_url, host = server.replace("http", "ws") + "ws", server.split("/")[2]
    with contextlib.ExitStack() as opened:
        for _ in range(status()["max_open"]):
            ws = opened.enter_context(connect(ws_url, origin=f"http://{host}", open_timeout=5))
            assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        with connect(ws_url, origin=f"http://{host}", open_timeout=5) as ws:
            refused = json.loads(ws.recv(timeout=5))
            assert refused["type"] == "busy" and "pages are connected" in refused["message"], refused
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd.code == 1013


def test_screenshots_laptop_and_phone(open_page, audio, capsys, tmp_path_factory):
    """The filled view at 1280x800 and 390x844, saved where the CI log says, not blank."""
    from PIL import Image

    out = os.environ.get("STREAM_SER_ARTIFACTS") or str(tmp_path_factory.mktemp("serve-screenshots"))
    os.makedirs(out, exist_ok=True)
    shots = []
    for width, height in ((1280, 800), (390, 844)):
        page = open_page(width, height)
        upload(page, audio["flac"])
        page.wait_for_function("window.streamSer.ended === 1", timeout=60000)
        page.wait_for_timeout(400)  # the timeline's last redraw
        shot = os.path.join(out, f"serve-{width}x{height}.png")
        page.screenshot(path=shot)
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing runs off the side
        shots.append(shot)
    with capsys.disabled():  # into the CI log
        print(f"\nserve screenshots: {' '.join(shots)}")
    for shot in shots:
        img = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
        assert img.std() > 20 and len(np.unique(img.reshape(-1, 3), axis=0)) > 50, shot  # text, colours, charts


# ---- without a browser -------------------------------------------------------------

def test_push_source_resamples_counts_drops_and_refuses_odd_blocks():
    from stream_ser.errors import SourceError
    from stream_ser.push_source import PushSource

    src = PushSource(48000, queue_seconds=0.4)  # room for 0.4 s of audio, whatever the blocks' sizes
    tone = (np.sin(2 * np.pi * 440 * np.arange(4800) / 48000) * 16000).astype("<i2").tobytes()  # 0.1 s
    src.push(tone * 3)  # one block of 0.3 s
    for _ in range(3):
        src.push(tone)
    assert src.dropped_samples == 2 * 1600  # two blocks found the queue full, counted at 16 kHz
    src.request_stop()
    got = np.concatenate([y for y, _ in src.blocks()])
    assert abs(len(got) - 4 * 1600) <= 2  # 0.4 s at 16 kHz, the resampler flushed at the end
    with pytest.raises(SourceError, match="16-bit"):
        src.push(b"\0\0\0")


def test_push_source_that_stops_sending_ends_with_one_line():
    from stream_ser.errors import SourceError
    from stream_ser.push_source import PushSource

    src = PushSource(16000, lost_after=0.3)
    src.push(b"\0\0" * 1600)
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="no audio from the page for 0.3 s") as e:
        for _ in src.blocks():
            pass
    assert 0.3 <= time.monotonic() - t0 < 2 and "\n" not in str(e.value)


def test_allowed_hosts_and_the_host_check():
    import asyncio
    import concurrent.futures
    from types import SimpleNamespace

    from stream_ser.serve import ANY_ADDRESS, ServeOptions, allowed_hosts, build_app

    assert allowed_hosts("::1") == ["127.0.0.1", "[::1]", "localhost"]  # Starlette sees the brackets
    # (nothing binds here: the app is called in-process, with the host names it was given)
    assert allowed_hosts("lab.example") == ["127.0.0.1", "[::1]", "lab.example", "localhost"]
    assert all(allowed_hosts(any_address) == ["*"] for any_address in ANY_ADDRESS)

    def status(host: str, header: str) -> int:
        hub = SimpleNamespace(options=ServeOptions(host=host, max_sessions=1), sessions={}, running=0, max_open=4)
        app, sent = build_app(hub), []
        scope = {"type": "http", "method": "GET", "path": "/status", "raw_path": b"/status", "query_string": b"",
                 "root_path": "", "scheme": "http", "server": ("127.0.0.1", 8000), "http_version": "1.1",
                 "headers": [(b"host", header.encode())]}

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # (Playwright's loop may be running on this thread)
            pool.submit(asyncio.run, app(scope, receive, send)).result()
        return sent[0]["status"]

    assert status("::1", "[::1]:8000") == 200
    assert status("lab.example", "lab.example:8000") == status("lab.example", "localhost:8000") == 200
    assert status("lab.example", "evil.example:8000") == 400  # DNS rebinding
    assert status(ANY_ADDRESS[0], "any.name:8000") == 200


def test_jsonl_and_srt_text_skip_what_json_refuses():
    from stream_ser.outputs import jsonl_text, srt_text

    events = [{"type": "transcript", "start": 0.0, "end": 1.5, "text": "hello there", "final": True, "emitted_at": 1.0},
              {"type": "transcript", "start": 0.0, "end": 1.0, "text": "hel", "final": False, "emitted_at": 1.0},
              {"type": "emotion", "start": 0.0, "end": 2.5, "label": "neu", "confidence": float("nan"), "emitted_at": 2.0}]
    text, refused = jsonl_text(events)
    assert refused == 1 and [json.loads(line)["type"] for line in text.splitlines()] == ["transcript", "transcript"]
    assert srt_text(events) == "1\n00:00:00,000 --> 00:00:01,500\nhello there\n\n"


def test_safe_names_and_origins():
    from stream_ser.serve import origin_ok, safe_name

    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\calls\\Mon day.mp3") == "Mon day"
    assert safe_name("<script>.wav") == "_script_"
    assert safe_name("...") == "recording"
    assert origin_ok({"origin": "http://127.0.0.1:8000", "host": "127.0.0.1:8000"})
    assert not origin_ok({"origin": "http://evil.example", "host": "127.0.0.1:8000"})
    assert not origin_ok({"origin": "null", "host": "127.0.0.1:8000"})
    assert not origin_ok({"host": "127.0.0.1:8000"})


def test_host_warning_and_a_taken_port_is_one_line():
    import io
    import socket

    from stream_ser.serve import ANY_ADDRESS, warn_host

    out = io.StringIO()
    warn_host("127.0.0.1", out)
    assert out.getvalue() == ""
    warn_host(ANY_ADDRESS[0], out)  # only the warning: nothing listens here
    assert "anyone who can reach this machine" in out.getvalue() and "under any host name" in out.getvalue()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "stream_ser", "serve", "--port", str(port)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr == f"stream-ser: cannot listen on 127.0.0.1:{port}: Address already in use\n", r.stderr


def test_a_closed_run_gives_its_place_back_once():
    """Run.close frees the place at once; the run's own end (or a second close) does not free it again."""
    from types import SimpleNamespace

    from stream_ser.push_source import PushSource
    from stream_ser.serve import Run

    released = []
    hub = SimpleNamespace(release=lambda: released.append(1))
    run = Run(hub, PushSource(16000), "record", "recording", emit=lambda text: None, on_end=lambda run: None)
    run.close()  # (its thread never started: nothing to wait for)
    assert released == [1]
    run.free_place()
    run.close()
    assert released == [1]
