"""``stream-ser serve``: a web page that records from the browser's microphone
or takes an upload, and shows the live analysis.

Stack: Starlette (ASGI routes, WebSocket, static files) on uvicorn, a plain
JavaScript page in ``stream_ser/web/`` and plotly.js for the charts, served
from the ``plotly`` package (nothing is fetched from the internet).

One server process loads the models once (:class:`Hub`); every browser tab is a
:class:`Session` (one WebSocket) and every analysis it starts is a :class:`Run`
with its own :class:`~stream_ser.pipeline.Pipeline`.  At most
``max_sessions`` runs go at once: more would fall behind real time, so the
next one is told "busy, try again" instead.

The protocol on ``/ws`` (JSON text messages, audio as binary):

- server -> page: ``hello`` (session id, labels and colours), ``started``,
  ``event`` (one pipeline event, as in the JSONL), ``progress`` (uploads),
  ``end`` (with the download links), ``busy``, ``error`` (one line).
- page -> server: ``{"cmd": "record", "rate": 48000}`` then binary blocks of
  16-bit little-endian mono PCM at that rate; ``{"cmd": "upload", "speed": 0|1}``
  after ``POST /upload/<session>``; ``{"cmd": "stop"}``.

Safety: binds 127.0.0.1 by default (and then answers only to loopback host
names, against DNS rebinding); the WebSocket's ``Origin`` must be the page's
own; uploads are capped, stored under random names in a private temporary
directory and deleted when analysed or when their session ends; a malformed
or oversized message closes only its own session.

Threading: the routes run on uvicorn's event loop; each run's pipeline is
iterated on its own thread, which hands serialised messages to the loop with
``call_soon_threadsafe``.  Shared models are safe to share: the emotion
model's :meth:`predict` is serialised by a lock (TFLite is not thread-safe,
a window costs milliseconds); faster-whisper queues concurrent calls itself
(the emotion encoder runs two sessions' windows at once, each session one
window at a time).
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import StreamSerError, UsageError
from .labels import UNCERTAIN
from .outputs import jsonl_text, srt_text
from .pipeline import Pipeline, PipelineOptions
from .push_source import PushSource
from .report import colour, render_html
from .session import UNCERTAIN_BELOW
from .sources import FileSource

WEB = Path(__file__).resolve().parent / "web"
PLOTLY_FILE = Path(str(importlib.resources.files("plotly"))) / "package_data" / "plotly.min.js"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ANY_ADDRESS = ("0.0.0.0", "::", "")  # every interface: the page may be reached under any name
# Real-time sessions two cores sustain (bench/serve.py: no audio dropped, transcript
# latency at most twice a lone session's): the default of --max-sessions.  With the
# whisper-encoder emotion model, 4 with the transcript and 6 without on an AMD EPYC
# (bench/results/archive/serve_b75a1b8_amd_epyc.json), 5 and 6 on an Intel Xeon
# (bench/results/serve.json): the lower is kept; 6 is the most tried.
REALTIME_SESSIONS = {"transcript": 4, "no_transcript": 6}
MAX_BLOCK_BYTES = 256 * 1024  # one audio message: ~2.7 s of 48 kHz 16-bit PCM (the page sends ~43 ms)
MAX_TEXT_BYTES = 4096  # one command message
OPEN_PER_PLACE = 4  # tabs open at once per analysis place: each holds a temporary directory and maybe an upload
DOWNLOADS = {"events.jsonl": "application/x-ndjson", "transcript.srt": "application/x-subrip", "report.html": "text/html"}


@dataclass
class ServeOptions:
    """Options of ``stream-ser serve``.

    Attributes:
        host, port: where to listen (port 0: any free port, printed at start).
        max_sessions: analyses running at once; None is what two cores sustain
            in real time (:data:`REALTIME_SESSIONS`, with or without transcript).
            At most :data:`OPEN_PER_PLACE` times as many tabs are connected
            at once (each may hold an upload); the next one is told "busy".
        max_upload_mb: the largest upload accepted (larger: HTTP 413).
        pipeline: every session's pipeline options.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_sessions: int | None = None
    max_upload_mb: float = 200.0
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)

    @property
    def sessions(self) -> int:
        if self.max_sessions is not None:
            return self.max_sessions
        return REALTIME_SESSIONS["transcript" if self.pipeline.transcript else "no_transcript"]


class LockedModel:
    """An :class:`~stream_ser.emotion.EmotionModel` shared by concurrent
    pipelines: :meth:`predict` holds a lock; everything else is the model's."""

    def __init__(self, model):
        self._model = model
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._model, name)

    def predict(self, features):
        with self._lock:
            return self._model.predict(features)


def safe_name(name: str, fallback: str = "recording") -> str:
    """A display name reduced to harmless characters (for download file names
    and titles; never used as a path on the server)."""
    stem = os.path.splitext(os.path.basename(name.replace("\\", "/")))[0]
    return re.sub(r"[^A-Za-z0-9._ -]", "_", stem).strip(" .")[:80] or fallback


def error_line(e: Exception, upload: str | None = None, name: str = "") -> str:
    """What the page shows of a failure: one line, the upload's server path
    replaced by the user's file name."""
    if isinstance(e, StreamSerError):
        text = str(e)
    else:  # a bug or a library's surprise
        text = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
    return text.replace(upload, name) if upload else text


class Run:
    """One analysis (a recording or an upload) on its own thread, holding one
    of the hub's places (acquired by the caller, released once: when the run
    ends or as soon as :meth:`close` is called).

    ``emit`` is called on that thread with each message (a JSON string); it must
    be thread-safe.  :meth:`stop` ends capture (the rest is analysed),
    :meth:`close` ends everything now (at most ~2 s)."""

    def __init__(self, hub: "Hub", source, kind: str, name: str, emit, on_end, upload: str | None = None):
        self.hub, self.source, self.kind, self.name = hub, source, kind, name
        self.emit, self.on_end, self.upload = emit, on_end, upload
        self.events: list[dict] = []
        self.refused = 0  # events holding NaN or Infinity: neither sent nor kept (strict JSON)
        self.error: str | None = None
        self.done = threading.Event()
        self.pipeline: Pipeline | None = None
        self._closed = threading.Event()
        self._holds_place = True
        self._place_lock = threading.Lock()
        self.thread = threading.Thread(target=self._main, name=f"run-{kind}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    @property
    def audio_seconds(self) -> float:
        p = self.pipeline
        return p.ring.written / 16000 if p is not None else 0.0

    def free_place(self) -> None:
        """Give the hub's place back (only the first call does)."""
        with self._place_lock:
            held, self._holds_place = self._holds_place, False
        if held:
            self.hub.release()

    def _main(self) -> None:
        try:
            self.pipeline = Pipeline(self.source, self.hub.options.pipeline, emotion_model=self.hub.emotion_model,
                                     whisper_model=self.hub.whisper_model)
            if self._closed.is_set():
                return
            for ev in self.pipeline.events():
                try:
                    line = ev.to_json()
                except ValueError:  # NaN or Infinity: neither sent nor downloaded (as the JSONL writer refuses them)
                    self.refused += 1
                    continue
                self.events.append(ev.to_dict())
                self.emit(f'{{"type":"event","event":{line}}}')
        except Exception as e:  # this run ends, the server goes on
            self.error = error_line(e, self.upload, self.name)
        finally:
            if self.pipeline is not None:
                self.pipeline.close()
            else:
                self.source.close()
            if self.upload:
                _unlink(self.upload)
            self.free_place()
            self.done.set()
            self.on_end(self)

    def stop(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop()
        else:
            self.source.request_stop()

    def close(self, timeout: float = 1.8) -> None:
        self._closed.set()
        pipeline = self.pipeline
        if pipeline is not None:
            pipeline.close(timeout=0)  # every stage told to stop, now
        self.source.request_stop()
        # the tab is gone: its place is free at once (a transcription under way
        # ends within ~2 s, on the run's thread, which is not waited for beyond this)
        self.free_place()
        if pipeline is not None:
            pipeline.close(timeout=timeout)
        if self.thread.ident is not None:
            self.thread.join(timeout=0.2)


class Session:
    """One browser tab (one WebSocket): its private upload directory, its current
    run and the last finished run (what the downloads serve)."""

    def __init__(self, hub: "Hub"):
        self.hub = hub
        self.id = secrets.token_urlsafe(18)
        self.dir = tempfile.mkdtemp(prefix="s-", dir=hub.tmp)
        self.upload: tuple[str, str] | None = None  # (path on disk, display name)
        self.run: Run | None = None
        self.finished: Run | None = None
        self.lock = threading.Lock()

    def set_upload(self, path: str, name: str) -> None:
        with self.lock:
            old, self.upload = self.upload, (path, name)
        if old:
            _unlink(old[0])

    def close(self) -> None:
        """End the run now and delete the session's files (within ~2 s)."""
        run = self.run
        if run is not None:
            run.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class Hub:
    """The server's shared state: the models (loaded once), the sessions, and
    the count of running analyses (at most ``options.sessions``)."""

    def __init__(self, options: ServeOptions, emotion_model, whisper_model):
        self.options = options
        self.emotion_model = LockedModel(emotion_model)
        self.whisper_model = whisper_model
        self.sessions: dict[str, Session] = {}
        self.running = 0
        self._lock = threading.Lock()
        self.tmp = tempfile.mkdtemp(prefix="stream-ser-serve-")

    def acquire(self) -> bool:
        with self._lock:
            if self.running >= self.options.sessions:
                return False
            self.running += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.running -= 1

    def hello(self, session: Session) -> dict:
        labels = list(self.emotion_model.labels)
        from rich.color import Color

        colours = {k: colour(k) for k in labels} | {"?": Color.parse(UNCERTAIN[1]).get_truecolor().hex}  # as the dashboard
        return {"type": "hello", "session": session.id, "labels": labels, "colours": colours,
                "transcript": self.options.pipeline.transcript, "max_upload_mb": self.options.max_upload_mb,
                "max_sessions": self.options.sessions, "uncertain_below": UNCERTAIN_BELOW}

    @property
    def max_open(self) -> int:
        return OPEN_PER_PLACE * self.options.sessions

    def busy(self) -> str:
        n = self.options.sessions
        return (f"busy: {n} analysis{'es are' if n != 1 else ' is'} running, as many as this machine keeps up with "
                f"in real time; try again in a moment")

    def full(self) -> str:
        return f"busy: {self.max_open} pages are connected, as many as this server keeps open; try again in a moment"

    def shutdown(self) -> None:
        for s in list(self.sessions.values()):
            s.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- the web app -----------------------------------------------------------------

def allowed_hosts(host: str) -> list[str]:
    """The ``Host`` names the app answers to (others get HTTP 400, against DNS
    rebinding): the address it listens on and the loopback names, or any name
    when it listens on every interface.  Starlette compares the header's host
    lower-cased, without its port, an IPv6 address in its brackets."""
    if host in ANY_ADDRESS:
        return ["*"]
    return sorted({f"[{h}]" if ":" in h else h for h in (host.lower(), *LOOPBACK)})


def origin_ok(headers) -> bool:
    """The ``Origin`` a browser sent is this server as the page reached it."""
    origin, host = headers.get("origin"), headers.get("host")
    if not origin or not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def build_app(hub: Hub):
    """The Starlette app of ``hub``."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles
    from starlette.websockets import WebSocketDisconnect

    limit = int(hub.options.max_upload_mb * 1024 * 1024)
    # a socket the tab closed: Starlette's disconnect, the server's closed
    # transport (OSError) or a send after the close (RuntimeError)
    GONE = (WebSocketDisconnect, OSError, RuntimeError)

    async def index(request):
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})

    async def plotly(request):  # the plotly package's own file (FileResponse: ETag, ranges)
        return FileResponse(PLOTLY_FILE, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    async def status(request):
        return JSONResponse({"sessions": len(hub.sessions), "running": hub.running, "max_sessions": hub.options.sessions,
                             "max_open": hub.max_open})

    async def upload(request):
        if request.headers.get("origin") and not origin_ok(request.headers):
            return PlainTextResponse("refused: the upload does not come from this server's page", status_code=403)
        session = hub.sessions.get(request.path_params["session"])
        if session is None:
            return PlainTextResponse("no such session (reload the page)", status_code=404)
        too_big = PlainTextResponse(f"upload too large: the limit is {hub.options.max_upload_mb:g} MB (--max-upload-mb)",
                                    status_code=413)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return too_big
        name = safe_name(unquote(request.headers.get("x-file-name", "")))
        try:
            fd, path = tempfile.mkstemp(suffix=".upload", dir=session.dir)  # a random name: the user's is for display only
        except OSError:  # the session ended meanwhile (its directory is gone)
            return PlainTextResponse("no such session (reload the page)", status_code=404)
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        _unlink(path)
                        return too_big
                    f.write(chunk)
        except Exception:
            _unlink(path)
            raise
        if size == 0:
            _unlink(path)
            return PlainTextResponse("empty upload", status_code=400)
        session.set_upload(path, name)
        return JSONResponse({"name": name, "bytes": size})

    async def download(request):
        session = hub.sessions.get(request.path_params["session"])
        what = request.path_params["what"]
        run = session.finished if session else None
        if run is None or what not in DOWNLOADS:
            return PlainTextResponse("nothing to download (finish an analysis first)", status_code=404)
        if what == "events.jsonl":
            body = jsonl_text(run.events)[0]  # (the run kept no event that JSON refuses)
        elif what == "transcript.srt":
            body = srt_text(run.events)
        else:
            body = await asyncio.to_thread(render_html, run.events, run.name, error=run.error)
        ext = what.split(".")[1]
        return Response(body, media_type=DOWNLOADS[what],
                        headers={"Content-Disposition": f'attachment; filename="{run.name}.{ext}"'})

    async def ws(websocket):
        if not origin_ok(websocket.headers):
            await websocket.close(code=1008)  # before accept: the handshake is refused (HTTP 403)
            return
        await websocket.accept()
        if len(hub.sessions) >= hub.max_open:  # (checked and added with no await between: one event loop)
            try:
                await websocket.send_text(json.dumps({"type": "busy", "message": hub.full()}))
                await websocket.close(code=1013)  # "try again later"
            except GONE:
                pass
            return
        session = Session(hub)
        hub.sessions[session.id] = session
        loop = asyncio.get_running_loop()
        out: asyncio.Queue = asyncio.Queue()

        def emit(text: str) -> None:  # from a run's thread
            try:
                loop.call_soon_threadsafe(out.put_nowait, text)
            except RuntimeError:  # the loop is gone (server shutting down)
                pass

        def on_end(run: Run) -> None:
            with session.lock:
                if session.run is run:
                    session.run = None
                session.finished = run
            downloads = {k.split(".")[1]: f"/download/{session.id}/{k}" for k in DOWNLOADS} if run.events else {}
            emit(json.dumps({"type": "end", "kind": run.kind, "name": run.name, "error": run.error, "refused": run.refused,
                             "downloads": downloads}))

        async def send(message_type: str, **body) -> None:
            await websocket.send_text(json.dumps({"type": message_type, **body}))

        async def sender() -> None:
            try:
                while True:
                    try:
                        text = await asyncio.wait_for(out.get(), 0.25)
                    except asyncio.TimeoutError:
                        run = session.run
                        if run is not None and run.kind == "upload" and run.source.duration:
                            await send("progress", done=round(run.audio_seconds, 2), total=round(run.source.duration, 2))
                        continue
                    await websocket.send_text(text)
            except GONE:  # the tab went: the receiving loop ends the session
                return

        async def start(source_factory, kind: str, name: str, upload: str | None = None) -> None:
            if session.run is not None:
                await send("error", message="an analysis is already running in this page: stop it first")
                return
            try:
                source = await asyncio.to_thread(source_factory)
            except Exception as e:  # a file that does not decode (or a surprise): one line, the session goes on
                if upload:
                    _unlink(upload)
                await send("error", message=error_line(e, upload, name))
                return
            if not hub.acquire():
                source.close()
                if upload:  # kept for another try, unless another file came meanwhile
                    with session.lock:
                        keep = session.upload is None
                        if keep:
                            session.upload = (upload, name)
                    if not keep:
                        _unlink(upload)
                await send("busy", message=hub.busy())
                return
            run = None
            try:
                run = Run(hub, source, kind, name, emit, on_end, upload=upload)
                session.run = run
                run.start()
            except Exception as e:  # (a thread that cannot start): nothing is left held
                session.run = None
                source.close()
                if upload:
                    _unlink(upload)
                if run is not None:
                    run.free_place()
                else:
                    hub.release()
                await send("error", message=error_line(e, upload, name))
                return
            await send("started", kind=kind, name=name, duration=getattr(source, "duration", None))

        async def command(msg: dict) -> str | None:
            """Act on one command; returns why it is malformed, or None."""
            cmd = msg.get("cmd")
            if cmd == "record":
                rate = msg.get("rate")
                if not isinstance(rate, int) or isinstance(rate, bool) or not 8000 <= rate <= 192000:
                    return "record needs an integer 'rate' of 8000-192000 Hz"
                await start(lambda: PushSource(rate), "record", "recording")
            elif cmd == "upload":
                speed = msg.get("speed", 0)
                if speed not in (0, 1):
                    return "upload 'speed' is 0 (as fast as possible) or 1 (real time)"
                with session.lock:
                    upload, session.upload = session.upload, None
                if upload is None:
                    await send("error", message="no upload to analyse: send the file first")
                    return None
                path, name = upload

                def open_file():
                    source = FileSource(path, speed=float(speed))
                    source.name = name  # the status events name the user's file, not its random name here
                    return source

                await start(open_file, "upload", name, upload=path)
            elif cmd == "stop":
                if session.run is not None:
                    session.run.stop()
            else:
                return f"unknown command {str(cmd)[:40]!r}"
            return None

        sending = asyncio.create_task(sender())
        why = None
        try:
            await websocket.send_text(json.dumps(hub.hello(session)))
            while why is None:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data, text = message.get("bytes"), message.get("text")
                if data is not None:
                    run = session.run  # (a message over MAX_BLOCK_BYTES never gets here: uvicorn closes with 1009)
                    if run is not None and isinstance(run.source, PushSource):
                        try:
                            run.source.push(data)
                        except StreamSerError as e:
                            why = str(e)
                    # audio after a stop (still in flight) is dropped
                elif text is not None:
                    try:
                        msg = json.loads(text) if len(text) <= MAX_TEXT_BYTES else None
                    except ValueError:
                        msg = None
                    why = await command(msg) if isinstance(msg, dict) else "not a JSON command (or too long)"
            if why is not None:  # malformed: this session only is closed, with the reason
                await send("error", message=f"session closed: {why}")
                await websocket.close(code=1008, reason=why[:120])
        except GONE:
            pass
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)  # its end (or failure) collected
            hub.sessions.pop(session.id, None)
            await asyncio.to_thread(session.close)

    routes = [
        Route("/", index),
        Route("/static/plotly.min.js", plotly),
        Route("/status", status),
        Route("/upload/{session}", upload, methods=["POST"]),
        Route("/download/{session}/{what}", download),
        WebSocketRoute("/ws", ws),
        Mount("/static", StaticFiles(directory=WEB), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(hub.options.host))])


def warn_host(host: str, stream=sys.stderr) -> None:
    if host not in LOOPBACK:
        names = "under any host name" if host in ANY_ADDRESS else f"as {host} (or a loopback name)"
        print(f"stream-ser: warning: serving on {host}: anyone who can reach this machine on that network can use the page "
              f"(record, upload, run the models), reached {names}; browsers allow recording only on https or localhost",
              file=stream)


def listen_socket(host: str, port: int) -> socket.socket:
    """The listening socket, or a one-line :class:`UsageError` (port taken, bad address)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port}: {os.strerror(e.errno) if e.errno else e}") from None


def require_stack() -> None:
    """The web stack is an extra: say how to get it, in one line, before any model loads."""
    import importlib

    for module in ("starlette", "uvicorn", "websockets"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise UsageError(f"serve needs {module}: pip install 'stream-ser[serve]'") from None


def serve(options: ServeOptions, stream=sys.stderr) -> int:
    """Load the models, listen, serve until SIGINT (KeyboardInterrupt) or SIGTERM
    (returns 143), then end every session and delete their files."""
    require_stack()
    import uvicorn

    from .emotion import EmotionModel
    from .features import warm_up
    from .transcribe import load_whisper

    # sessions share the cores (and the emotion encoder's two workers): one window at a time each
    options = replace(options, pipeline=replace(options.pipeline, emotion=replace(options.pipeline.emotion, feature_threads=1)))
    o = options.pipeline
    o.check()
    if options.max_sessions is not None and options.max_sessions < 1:
        raise UsageError("--max-sessions must be at least 1")
    if not 0 < options.max_upload_mb <= 1e6:
        raise UsageError("--max-upload-mb must be above 0 and at most 1000000")
    warn_host(options.host, stream)
    sock = listen_socket(options.host, options.port)
    hub, previous = None, None
    try:  # the port is let go however this ends (a model that does not load included)
        emotion = EmotionModel(o.emotion.models_dir, neutral_bias=o.emotion.neutral_bias, device=o.emotion.device)
        # the sessions share one model: as many of their decodes run at once as there are cores
        workers = max(o.transcribe.num_workers, min(options.sessions, os.cpu_count() or 1))
        whisper = load_whisper(replace(o.transcribe, num_workers=workers)) if o.transcript else None
        if emotion.features == "mfcc":  # a whisper model needs no librosa
            warm_up()
        hub = Hub(options, emotion, whisper)
        app = build_app(hub)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"stream-ser: serving http://{shown}:{port}/ (at most {options.sessions} {'analysis' if options.sessions == 1 else 'analyses'} at once; Ctrl-C stops)",
              file=stream, flush=True)
        config = uvicorn.Config(app, log_level="warning", ws="websockets-sansio", ws_max_size=MAX_BLOCK_BYTES,
                                lifespan="off", timeout_graceful_shutdown=2)
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to
        # the handler that was there before: SIGINT's raises KeyboardInterrupt; SIGTERM
        # gets one that raises too, so that the sessions' files go in either case; the
        # handler found here is put back at the end (serve() may be embedded)
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _terminated)
        uvicorn.Server(config).run(sockets=[sock])
    except Terminated:
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if hub is not None:
            hub.shutdown()
        sock.close()
    return 0


class Terminated(Exception):
    """SIGTERM ended the server."""


def _terminated(signum, frame):
    raise Terminated
