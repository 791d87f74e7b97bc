"""Shared machinery of the benchmark scripts in bench/.

* where things are (repo root, ../shared/data/speech) and :func:`need_data`
* :func:`machine`, :func:`commit`, :func:`finish` (write bench/results/<name>.json,
  print the table or exactly one JSON object)
* :func:`pct` percentiles, :func:`target` target records, :func:`table`
* :func:`speech_rows`, :func:`build_long` (shared speech recordings joined with
  gaps into one WAV, repeated to a length, with where each recording lies)
* :func:`run_cli` (``stream-ser`` as a subprocess: wall time, its own CPU time
  from ``wait4``, CPU at the moment the stream opened, its JSONL events)
* :class:`LiveSession` (the virtual microphone of stream_ser/virtual_mic.py, a
  ``stream-ser listen`` subprocess on it, RSS/threads/CPU sampled from /proc)

Every figure comes from the events' own fields (``latency_ms``, ``end``,
``emitted_at``, ``compute_ratio`` ...) or from measured process CPU time.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import datetime as _dt
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
SHARED = Path(os.environ.get("STREAM_SER_BENCH_DATA") or ROOT.parent / "shared" / "data")  # override: tests of the bench
SPEECH = SHARED / "speech"
SR = 16000

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _ensure_venv() -> None:
    """`python bench/x.py` with a python that lacks the stack: re-run it with the
    project's .venv python (if there is one)."""
    try:
        import numpy  # noqa: F401
        import soundfile  # noqa: F401
    except ImportError:
        venv_py = ROOT / ".venv" / "bin" / "python"
        if venv_py.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and not os.environ.get("STREAM_SER_BENCH_REEXEC"):
            os.environ["STREAM_SER_BENCH_REEXEC"] = "1"
            os.execv(str(venv_py), [str(venv_py), *sys.argv])
        raise


_ensure_venv()

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402


# ---------------------------------------------------------------- environment
def shown_path(p: str | os.PathLike) -> str:
    """A path as results record it: relative to the repository when inside it
    (never this machine's absolute path), else as given."""
    p = Path(p)
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def need_data() -> None:
    """Exit with one line and code 2 when ../shared/data/speech is not here."""
    if not (SPEECH / "manifest.csv").is_file():
        print(f"bench: {SPEECH} not found (the shared speech recordings are needed); nothing measured", file=sys.stderr)
        sys.exit(2)


def cli_cmd() -> list[str]:
    """How to run stream-ser: ``python -m stream_ser`` from ROOT (run_cli's and
    LiveSession's working directory), so that the package measured is this
    checkout's, not whichever one the venv's console script was installed from."""
    return [sys.executable, "-m", "stream_ser"]


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"cores": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
            "platform": platform.platform(), "loadavg": load}


def commit() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def dirty() -> bool | None:
    try:
        r = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return bool(r.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything written to fd 1 (e.g. TensorFlow's converter chatter) to
    stderr meanwhile, so that ``--json`` stdout holds exactly one object."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def log(*a) -> None:
    """Progress lines go to stderr, so that ``--json`` stdout holds one object."""
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- statistics
def pct(values: Iterable[float], digits: int = 1) -> dict[str, Any]:
    """n, p50, p95, max (None when there are no values): the stream's own
    :func:`stream_ser.session.percentiles`, rounded for a report."""
    from stream_ser.session import percentiles

    v = [x for x in values if x is not None]
    if not v:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {"n": len(v)} | {k: round(x, digits) for k, x in percentiles(v).items()}


def target(name: str, value: float | None, op: str, limit: float, unit: str = "") -> dict[str, Any]:
    """A target record: met is None when the figure could not be measured."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        met = None
    else:
        met = {"<=": value <= limit, ">=": value >= limit, "<": value < limit, ">": value > limit, "==": value == limit}[op]
    return {"name": name, "value": value, "op": op, "limit": limit, "unit": unit, "met": met}


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 10 ** -digits):
            return f"{v:.2e}"
        return f"{v:.0f}" if abs(v) >= 1000 else f"{round(v, digits)}"
    return str(v)


def table(rows: list[list[Any]], header: list[str] | None = None) -> str:
    cells = [[fmt(c) for c in r] for r in ([header] if header else []) + rows]
    if not cells:
        return ""
    w = [max(len(r[i]) for r in cells if i < len(r)) for i in range(max(len(r) for r in cells))]
    out = []
    for k, r in enumerate(cells):
        out.append("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)).rstrip())
        if header and k == 0:
            out.append("  ".join("-" * x for x in w))
    return "\n".join(out)


def targets_table(targets: list[dict[str, Any]]) -> str:
    rows = []
    for t in targets:
        status = "n/a" if t["met"] is None else ("met" if t["met"] else "MISSED")
        rows.append([t["name"], f"{fmt(t['value'])} {t['unit']}".strip(), f"{t['op']} {fmt(t['limit'])} {t['unit']}".strip(), status])
    return table(rows, ["target", "figure", "goal", ""])


def finish(name: str, result: dict[str, Any], as_json: bool, text: str | Callable[[], str] = "",
           show_targets: bool = True) -> dict[str, Any]:
    """Stamp ``result`` (machine, commit, when), write bench/results/<name>.json,
    and print either ``text`` (a readable table) or exactly one JSON object."""
    out = {"bench": name, "machine": machine(), "commit": commit(), "dirty": dirty(), "when": now_iso(), **result}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(out, indent=1, default=_jsonable) + "\n")
    if as_json:
        print(json.dumps(out, default=_jsonable))
    else:
        print(text() if callable(text) else text)
        if show_targets and out.get("targets"):
            print()
            print(targets_table(out["targets"]))
        m = out["machine"]
        print(f"\n{m['cores']} cores, {m['cpu']}, python {m['python']}, load {m['loadavg']}; commit {str(out['commit'])[:10]}"
              f"{' (+local changes)' if out['dirty'] else ''}; written {path.relative_to(ROOT)}")
    return out


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


# ---------------------------------------------------------------- word error rate
def words(text: str) -> list[str]:
    """Case and punctuation folded: lower case, hyphens split words, other
    punctuation dropped (apostrophes inside words kept)."""
    text = text.lower().replace("-", " ").replace("\u2019", "'")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def edits(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(ref: str, hyp: str) -> dict[str, Any]:
    r, h = words(ref), words(hyp)
    e = edits(r, h)
    return {"edits": e, "ref_words": len(r), "hyp_words": len(h), "wer": round(e / max(1, len(r)), 4)}


# ---------------------------------------------------------------- audio
def speech_rows() -> list[dict[str, str]]:
    need_data()
    return list(csv.DictReader(open(SPEECH / "manifest.csv", newline="")))


def load_speech(row: dict[str, str]) -> np.ndarray:
    y, sr = sf.read(SPEECH / row["path"], dtype="float32")
    if y.ndim == 2:
        y = y.mean(axis=1)
    if sr != SR:
        import soxr

        y = soxr.resample(y, sr, SR).astype(np.float32)
    return y


def build_long(path: str | os.PathLike, seconds: float | None = None, gap: float = 1.0,
               rows: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """Join the shared speech recordings with ``gap`` s of silence after each
    into a 16 kHz 16-bit WAV at ``path``.  With ``seconds``, the list repeats
    and the file is exactly that long: only whole recordings, the rest silence
    (so the references are exact).  Returns the path, duration, the joined
    reference text and the spans ``[{"path", "start", "end", "reference"}]``
    in file seconds."""
    rows = rows if rows is not None else speech_rows()
    audio = [(r, load_speech(r)) for r in rows]
    silence = np.zeros(int(gap * SR), np.float32)
    limit = int(seconds * SR) if seconds is not None else None
    parts, spans, t = [], [], 0
    while True:
        added = False
        for r, y in audio:
            if limit is not None and t + len(y) > limit:
                continue  # does not fit whole: try the shorter ones
            parts += [y, silence]
            spans.append({"path": r["path"], "start": t / SR, "end": (t + len(y)) / SR, "reference": r.get("reference_transcript", "")})
            t += len(y) + len(silence)
            added = True
        if limit is None or not added:
            break
    data = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if limit is not None:
        data = np.concatenate([data, np.zeros(max(0, limit - len(data)), np.float32)])[:limit]
    sf.write(str(path), data, SR, subtype="PCM_16")
    return {"path": str(path), "seconds": len(data) / SR, "speech_seconds": round(sum(s["end"] - s["start"] for s in spans), 3),
            "reference": " ".join(s["reference"] for s in spans), "spans": spans}


_TEMPDIRS: list[Path] = []


def tempdir(prefix: str) -> Path:
    """A temporary directory, removed at exit (kept with STREAM_SER_BENCH_KEEP=1)."""
    d = Path(tempfile.mkdtemp(prefix=f"stream-ser-bench-{prefix}-"))
    _TEMPDIRS.append(d)
    return d


@atexit.register
def _cleanup() -> None:
    if os.environ.get("STREAM_SER_BENCH_KEEP"):
        return
    for d in _TEMPDIRS:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- events
def read_events(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete JSON line of a JSONL file (a partial last line is skipped)."""
    out = []
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return out
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


class EventTail:
    """Reads a growing JSONL file incrementally (complete lines only)."""

    def __init__(self, path: str | os.PathLike):
        self.path, self._pos, self.events = Path(path), 0, []

    def poll(self) -> list[dict[str, Any]]:
        new = []
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return new
        end = data.rfind(b"\n")
        if end < 0:
            return new
        for line in data[: end + 1].split(b"\n"):
            if line.strip():
                try:
                    new.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        self._pos += end + 1
        self.events += new
        return new


def of_type(events, kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == kind]


def final_transcripts(events) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == "transcript" and e.get("final") and e.get("text", "").strip()]


def last_status(events) -> dict[str, Any] | None:
    s = of_type(events, "status")
    return s[-1] if s else None


def latency_summary(events) -> dict[str, Any]:
    """Latency percentiles (ms) of emotion events, final transcript events
    (commit latency) and partial transcript events, from their latency_ms."""
    return {
        "emotion_ms": pct(e["latency_ms"] for e in of_type(events, "emotion")),
        "transcript_commit_ms": pct(e["latency_ms"] for e in final_transcripts(events)),
        "transcript_partial_ms": pct(e["latency_ms"] for e in of_type(events, "transcript") if not e.get("final")),
    }


def health(status: dict[str, Any] | None) -> dict[str, Any]:
    keys = ("overflows", "dropped_samples", "dropped_windows", "skipped_audio_s", "compute_ratio", "sample_rate", "end")
    return {k: (status or {}).get(k) for k in keys}


# ---------------------------------------------------------------- /proc
def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, from /proc/<pid>/stat."""
    from stream_ser.cpu import stat_seconds

    return stat_seconds(f"/proc/{pid}/stat")


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS (MiB), VmHWM (MiB) and Threads from /proc/<pid>/status."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
            elif k == "Threads":
                out[k] = int(v)
    except OSError:
        pass
    return out


# ---------------------------------------------------------------- stream-ser as a subprocess
def run_cli(args: list[str], jsonl: str | os.PathLike, env: dict | None = None, timeout: float = 3600,
            on_open: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run ``stream-ser ARGS --jsonl JSONL`` to completion.

    Returns returncode, wall_s (launch to exit), cpu_s (the process's own
    user+system time from wait4), cpu_at_open_s (its CPU time when the first
    status event with end > 0 appeared, i.e. once models were loaded and the
    stream opened; None if it ended first), launched_at (wall), events, stderr tail.
    """
    jsonl = Path(jsonl)
    env = dict(env or os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    err_path = jsonl.with_suffix(".stderr")
    with open(err_path, "wb") as err:
        launched = time.time()
        t0 = time.monotonic()
        p = subprocess.Popen(cli_cmd() + list(map(str, args)) + ["--jsonl", str(jsonl)], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=err)
        tail = EventTail(jsonl)
        cpu_open = None
        status = None
        usage = None
        try:
            while True:
                pid, status, usage = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if cpu_open is None and any(e.get("type") == "status" and e.get("end", 0) > 0 for e in tail.poll()):
                    cpu_open = proc_cpu_seconds(p.pid)
                    if on_open:
                        on_open(p.pid)
                if time.monotonic() - t0 > timeout:
                    p.kill()
                    _, status, usage = os.wait4(p.pid, 0)
                    break
                time.sleep(0.01 if cpu_open is None else 0.1)
        except BaseException:
            if p.poll() is None:
                p.kill()
            raise
        wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    stderr = err_path.read_text(errors="replace")
    return {"returncode": p.returncode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "cpu_at_open_s": cpu_open, "max_rss_mib": usage.ru_maxrss / 1024, "launched_at": launched,
            "events": read_events(jsonl), "stderr_tail": re.sub(r"/tmp/\S+", "<tmp>", stderr[-1500:])}


def check_run(run: dict[str, Any], what: str) -> None:
    if run["returncode"] != 0:
        raise RuntimeError(f"{what} exited {run['returncode']}: {run['stderr_tail'][-600:]}")


# ---------------------------------------------------------------- live sessions on the virtual microphone
def need_pulse() -> None:
    from stream_ser.virtual_mic import VirtualMic

    if not VirtualMic.available():
        print("bench: pulseaudio, pactl and paplay are needed for the virtual microphone (GUIDE §2); nothing measured", file=sys.stderr)
        sys.exit(2)


class LiveSession:
    """``stream-ser listen --plain --jsonl`` on a PulseAudio virtual microphone,
    fed with real speech by paplay for ``seconds``, sampled every ``every`` s.

        with LiveSession(seconds=180) as s:
            s.run(on_sample=...)          # blocks until played, then SIGINT
        s.result()

    Samples are dicts: t (wall s since the stream opened), rss_mib, threads,
    cpu_s (the listen process's CPU time), audio_s (latest status end).
    """

    def __init__(self, seconds: float, every: float = 2.0, extra_args: Iterable[str] = (), play_chunk: float = 600.0,
                 settle: float = 4.0, open_timeout: float = 180.0):
        self.seconds, self.every, self.extra_args = seconds, every, list(extra_args)
        self.play_chunk, self.settle, self.open_timeout = play_chunk, settle, open_timeout
        self.dir = tempdir("live")
        self.jsonl = self.dir / "listen.jsonl"
        self.samples: list[dict[str, Any]] = []
        self.mic = None
        self.proc: subprocess.Popen | None = None
        self.tail = EventTail(self.jsonl)
        self.opened_at = None  # wall time of the first status event with end > 0
        self.open_status = None
        self.cpu_open = self.cpu_end = None
        self.returncode = None
        self.exit_s = None
        self.played_s = 0.0
        self.plays = 0
        self.stderr = ""

    def __enter__(self) -> "LiveSession":
        need_pulse()
        from stream_ser.virtual_mic import VirtualMic

        # a chunk that divides the duration, played ceil(seconds / play_chunk) times
        self.planned_plays = max(1, math.ceil(self.seconds / self.play_chunk))
        self.audio = build_long(self.dir / "speech.wav", seconds=self.seconds / self.planned_plays)
        self.mic = VirtualMic().start()
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.mic is not None:
            self.mic.stop()

    def _sample(self) -> dict[str, Any]:
        pid = self.proc.pid
        st = proc_status(pid)
        self.tail.poll()
        status = last_status(self.tail.events)
        s = {"t": round(time.time() - (self.opened_at or time.time()), 2), "rss_mib": round(st["VmRSS"], 1) if "VmRSS" in st else None,
             "threads": st.get("Threads"), "cpu_s": proc_cpu_seconds(pid), "audio_s": status["end"] if status else None}
        self.samples.append(s)
        return s

    def start(self) -> None:
        env = dict(self.mic.env, TF_CPP_MIN_LOG_LEVEL="3")
        self._err = open(self.dir / "listen.stderr", "wb")
        self.launched_at = time.time()
        self.proc = subprocess.Popen(cli_cmd() + ["listen", "--plain", "--jsonl", str(self.jsonl), *self.extra_args], cwd=ROOT,
                                     env=env, stdout=subprocess.DEVNULL, stderr=self._err)
        deadline = time.monotonic() + self.open_timeout
        while time.monotonic() < deadline:
            for e in self.tail.poll():
                if e.get("type") == "status" and e.get("end", 0) > 0 and self.opened_at is None:
                    self.opened_at, self.open_status = e["emitted_at"], e
            if self.opened_at is not None:
                self.cpu_open = proc_cpu_seconds(self.proc.pid)
                self._sample()
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"listen did not open the stream (exit {self.proc.poll()}): {self._stderr_tail()}")

    def _stderr_tail(self) -> str:
        try:
            return (self.dir / "listen.stderr").read_text(errors="replace")[-800:]
        except OSError:
            return ""

    def run(self, on_sample: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Play ``seconds`` of speech (paplay of the built WAV, repeated), sampling
        every ``every`` s; wait ``settle`` s for the last windows and commits;
        sample CPU; SIGINT; wait for the exit."""
        if self.proc is None:
            self.start()
        next_sample = time.monotonic() + self.every
        player = None
        while True:
            now = time.monotonic()
            if player is None or player.poll() is not None:
                if player is not None:
                    if player.returncode != 0:
                        raise RuntimeError(f"paplay exited {player.returncode}")
                    self.played_s += self.audio["seconds"]
                    self.plays += 1
                if self.plays >= self.planned_plays:
                    break
                player = self.mic.play(self.audio["path"])
            if self.proc.poll() is not None:
                raise RuntimeError(f"listen ended early (exit {self.proc.returncode}): {self._stderr_tail()}")
            if now >= next_sample:
                s = self._sample()
                next_sample += self.every
                if on_sample:
                    on_sample(s)
            time.sleep(0.05)
        settle_end = time.monotonic() + self.settle
        while time.monotonic() < settle_end:
            time.sleep(min(self.every, max(0.0, settle_end - time.monotonic())))
            s = self._sample()
            if on_sample:
                on_sample(s)
        last = self._sample()
        self.cpu_end = last["cpu_s"]
        self.audio_end = last["audio_s"]
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.returncode = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
        self.exit_s = time.monotonic() - t0
        self._err.close()
        self.stderr = self._stderr_tail()
        self.tail.poll()

    @property
    def events(self) -> list[dict[str, Any]]:
        return read_events(self.jsonl)

    def result(self, wer_max_words: int = 4000) -> dict[str, Any]:
        """Everything measured.  The transcript's WER against the played
        recordings' references is computed when they have at most
        ``wer_max_words`` words (the word-level edit distance is quadratic)."""
        events = self.events
        ref = " ".join([self.audio["reference"]] * self.plays)
        hyp = " ".join(e["text"].strip() for e in final_transcripts(events))
        transcript_wer = wer(ref, hyp) if len(words(ref)) <= wer_max_words else None
        status = last_status(events)
        audio_open = self.open_status["end"] if self.open_status else 0.0
        audio_span = (self.audio_end or 0.0) - audio_open
        cpu_steady = (self.cpu_end - self.cpu_open) / audio_span if self.cpu_end is not None and self.cpu_open is not None and audio_span > 0 else None
        cpu_total = self.cpu_end / self.audio_end if self.cpu_end is not None and self.audio_end else None
        return {
            "played_s": round(self.played_s, 1),
            "audio_captured_s": status["end"] if status else None,
            "open_s": round(self.opened_at - self.launched_at, 2) if self.opened_at else None,
            "exit_code": self.returncode, "exit_after_sigint_s": round(self.exit_s, 2) if self.exit_s is not None else None,
            "health": health(status),
            "latency": latency_summary(events),
            "counts": {k: len(of_type(events, k)) for k in ("emotion", "transcript", "speech", "status")},
            "final_transcripts": len(final_transcripts(events)),
            "plays": self.plays, "transcript_wer": transcript_wer,
            "cpu": {"at_open_s": self.cpu_open, "at_end_s": self.cpu_end, "audio_from_open_s": round(audio_span, 2),
                    "per_audio_s_steady": round(cpu_steady, 4) if cpu_steady is not None else None,
                    "per_audio_s_incl_load": round(cpu_total, 4) if cpu_total is not None else None},
            "rss": rss_summary(self.samples),
            "samples": self.samples,
            "stderr_tail": re.sub(r"/tmp/\S+", "<tmp>", self.stderr[-600:]),  # no machine paths in results
        }


def rss_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """RSS at stream open and at the end, min/max of the series, growth overall
    and over the second half (the steady state), and the second half's slope."""
    pts = [(s["t"], s["rss_mib"]) for s in samples if s.get("rss_mib") is not None]
    if not pts:
        return {"n": 0}
    t = np.array([p[0] for p in pts], float)
    r = np.array([p[1] for p in pts], float)
    half = t >= t[-1] / 2
    slope = float(np.polyfit(t[half], r[half], 1)[0] * 60) if half.sum() >= 3 and np.ptp(t[half]) > 0 else None
    mid = float(r[half][0])
    return {"n": len(pts), "start_mib": round(float(r[0]), 1), "end_mib": round(float(r[-1]), 1),
            "min_mib": round(float(r.min()), 1), "max_mib": round(float(r.max()), 1),
            "growth_mib": round(float(r[-1] - r[0]), 1), "growth_second_half_mib": round(float(r[-1] - mid), 1),
            "slope_second_half_mib_per_min": round(slope, 2) if slope is not None else None}
