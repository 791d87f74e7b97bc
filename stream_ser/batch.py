"""``stream-ser batch``: an archive of recordings into reports and tables.

Each recording goes through the same :class:`Pipeline` as ``replay --speed 0``
in a worker that loaded the models once (:func:`analyse`).  Workers are local
processes (:class:`LocalEngine`) or Ray actors (``stream_ser.ray_engine``);
either way the results come back to this process, the driver, which alone
writes the outputs (:class:`Archive`), so an engine never touches ``--out``.

Layout of ``--out DIR``::

    calls/<name>.jsonl .srt .html   per recording (html loads calls/plotly.min.js)
    calls.parquet calls.csv          one row per recording
    segments.parquet                 one row per emotion window and final transcript span
    .batch/records/<name>.json       what was done: source size, mtime, model identity, row
    .batch/parts/<name>.parquet      the recording's segments
    .batch/lock, .batch/logs/        one batch at a time; workers' stderr

Safe to kill: every file is written to a temporary name and renamed, and a
recording's record is written last, so a record means its outputs are whole.
The tables are rebuilt from the records at the end of every run, so a rerun
after ``kill -9`` neither loses nor duplicates a row.  Threading: the driver is
one thread; workers share nothing with it but pickled messages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .atomic import replacing, write_text
from .errors import ModelError, StreamSerError, UsageError

# extensions a folder walk picks up (a file named on the command line is tried whatever its name)
AUDIO_EXTENSIONS = frozenset(
    "wav wave flac ogg oga opus mp3 m4a mp4 aac wma aif aiff aifc au snd caf w64 rf64 webm mka amr 3gp".split())
PLAIN_EVERY = 5.0  # seconds between progress lines when stdout is not a terminal


@dataclass
class Job:
    """One recording to analyse.  ``name`` is its stem in ``calls/``."""

    name: str
    path: str
    size: int
    mtime_ns: int
    duration: float | None = None  # from the file's header where cheap; for the ETA only


@dataclass
class BatchOptions:
    """``stream-ser batch``'s options.

    Attributes:
        out: output directory.
        pipeline: the pipeline's options (models, --no-transcript, VAD ...).
        workers: worker processes or Ray actors; None: the cores (local) or the
            cluster's CPUs (Ray).
        force: redo recordings whose outputs are complete and unchanged.
        ray: a Ray cluster address ("auto": RAY_ADDRESS or the local one);
            None runs local worker processes.
    """

    out: str
    pipeline: Any = None  # PipelineOptions (imported lazily: `--help` and a rerun stay light)
    workers: int | None = None
    force: bool = False
    ray: str | None = None


# ---- discovery --------------------------------------------------------------

def discover(inputs: Iterable[str], skip: str | None = None) -> list[tuple[str, str]]:
    """(absolute path, name hint) of every recording under ``inputs``: files,
    folders (recursive, audio extensions, hidden entries skipped) and globs.
    The hint is the path below the folder it was found in, without its
    extension, "/" read as "__".  ``skip`` is a folder not to walk (the output)."""
    found: dict[str, str] = {}
    skip = os.path.realpath(skip) if skip else None

    def add_file(path: str, hint: str) -> None:
        found.setdefault(os.path.realpath(path), hint)

    def add_dir(root: str) -> None:
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and os.path.realpath(os.path.join(dirpath, d)) != skip)
            for f in sorted(files):
                if f.startswith(".") or f.rsplit(".", 1)[-1].lower() not in AUDIO_EXTENSIONS:
                    continue
                rel = os.path.relpath(os.path.join(dirpath, f), root)
                add_file(os.path.join(dirpath, f), os.path.splitext(rel)[0].replace(os.sep, "__"))

    for item in inputs:
        matches = sorted(glob.glob(item, recursive=True)) if glob.has_magic(item) else [item]
        if not matches:
            raise UsageError(f"{item}: matches nothing")
        for m in matches:
            if os.path.isdir(m):
                add_dir(m)
            elif os.path.exists(m):
                add_file(m, os.path.splitext(os.path.basename(m))[0])
            else:
                raise UsageError(f"{m}: no such file or directory")
    return list(found.items())


def _name(hint: str, taken: set[str]) -> str:
    base = hint.lstrip(".") or "recording"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


# ---- model identity -----------------------------------------------------------

def model_identity(options) -> str:
    """A short hash of everything that decides a recording's events: the
    emotion model's files, the ASR model, the stages' options and this
    version.  Cheap (no model is loaded): a rerun with nothing to do must not
    wait for TensorFlow.  Thread counts and devices are left out."""
    from . import __version__
    from .transcribe import BUNDLED_NAME

    h = hashlib.sha256(__version__.encode())
    models = Path(options.emotion.models_dir)
    for f in ("labels.json", "emotion.tflite", "emotion.keras"):
        p = models / f
        if p.is_file():
            h.update(f.encode() + p.read_bytes())
    d = dataclasses.asdict(options)
    d["emotion"]["models_dir"] = None  # its content counts, not where it lies
    for k in ("cpu_threads", "num_workers", "device"):
        d["transcribe"].pop(k, None)
    d["emotion"].pop("device", None)  # --compute: where, not what
    d["emotion"].pop("feature_threads", None)  # how many windows at once: the same events
    if options.transcript:
        asr = options.transcribe.model or BUNDLED_NAME
        if os.path.isdir(asr):  # a model directory: by its files' sizes and times (hashing 75+ MB per run is slow)
            asr = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(Path(asr).iterdir()) if f.is_file()]
        d["asr"] = asr
    else:
        d["transcribe"] = None
    h.update(json.dumps(d, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


# ---- the work of one recording (in a worker) ------------------------------------

def load_models(options):
    """The models a worker holds for all its recordings."""
    from .emotion import EmotionModel
    from .transcribe import load_whisper

    emotion = EmotionModel(options.emotion.models_dir, neutral_bias=options.emotion.neutral_bias, device=options.emotion.device)
    whisper = load_whisper(options.transcribe) if options.transcript else None
    return emotion, whisper


def analyse(path: str, options, models, title: str | None = None) -> dict[str, Any]:
    """Run one recording through the pipeline, as ``replay --speed 0`` does.
    Never raises for a bad recording: returns ``events`` (dicts, those before
    a failure included), ``error`` (one line or None), ``seconds`` (wall) and
    ``html`` (its report page, loading plotly.js from beside it) and
    ``cpu_seconds`` (the worker process's CPU time meanwhile, all threads)."""
    from .pipeline import Pipeline
    from .report import PLOTLY_JS, render_html
    from .sources import FileSource

    t0, c0 = time.perf_counter(), time.process_time()
    events: list[dict] = []
    error = None
    try:
        pipeline = Pipeline(FileSource(path, speed=0), options, emotion_model=models[0], whisper_model=models[1])
        for ev in pipeline.events():
            events.append(ev.to_dict())
    except StreamSerError as e:
        error = str(e)
    except Exception as e:  # a bug or a library's surprise: this recording's row says it, the batch goes on
        error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    html = render_html(events, title or os.path.basename(path), plotly_js=PLOTLY_JS, error=error)
    return {"events": events, "error": error, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "html": html}


# ---- local engine ------------------------------------------------------------

def _worker_main(conn, options, threads: int, log_path: str) -> None:
    """A local worker process: load the models once, then analyse the paths it
    is sent until it gets None.  Its stdout/stderr go to ``log_path`` (the
    driver's terminal shows the progress); Ctrl-C is the driver's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    t0 = time.perf_counter()
    try:
        # faster-whisper keeps TranscribeOptions.cpu_threads (1): a second CTranslate2
        # thread made a decode slower here (bench/decode_threads.py), so a lone
        # worker's second core goes to its emotion stage and capture instead
        models = load_models(options)
    except StreamSerError as e:
        conn.send(("failed", str(e)))
        return
    except Exception as e:
        conn.send(("failed", f"cannot load the models: {type(e).__name__}: {e}"))
        return
    conn.send(("ready", time.perf_counter() - t0))
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the driver went away
            return
        if job is None:
            return
        conn.send(("done", analyse(job.path, options, models, title=job.name)))


class LocalEngine:
    """``workers`` local processes (spawned: TensorFlow does not survive a
    fork), each with its own models and ``threads`` compute threads for
    numpy and TensorFlow (faster-whisper keeps its ``cpu_threads``).  The
    driver hands each idle worker one recording at a time over its own pipe, so
    it always knows which recording a worker holds: a worker that dies (a
    crash in a native library) costs that recording an error row and is
    replaced, and the batch goes on."""

    name = "local"

    def __init__(self, workers: int, options, log_dir: str):
        import multiprocessing

        self._ctx = multiprocessing.get_context("spawn")
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        # a batch's parallelism is its worker processes (bench/batch.py measures their scaling): one window at a time each
        options = dataclasses.replace(options, emotion=dataclasses.replace(options.emotion, feature_threads=1))
        self.size, self.options, self.log_dir = workers, options, log_dir
        self._workers: list[dict] = []
        self.startup: list[float] = []  # seconds from spawn to models loaded, per worker
        self.ready_at: list[float] = []  # time.perf_counter() when each was ready
        for i in range(workers):
            self._spawn(i)

    def _spawn(self, i: int) -> None:
        parent, child = self._ctx.Pipe()
        log = os.path.join(self.log_dir, f"worker-{i}.log")
        p = self._ctx.Process(target=_worker_main, args=(child, self.options, self.threads, log), name=f"stream-ser-worker-{i}", daemon=True)
        p.start()
        child.close()
        w = {"i": i, "proc": p, "conn": parent, "job": None, "ready": False, "spawned": time.perf_counter()}
        if i < len(self._workers):
            self._workers[i] = w
        else:
            self._workers.append(w)

    def wait_ready(self) -> None:
        """Block until every worker has loaded its models (benchmarks: to time
        the work apart from the start-up)."""
        while len(self.ready_at) < self.size:
            self.poll(0.2)

    def idle(self) -> int:
        return sum(1 for w in self._workers if w["job"] is None)

    def busy(self) -> int:
        return sum(1 for w in self._workers if w["job"] is not None)

    def submit(self, job: Job) -> None:
        w = next(w for w in self._workers if w["job"] is None)
        w["job"] = job
        w["conn"].send(job)  # a worker still loading its models reads it when ready

    def poll(self, timeout: float) -> list[tuple[Job, dict]]:
        """Finished recordings (waits up to ``timeout`` for the first)."""
        from multiprocessing.connection import wait

        handles = {}
        for w in self._workers:
            handles[w["conn"]] = w
            handles[w["proc"].sentinel] = w
        done = []
        for h in wait(list(handles), timeout):
            w = handles[h]
            if h is w["conn"]:
                try:
                    kind, payload = w["conn"].recv()
                except (EOFError, OSError):
                    continue  # it died: its sentinel says so
                if kind == "ready":
                    w["ready"] = True
                    self.ready_at.append(time.perf_counter())
                    self.startup.append(self.ready_at[-1] - w["spawned"])
                elif kind == "failed":  # models do not load: no worker ever will
                    raise ModelError(payload)
                else:
                    job, w["job"] = w["job"], None
                    done.append((job, payload))
            elif not w["proc"].is_alive() and w["proc"].exitcode is not None:
                job = w["job"]
                code = w["proc"].exitcode
                w["conn"].close()
                why = f"signal {-code}" if code < 0 else f"exit code {code}"
                if not w["ready"]:  # it never loaded the models: a new one would die the same way
                    log = os.path.join(self.log_dir, "worker-%d.log" % w["i"])
                    raise ModelError(f"a worker process died while loading the models ({why}); see {log}")
                if job is not None:
                    done.append((job, {"events": [], "error": f"worker process died ({why}) on this recording",
                                       "seconds": 0.0, "html": None, "retry": True}))
                self._spawn(w["i"])
        return done

    def close(self, abandon: bool = False) -> None:
        """Stop the workers: after their current recording, or at once (abandon)."""
        for w in self._workers:
            if abandon:
                w["proc"].kill()
            else:
                with contextlib.suppress(OSError, ValueError):
                    w["conn"].send(None)
        for w in self._workers:
            w["proc"].join(5 if not abandon else 2)
            if w["proc"].is_alive():
                w["proc"].kill()
                w["proc"].join(2)
            with contextlib.suppress(OSError):
                w["conn"].close()


# ---- the output directory ------------------------------------------------------

class Archive:
    """The output directory: records, per-call files, tables.  Only the driver
    (one thread) uses it; a lock file keeps a second batch out."""

    def __init__(self, out: str):
        self.out = Path(out)
        self.calls = self.out / "calls"
        self.state = self.out / ".batch"
        self.records_dir = self.state / "records"
        self.parts = self.state / "parts"
        try:
            for d in (self.calls, self.records_dir, self.parts, self.state / "logs"):
                d.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.state / "lock", "w")
        except OSError as e:
            raise UsageError(f"cannot write {out}: {e.strerror or e}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(f"{out}: another stream-ser batch is writing there") from None
        # what a killed batch left half-written (we hold the lock: nobody else writes here)
        for d in (self.out, self.calls, self.records_dir, self.parts):
            for p in d.glob("*.~tmp[0-9]*"):
                with contextlib.suppress(OSError):
                    p.unlink()
        self.records: dict[str, dict] = {}
        for p in sorted(self.records_dir.glob("*.json")):
            try:
                r = json.loads(p.read_text())
                self.records[r["name"]] = r
            except (OSError, ValueError, KeyError):
                continue  # unreadable: the recording is simply done again
        self.by_path = {r["path"]: name for name, r in self.records.items()}

    def name_for(self, path: str, hint: str, taken: set[str]) -> str:
        """A recording keeps the name it had in this directory; a new one gets
        its hint, made unique (call1, call1-2, ...)."""
        name = self.by_path.get(path)
        if name is None or name in taken:
            name = _name(hint, taken | set(self.records))
        taken.add(name)
        return name

    def outputs(self, name: str) -> list[Path]:
        return [self.calls / f"{name}.{ext}" for ext in ("jsonl", "srt", "html")]

    def is_done(self, job: Job, model: str) -> dict | None:
        """The record of a recording whose outputs are complete for this very
        file (size, mtime) and model, else None."""
        r = self.records.get(job.name)
        if (r and r.get("final") and r["path"] == job.path and r["size"] == job.size and r["mtime_ns"] == job.mtime_ns
                and r["model"] == model and all(p.exists() for p in self.outputs(job.name))
                and (self.parts / f"{job.name}.parquet").exists()):
            return r
        return None

    def ensure_plotly(self) -> None:
        """One copy of plotly.js for every page in calls/ (written once)."""
        from .report import PLOTLY_JS

        target = self.calls / PLOTLY_JS
        if not target.exists():
            import plotly.offline

            write_text(target, plotly.offline.get_plotlyjs())

    def save(self, job: Job, result: dict, model: str) -> dict:
        """Write a finished recording's files, its segments and, last, its
        record; returns its row."""
        from .outputs import jsonl_text, srt_text
        from .report import PLOTLY_JS, render_html
        from .session import summarise

        events = result["events"]
        s = summarise(events)
        row = make_row(job, s, result, model)
        jsonl, srt, html = self.outputs(job.name)
        text, refused = jsonl_text(events)
        if refused:
            print(f"stream-ser: {job.name}: {refused} event(s) held NaN or Infinity: left out of its JSONL", file=sys.stderr)
        write_text(jsonl, text)
        write_text(srt, srt_text(events))
        page = result.get("html") or render_html(events, job.name, plotly_js=PLOTLY_JS, error=result["error"], summary=s)
        write_text(html, page)
        write_segments(self.parts / f"{job.name}.parquet", job.name, events)
        record = {"name": job.name, "path": job.path, "size": job.size, "mtime_ns": job.mtime_ns, "model": model,
                  "final": not result.get("retry"), "row": row}
        write_text(self.records_dir / f"{job.name}.json", json.dumps(record))
        self.records[job.name] = record
        return row

    def write_tables(self, labels: list[str]) -> int:
        """calls.parquet, calls.csv and segments.parquet from every record in
        the directory, sorted by name; returns the number of rows."""
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        names = sorted(self.records)
        shares = list(labels) + sorted({k for n in names for k in self.records[n]["row"].get("_shares", {})} - set(labels))
        rows = [flat_row(self.records[n]["row"], shares) for n in names]
        table = pa.Table.from_pylist(rows, schema=calls_schema(shares))
        with replacing(self.out / "calls.parquet") as tmp:
            pq.write_table(table, tmp)
        with replacing(self.out / "calls.csv") as tmp:
            pcsv.write_csv(table, tmp)
        with replacing(self.out / "segments.parquet") as tmp:
            with pq.ParquetWriter(tmp, segments_schema()) as writer:  # streamed: memory stays at one recording's segments
                for n in names:
                    part = self.parts / f"{n}.parquet"
                    if part.exists():
                        writer.write_table(pq.read_table(part, schema=segments_schema()))
        return len(rows)

    def close(self) -> None:
        self._lock.close()


# ---- tables ------------------------------------------------------------------

def make_row(job: Job, s: dict, result: dict, model: str) -> dict:
    """A recording's row (before its shares become columns; see :func:`flat_row`)."""
    return {"recording": job.name, "path": job.path, "duration_s": s["duration_s"], "speech_s": s["speech_s"],
            "windows": s["windows"], "_shares": s["shares"], "dominant": s["dominant"],
            "arousal_mean": s["arousal_mean"], "arousal_peak": s["arousal_peak"], "negative_run_s": s["negative_run_s"],
            "words": s["words"], "error": result["error"], "processing_s": result["seconds"], "model": model}


def flat_row(row: dict, shares: list[str]) -> dict:
    out = {k: v for k, v in row.items() if k != "_shares"}
    for k in shares:  # a recording without windows has no shares (null), not 0%
        out[f"share_{k}"] = row["_shares"].get(k, 0.0) if row["windows"] else None
    return out


def calls_schema(shares: list[str]):
    import pyarrow as pa

    f64, s = pa.float64(), pa.string()
    head = [("recording", s), ("path", s), ("duration_s", f64), ("speech_s", f64), ("windows", pa.int64())]
    tail = [("dominant", s), ("arousal_mean", f64), ("arousal_peak", f64), ("negative_run_s", f64), ("words", pa.int64()),
            ("error", s), ("processing_s", f64), ("model", s)]
    return pa.schema(head + [(f"share_{k}", f64) for k in shares] + tail)


def segments_schema():
    import pyarrow as pa

    return pa.schema([("recording", pa.string()), ("start", pa.float64()), ("end", pa.float64()), ("type", pa.string()),
                      ("label", pa.string()), ("confidence", pa.float64()), ("text", pa.string()),
                      ("utterance", pa.int64()), ("arousal", pa.float64())])


def segment_rows(name: str, events: list[dict]) -> list[dict]:
    """One row per emotion window and per final transcript span (its label and
    confidence are those of the windows it overlaps)."""
    rows = []
    for e in events:
        if e.get("type") == "emotion":
            rows.append({"recording": name, "start": e["start"], "end": e["end"], "type": "emotion", "label": e["label"],
                         "confidence": e["confidence"], "text": None, "utterance": e.get("utterance"), "arousal": e.get("arousal")})
        elif e.get("type") == "transcript" and e.get("final") and e.get("text"):
            tag = e.get("emotion") or {}
            rows.append({"recording": name, "start": e["start"], "end": e["end"], "type": "transcript", "label": tag.get("label"),
                         "confidence": tag.get("confidence"), "text": e["text"], "utterance": e.get("utterance"), "arousal": None})
    return rows


def write_segments(path: Path, name: str, events: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(segment_rows(name, events), schema=segments_schema())
    with replacing(path) as tmp:
        pq.write_table(table, tmp)


def model_labels(options) -> list[str]:
    """The emotion model's labels, read from its labels.json (no model load)."""
    from .labels import EMOTIONS

    try:
        return list(json.loads((Path(options.emotion.models_dir) / "labels.json").read_text())["labels"])
    except (OSError, ValueError, KeyError, TypeError):
        return list(EMOTIONS)


# ---- the driver ----------------------------------------------------------------

@dataclass
class BatchResult:
    """What a batch did.  ``failed`` counts every recording of the inputs whose
    row has an error, the unchanged ones skipped this time included."""

    total: int = 0
    analysed: int = 0
    skipped: int = 0
    failed: int = 0
    rows: int = 0
    interrupted: str | None = None  # "SIGINT" / "SIGTERM"
    audio_seconds: float = 0.0  # analysed this run
    cpu_seconds: float = 0.0  # the workers' CPU time on those recordings (start-up not included)
    wall_seconds: float = 0.0
    startup: list[float] = field(default_factory=list)  # per worker: start to models loaded
    work_seconds: float | None = None  # first worker at work to last result: throughput without start-up
    engine: str = ""


def _clock(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class BatchProgress:
    """Recordings done/total, audio hours, × real time and ETA: a rich progress
    bar on a terminal, else a plain line every :data:`PLAIN_EVERY` seconds.
    Driver thread only."""

    def __init__(self, total: int, done: int, stream=None, tty: bool | None = None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.total, self.done, self.failed = total, done, 0
        self.audio = 0.0
        self.t0 = time.monotonic()
        self._last_line = self.t0
        self._bar = None
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(TextColumn("batch"), BarColumn(), MofNCompleteColumn(), TextColumn("recordings"),
                                 TextColumn("{task.fields[info]}"), console=Console(file=self.stream), transient=False)
            self._task = self._bar.add_task("batch", total=total, completed=done, info="loading models…")
            self._bar.start()

    def info(self, remaining_audio: float | None) -> str:
        elapsed = time.monotonic() - self.t0
        speed = self.audio / elapsed if elapsed > 0 else 0.0
        eta = _clock(remaining_audio / speed) if speed > 0 and remaining_audio is not None else "–"
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.audio / 3600:.2f} h audio, {speed:.0f}× real time, ETA {eta}{failed}"

    def update(self, remaining_audio: float | None, force: bool = False) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, info=self.info(remaining_audio))
        elif force or time.monotonic() - self._last_line >= PLAIN_EVERY:
            self._last_line = time.monotonic()
            print(f"batch: {self.done}/{self.total} recordings, {self.info(remaining_audio)}", file=self.stream, flush=True)

    def note(self, line: str) -> None:
        """A line above the bar (an error)."""
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _duration(path: str) -> float | None:
    import soundfile as sf

    try:
        info = sf.info(path)
        return info.frames / info.samplerate if info.frames > 0 else None
    except Exception:
        return None  # formats PyAV decodes (m4a, ...): known when done


def local_engine(opts: BatchOptions, options, log_dir: str):
    """The default engine: local worker processes (``--ray`` needs
    :func:`stream_ser.ray_engine.make_engine` as ``engine_factory``)."""
    if opts.ray is not None:
        raise UsageError("--ray: pass engine_factory=stream_ser.ray_engine.make_engine")
    return LocalEngine(opts.workers or os.cpu_count() or 1, options, log_dir)


def run_batch(inputs: list[str], opts: BatchOptions, stream=None, tty: bool | None = None,
              engine_factory: Callable | None = None) -> BatchResult:
    """Analyse every recording under ``inputs`` into ``opts.out``: skip the
    unchanged, hand the rest to the engine, save each result as it comes, and
    rebuild the tables at the end, also after Ctrl-C (first: no new
    recordings, those in flight finish; second, or SIGTERM: they are
    abandoned) or an error.  Call from the main thread (signal handlers)."""
    from .pipeline import PipelineOptions

    options = opts.pipeline or PipelineOptions()
    t_start = time.monotonic()
    found = discover(inputs, skip=opts.out)  # before anything is created: a typo leaves no empty DIR behind
    if not found:
        raise UsageError(f"no recordings found in {' '.join(inputs)}")
    archive = Archive(opts.out)
    result = BatchResult()
    try:
        model = model_identity(options)
        taken: set[str] = set()
        jobs, names = [], []
        for path, hint in found:
            name = archive.name_for(path, hint, taken)
            names.append(name)
            try:
                st = os.stat(path)
            except OSError as e:
                st = None
                why = f"{path}: {e.strerror or e}"
            job = Job(name, path, st.st_size if st else 0, st.st_mtime_ns if st else 0)
            if st is None:
                archive.save(job, {"events": [], "error": why, "seconds": 0.0, "html": None}, model)
            elif opts.force or not archive.is_done(job, model):
                jobs.append(job)
        result.total, result.skipped = len(found), len(found) - len(jobs)
        progress = BatchProgress(len(found), result.skipped, stream, tty)
        try:
            if jobs:
                _run_jobs(jobs, opts, options, archive, model, progress, result, engine_factory)
        finally:
            progress.update(0.0, force=True)
            progress.close()
        result.failed = sum(1 for n in names if n in archive.records and archive.records[n]["row"]["error"])
    finally:
        try:
            result.rows = archive.write_tables(model_labels(options))
        finally:
            archive.close()
    result.wall_seconds = time.monotonic() - t_start
    return result


def _run_jobs(jobs, opts, options, archive, model, progress, result, engine_factory) -> None:
    archive.ensure_plotly()
    for job in jobs:
        job.duration = _duration(job.path)
    stop = {"level": 0, "signal": None}

    def on_signal(signum, frame):
        stop["signal"] = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
        stop["level"] = 2 if signum == signal.SIGTERM or stop["level"] >= 1 else 1

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    pending = list(jobs)
    in_flight: dict[str, Job] = {}
    engine = None
    told = 0
    last_result = first_submit = None
    try:
        engine = (engine_factory or local_engine)(opts, options, str(archive.state / "logs"))
        result.engine = engine.name
        while pending or in_flight:
            if stop["level"] >= 2:
                break
            if stop["level"] == 1:
                if told == 0:
                    progress.note(f"stream-ser: interrupted: finishing the {len(in_flight)} recordings in flight "
                                  f"(Ctrl-C again to abandon them)")
                    told = 1
                pending.clear()
            while pending and engine.idle():
                job = pending.pop(0)
                in_flight[job.name] = job
                engine.submit(job)
                first_submit = first_submit or time.perf_counter()
            for job, res in engine.poll(0.25):
                last_result = time.perf_counter()
                in_flight.pop(job.name, None)
                row = archive.save(job, res, model)
                result.analysed += 1
                progress.done += 1
                progress.audio += row["duration_s"]
                result.cpu_seconds += res.get("cpu_seconds", 0.0)
                if res["error"]:
                    progress.failed += 1
                    msg = res["error"] if job.path in res["error"] else f"{job.path}: {res['error']}"
                    progress.note(f"stream-ser: {msg}")
            known = [j.duration for j in jobs if j.duration]
            mean = sum(known) / len(known) if known else None
            left = [j.duration or mean for j in pending + list(in_flight.values())]
            progress.update(None if None in left else sum(left))
    finally:
        if engine is not None:
            result.startup = list(engine.startup)
            if engine.ready_at and last_result:  # from the first moment a worker had a recording and its models
                result.work_seconds = last_result - max(first_submit, min(engine.ready_at))
            engine.close(abandon=stop["level"] >= 2 or bool(in_flight))
        for s, h in previous.items():
            signal.signal(s, h)
        result.audio_seconds = progress.audio
        result.interrupted = stop["signal"]

