"""Generated command lines and audio for the property tests (tests/test_fuzz.py)
and ``bench/fuzz.py``: one case generator, two drivers.

A case is a replay command line over a generated recording (rate, channels,
format and sample type, length from 0 to minutes, NaN/Inf/huge/DC content)
with generated numeric options and output paths (new, existing, the input, a
symlink to it, two outputs on one path, empty, a directory, /dev/full, a
missing directory ...).  :func:`check_case` runs it and returns what broke:

- the run ends within a bound, with exit code 0, 1 or 2 (130/143 for a signal);
- no traceback on stderr;
- every line of every JSONL it leaves parses strictly (no NaN/Infinity);
- the input recording is byte for byte unchanged, and so is every file that
  existed before, if the run failed at start (exit 2); a failed run never
  leaves an existing output empty; no ``.partial`` file is left behind.

Runs are in-process through ``stream_ser.cli.main(argv)`` with the models
loaded once (:func:`shared_models`), or as real subprocesses.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
JFK = ROOT / "tests" / "data" / "jfk.flac"
OK_CODES = {0, 1, 2}
SIGNAL_CODES = {130, 143}

RATES = (8000, 11025, 16000, 22050, 44100, 48000, 96000, 4000, 7999, 192000)
SUBTYPES = {  # format: sample types
    "WAV": ("PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT", "DOUBLE"),
    "FLAC": ("PCM_16", "PCM_24"),
    "OGG": ("VORBIS",),
}
SECONDS = (0.0, 0.001, 0.02, 0.3, 1.0, 2.5, 2.5, 4.0, 4.0, 11.0, 11.0, 20.0)
LONG_SECONDS = (60.0, 150.0)
NUMBERS = ("nan", "inf", "-inf", "-1", "0", "1e-6", "1e305", "-1e305", "abc", "", "1e-320", "0x10")
HOPS = ("1", "0.5", "0.25", "0.01", "0.0099", "60", "61") + NUMBERS
SPEEDS = ("0", "1000", "0.0099", "1001") + NUMBERS  # valid ones are fast: real-time pace is for the signal tests
BIASES = ("0", "1", "-3", "20", "20.5", "-20") + NUMBERS
VAD_MODES = ("0", "1", "3", "4", "-1", "1.5", "nan")
OUTPUT_KINDS = ("new", "existing", "input", "input-link", "same", "empty", "directory", "missing-dir", "dev-full",
                "dev-null", "relative-input", "dangling-link")


class Draw:
    """What a case generator may ask for.  Subclassed for Hypothesis (``st.data()``)
    and for a seeded ``numpy`` generator (bench/fuzz.py)."""

    def choice(self, seq):
        raise NotImplementedError

    def uniform(self, lo: float, hi: float) -> float:
        raise NotImplementedError

    def chance(self, p: float) -> bool:
        return self.uniform(0.0, 1.0) < p


class RandomDraw(Draw):
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def uniform(self, lo, hi):
        return float(self.rng.uniform(lo, hi))


class HypothesisDraw(Draw):
    def __init__(self, data):
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def choice(self, seq):
        return self.data.draw(self.st.sampled_from(list(seq)))

    def uniform(self, lo, hi):
        return self.data.draw(self.st.floats(lo, hi, allow_nan=False, allow_infinity=False))


@dataclass
class Audio:
    kind: str = "speech"  # speech, tone, noise, silence
    rate: int = 16000
    channels: int = 1
    format: str = "WAV"
    subtype: str = "PCM_16"
    seconds: float = 2.5
    nan_every: int = 0  # every k-th sample NaN (0: none)
    infs: int = 0  # this many +-Inf samples
    scale: float = 1.0
    dc: float = 0.0
    extension: str = ".wav"

    def samples(self, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        n = int(round(self.seconds * self.rate))
        if self.kind == "speech":
            import soxr

            y, sr = sf.read(JFK, dtype="float32")
            y = soxr.resample(y, sr, self.rate) if sr != self.rate else y
            x = np.resize(y, n).astype(np.float64)
        elif self.kind == "tone":
            x = 0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / self.rate)
        elif self.kind == "noise":
            x = 0.3 * rng.standard_normal(n)
        else:
            x = np.zeros(n)
        x = np.repeat(x[:, None], self.channels, axis=1) * self.scale + self.dc
        if self.channels > 1:
            x[:, 1:] *= 0.9
        if self.nan_every and n:
            x[:: self.nan_every] = np.nan
        if self.infs and n:
            idx = rng.integers(0, n, self.infs)
            x[idx, 0] = np.where(rng.random(self.infs) < 0.5, np.inf, -np.inf)
        return x

    def write(self, path: Path, seed: int = 0) -> Path:
        x = self.samples(seed)
        if self.subtype not in ("FLOAT", "DOUBLE"):
            x = np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        # in blocks: libsndfile's Vorbis encoder crashes on a long recording written in one call
        with sf.SoundFile(path, "w", self.rate, self.channels, self.subtype, format=self.format) as f:
            for i in range(0, len(x), 32768):
                f.write(x[i:i + 32768])
        return path


def draw_audio(d: Draw, long: bool = False) -> Audio:
    fmt = d.choice(("WAV", "WAV", "WAV", "FLAC", "OGG"))
    a = Audio(kind=d.choice(("speech", "speech", "tone", "noise", "silence")),
              rate=d.choice(RATES), channels=d.choice((1, 1, 2, 3, 6)), format=fmt, subtype=d.choice(SUBTYPES[fmt]),
              seconds=d.choice(LONG_SECONDS if long else SECONDS))
    if fmt == "OGG" and a.rate > 48000:  # libsndfile's Vorbis encoder refuses higher rates
        a.rate = 48000
    if a.subtype in ("FLOAT", "DOUBLE"):
        a.nan_every = d.choice((0, 0, 1, 7, 1000))
        a.infs = d.choice((0, 0, 1, 5))
        a.scale = d.choice((1.0, 1.0, 1e-6, 40.0, 3e4, 1e30))
    a.dc = d.choice((0.0, 0.0, 0.1, 0.5, -1.5))
    a.extension = d.choice((".wav", ".wav", ".flac", ".mp3", ".txt", "")) if d.chance(0.2) else \
        {"WAV": ".wav", "FLAC": ".flac", "OGG": ".ogg"}[fmt]
    return a


@dataclass
class Case:
    audio: Audio
    options: list[str] = field(default_factory=list)  # without the input and outputs
    outputs: dict[str, str] = field(default_factory=dict)  # kind -> OUTPUT_KINDS entry
    append: bool = False
    transcript: bool = False
    seed: int = 0

    def describe(self) -> str:
        return json.dumps({"audio": self.audio.__dict__, "options": self.options, "outputs": self.outputs,
                           "append": self.append, "transcript": self.transcript, "seed": self.seed})


def draw_case(d: Draw, seed: int = 0, long: bool = False, transcript_chance: float = 0.15) -> Case:
    c = Case(audio=draw_audio(d, long), seed=seed, transcript=d.chance(transcript_chance))
    opts = ["--speed", d.choice(SPEEDS) if d.chance(0.1) else "0"]
    for flag, values, p in (("--hop", HOPS, 0.3), ("--neutral-bias", BIASES, 0.15), ("--vad-mode", VAD_MODES, 0.1)):
        if d.chance(p):  # a valid value three times in four
            opts.append(f"{flag}={d.choice(values[:len(values) // 2] if d.chance(0.75) else values)}")
    if not c.transcript:
        opts.append("--no-transcript")
    elif d.chance(0.2):
        opts += ["--asr-model", d.choice(("tiny.en", "@input", "/nonexistent/model", "@dir", "no-such-model"))]
    if d.chance(0.05):
        opts += ["--models", d.choice(("@input", "@dir", "/nonexistent"))]
    c.options = opts
    for kind, p in (("jsonl", 0.8), ("srt", 0.3 if c.transcript else 0.02), ("vtt", 0.2 if c.transcript else 0.02)):
        if d.chance(p):
            c.outputs[kind] = d.choice(OUTPUT_KINDS) if d.chance(0.15) else d.choice(("new", "existing", "dev-null"))
    c.append = d.chance(0.08)
    return c


OLD_JSONL = '{"type":"old","n":1}\n{"type":"old","n":2}\n'
OLD_TEXT = "1\n00:00:00,000 --> 00:00:01,000\nyesterday\n\n"


def materialise(case: Case, where: Path) -> tuple[list[str], Path, list[Path]]:
    """Write the case's files into ``where``; returns (argv, the input, files that existed before)."""
    where.mkdir(parents=True, exist_ok=True)
    src = case.audio.write(where / f"in.{case.audio.format.lower()}", case.seed)
    if case.audio.extension != src.suffix:
        src = src.rename(where / f"in{case.audio.extension}")
    (where / "adir").mkdir(exist_ok=True)
    before = [src]
    argv = ["replay", str(src)]
    for o in case.options:
        argv.append(str(src) if o == "@input" else str(where / "adir") if o == "@dir" else o)
    for kind, what in case.outputs.items():
        path = where / f"out.{kind}"
        if what == "existing":
            path.write_text(OLD_JSONL if kind == "jsonl" else OLD_TEXT)
            before.append(path)
        elif what == "input":
            path = src
        elif what == "input-link":
            path = where / f"link.{kind}"
            path.symlink_to(src.name)
        elif what == "relative-input":
            path = Path(os.path.relpath(src))
        elif what == "same":
            path = where / "same.out"
        elif what == "empty":
            path = Path("")
        elif what == "directory":
            path = where / "adir"
        elif what == "missing-dir":
            path = where / "nowhere" / f"out.{kind}"
        elif what == "dev-full":
            path = Path("/dev/full")
        elif what == "dev-null":
            path = Path("/dev/null")
        elif what == "dangling-link":
            path = where / f"dangling.{kind}"
            path.symlink_to("nowhere-yet")
        argv += [f"--{kind}", str(path) if what != "empty" else ""]
    if case.append:
        argv.append("--append")
    return argv, src, before


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _strict(text: str) -> list[str]:
    """Lines of ``text`` that are not strict JSON objects."""
    def refuse(name):
        raise ValueError(name)

    bad = []
    for line in text.splitlines():
        try:
            if not isinstance(json.loads(line, parse_constant=refuse), dict):
                bad.append(line)
        except ValueError:
            bad.append(line)
    return bad


def _written_lines(path: Path, before: tuple[str, int] | None) -> list[str]:
    """The lines this run wrote into ``path``: none if it is unchanged, the tail
    after the old content if it was appended to, else every line."""
    data = path.read_bytes()
    if before is not None:
        digest, size = before
        if hashlib.sha256(data).hexdigest() == digest:
            return []
        if hashlib.sha256(data[:size]).hexdigest() == digest:
            data = data[size:]
    return data.decode(errors="replace").splitlines()


def _off_contract(lines: list[str]) -> list[str]:
    """Events (strict JSON lines) that break the shipped event schema."""
    try:
        import jsonschema
    except ImportError:  # the dev extra is not installed: nothing to check with
        return []
    from stream_ser import schema

    validator = jsonschema.Draft202012Validator(schema.load())
    out = []
    loose = set(_strict("\n".join(lines)))  # reported as not strict JSON
    for line in lines:
        if line in loose:
            continue
        event = json.loads(line)
        out += [f"{line[:80]}...: {e.message}" for e in validator.iter_errors(event)][:1]
    return out


def judge(code, stderr: str, elapsed: float, bound: float, where: Path, before: dict[Path, tuple[str, int]],
          jsonl_paths: list[Path], inputs: list[Path], codes=OK_CODES) -> list[str]:
    """What broke in one finished run (empty: nothing)."""
    problems = []
    started = any(l.startswith("session: ") for l in stderr.splitlines())  # the summary: the stream ran
    if code not in codes:
        problems.append(f"exit code {code}")
    if "Traceback" in stderr:
        problems.append("traceback: " + stderr[stderr.index("Traceback"):][-600:])
    if elapsed > bound:
        problems.append(f"took {elapsed:.1f} s (bound {bound:.0f} s)")
    for path, (digest, size) in before.items():
        if not path.exists():
            problems.append(f"{path.name} vanished")
            continue
        now = _digest(path)
        if path in inputs and now != digest:
            problems.append(f"input {path.name} changed")
        elif code == 2 and now != digest and not started:
            problems.append(f"{path.name} changed by a run that failed at start")
        elif code not in (0,) and size and path.stat().st_size == 0:
            problems.append(f"{path.name} emptied by a failed run")
    for p in jsonl_paths:
        if p.is_file() and not any(os.path.samefile(p, i) for i in inputs):
            bad = _strict(p.read_text(errors="replace"))
            if bad:
                problems.append(f"{p.name}: {len(bad)} lines not strict JSON, e.g. {bad[0][:120]!r}")
            off = _off_contract(_written_lines(p, before.get(p)))
            if off:
                problems.append(f"{p.name}: {len(off)} events not in the event schema, e.g. {off[0]}")
    leftovers = [f.name for f in where.rglob("*.partial")]
    if leftovers:
        problems.append(f"left behind {leftovers}")
    return problems


def _snapshot(files: list[Path]) -> dict[Path, tuple[str, int]]:
    return {f: (_digest(f), f.stat().st_size) for f in files if f.is_file()}


def _bound(case: Case) -> float:
    return 60.0 + case.audio.seconds * (0.5 if case.transcript else 0.1)


@contextlib.contextmanager
def shared_models():
    """Models loaded once for every in-process run: ``EmotionModel`` and
    ``load_whisper`` as the pipeline sees them are cached by their arguments
    (a bad path still fails as it would)."""
    import stream_ser.pipeline as pipeline

    real_emotion, real_whisper = pipeline.EmotionModel, pipeline.load_whisper
    emotions, whispers = {}, {}

    def emotion(models_dir, neutral_bias=None, **kw):
        key = (str(models_dir), neutral_bias)
        if key not in emotions:
            emotions[key] = real_emotion(models_dir, neutral_bias=neutral_bias, **kw)
        return emotions[key]

    def whisper(options):
        if options.model not in whispers:
            whispers[options.model] = real_whisper(options)
        return whispers[options.model]

    pipeline.EmotionModel, pipeline.load_whisper = emotion, whisper
    try:
        yield
    finally:
        pipeline.EmotionModel, pipeline.load_whisper = real_emotion, real_whisper


def run_in_process(argv: list[str]) -> tuple[int, str, str]:
    """``stream_ser.cli.main(argv)`` with stdout and stderr captured; an exception
    that escapes ``main`` is reported as a traceback on stderr."""
    import traceback

    from stream_ser.cli import main

    out, err = io.StringIO(), io.StringIO()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse
                code = e.code if isinstance(e.code, int) else 2
            except BaseException:
                traceback.print_exc(file=err)
                code = -1
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    return code, out.getvalue(), err.getvalue()


@dataclass
class Result:
    code: object
    problems: list[str]
    seconds: float
    message: str  # the last line on stderr


def check_case(case: Case, where: Path, subprocess_run: bool = False) -> Result:
    """Run one case (in-process unless ``subprocess_run``) and judge it."""
    cwd = os.getcwd()
    where.mkdir(parents=True, exist_ok=True)
    os.chdir(where)  # relative paths resolve beside the case
    try:
        argv, src, before_files = materialise(case, where)
        before = _snapshot(before_files)
        jsonl = [Path(argv[i + 1]) for i, a in enumerate(argv) if a == "--jsonl" and argv[i + 1]]
        t0 = time.monotonic()
        if subprocess_run:
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
            try:
                r = subprocess.run([sys.executable, "-m", "stream_ser", *argv], capture_output=True, text=True,
                                   timeout=_bound(case) + 30, env=env)
                code, err = r.returncode, r.stderr
            except subprocess.TimeoutExpired:
                code, err = "timeout", ""
        else:
            code, _, err = run_in_process(argv)
        elapsed = time.monotonic() - t0
        problems = judge(code, err, elapsed, _bound(case), where, before, jsonl, [src])
        return Result(code, problems, elapsed, (err.strip().splitlines() or [""])[-1])
    finally:
        os.chdir(cwd)
