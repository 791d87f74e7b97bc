"""The README runs: every shell and Python block is executed (in README order,
in one scratch directory, so later blocks use the files of earlier ones) unless
a marker says why it cannot run here, and what it prints has the documented
shape.  The README's example outputs are checked against the same formats, so
neither the program nor the text can drift alone.

Markers, an HTML comment on the line before a fenced block:
``<!-- readme-test: run NAME -->`` runs it and applies ``CHECKS[NAME]``;
``<!-- readme-test: skip REASON -->`` does not run it (a microphone, an install,
../shared data, hours of CPU); ``<!-- readme-test: pending NAME (REASON) -->``
does not run it yet (a feature on another branch; ``CHECKS[NAME]`` is ready for
when the marker becomes ``run NAME``); ``<!-- readme-test: example NAME -->``
marks an example output that the tests below compare with real output."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import DATA, ROOT, schema_errors

jsonschema = pytest.importorskip("jsonschema")

README = ROOT / "README.md"
FENCE = re.compile(r"(?:<!-- readme-test: (?P<mark>[^>]*?) -->\n)?```(?P<lang>[\w-]*)\n(?P<body>.*?)\n```", re.S)
RUNNABLE = ("sh", "python")

# the documented line formats (README, "Reading the output")
PLAIN_EMOTION = re.compile(r"^\[ *\d+\.\d- *\d+\.\d\] emotion [a-z]+ +[01]\.\d\d  \(\d+ ms\)$")
PLAIN_TRANSCRIPT = re.compile(r"^\[ *\d+\.\d- *\d+\.\d\] (\([a-z]+ [01]\.\d\d\) )?\S.*$")
STATUS = re.compile(r"^status +\d+\.\ds  level (silent|-?\d+ dBFS)  overflows \d+  dropped \d+  compute/audio( [a-z]+ \d+\.\d\d)+(  .+)?$")
SUMMARY = [re.compile(p) for p in (
    r"^session: \S.*, \d+\.\d s of audio \(\d+\.\d s speech\) in \d+\.\d s$",
    r"^emotion windows: \d+ \((no speech|[a-z]+ \d+%(, [a-z]+ \d+%)*)\)$",
    r"^transcript: \d+ words? in \d+ spans?$",
    r"^events: \d+ [a-z]+(, \d+ [a-z]+)*$",
    r"^(emotion|transcript) latency: p50 \d+ ms, p95 \d+ ms, max \d+ ms$",
    r"^input: overflows \d+, dropped samples \d+, dropped windows \d+$",
    r"^events written to: \S.*$",
)]
SRT_CUE = re.compile(r"^\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n\([a-z]+ [01]\.\d\d\) \S.*$")


def blocks() -> list[dict]:
    return [{"mark": m["mark"] or "", "lang": m["lang"], "body": m["body"]} for m in FENCE.finditer(README.read_text())]


def named(kind: str) -> dict[str, dict]:
    out = {}
    for b in blocks():
        words = b["mark"].split()
        if words[:1] == [kind]:
            ok_words = len(words) == 2 or (kind == "pending" and len(words) > 2)
            assert ok_words and words[1] not in out, f"README: a bad or repeated marker {b['mark']!r}"
            out[words[1]] = b
    return out


@pytest.fixture(scope="module")
def validator():
    from stream_ser import schema

    return jsonschema.Draft202012Validator(schema.load())


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    """Every runnable block, in README order, in one scratch directory laid out
    like a clone (``tests/data/jfk.flac``) with ``stream-ser`` on the PATH."""
    work = tmp_path_factory.mktemp("readme")
    (work / "tests" / "data").mkdir(parents=True)
    shutil.copy(DATA / "jfk.flac", work / "tests" / "data" / "jfk.flac")
    bin_dir = work / ".bin"
    bin_dir.mkdir()
    shim = bin_dir / "stream-ser"  # this checkout's code, whatever is installed
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m stream_ser "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    results = {}
    for name, b in named("run").items():
        assert b["lang"] in RUNNABLE, f"README block {name}: cannot run a {b['lang']!r} block"
        cmd = ["bash", "-e", "-o", "pipefail", "-c", b["body"]] if b["lang"] == "sh" else [sys.executable, "-c", b["body"]]
        t0 = time.monotonic()
        results[name] = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        results[name].seconds = time.monotonic() - t0
    return work, results


def ok(r: subprocess.CompletedProcess, name: str) -> None:
    assert r.returncode == 0, f"README block {name}: exit {r.returncode}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, r.stderr[-3000:]


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def check_plain(out: list[str]) -> None:
    bad = [line for line in out if not (PLAIN_EMOTION.match(line) or PLAIN_TRANSCRIPT.match(line))]
    assert not bad, bad
    assert sum(bool(PLAIN_EMOTION.match(line)) for line in out) >= 8


def check_stderr(out: list[str]) -> None:
    bad = [line for line in out if not (STATUS.match(line) or any(p.match(line) for p in SUMMARY))]
    assert not bad, bad
    assert any(STATUS.match(line) for line in out) and any(SUMMARY[0].match(line) for line in out)


def check_events(validator, events: list[dict]) -> None:
    errors = schema_errors(events)
    assert not errors, errors[:5]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# the emotion model's encoder runs int8 in CTranslate2, whose kernels differ by CPU (AVX2, AVX-512, VNNI):
# the same window's confidence can differ in the last printed digit between machines
CONFIDENCE = re.compile(r"(?<=[a-z] )( *)([01]\.\d\d)(?=  \(| *\))")
CONFIDENCE_TOLERANCE = 0.02


def assert_same_output(expected: list[str], got: list[str], message: str) -> None:
    """The same lines, a label's confidence within :data:`CONFIDENCE_TOLERANCE`."""
    shape = lambda line: CONFIDENCE.sub(lambda m: m[1] + "#.##", line)
    values = lambda line: [float(m[2]) for m in CONFIDENCE.finditer(line)]
    assert [shape(x) for x in expected] == [shape(x) for x in got], message
    far = [(a, b) for a, b in zip(expected, got) if any(abs(x - y) > CONFIDENCE_TOLERANCE for x, y in zip(values(a), values(b)))]
    assert not far, f"{message}\nconfidences further apart than {CONFIDENCE_TOLERANCE}: {far}"


# ---- what each runnable block must print or write ---------------------------------

def check_first_run(work, r, validator):
    ok(r, "first-run")
    check_plain(lines(r.stdout))
    check_stderr(lines(r.stderr))
    # the README's examples are this run's output (latencies and wall times aside): a new model or
    # transcriber changes them, and then the README is regenerated from a run, not edited by hand
    ex = named("example")
    timeless = lambda text: [re.sub(r"\(\d+ ms\)$", "(… ms)", line) for line in lines(text)]
    # each kind of line in its own order: how emotion and transcript lines interleave is the two threads' timing
    by_kind = lambda text: sorted(timeless(text), key=lambda line: not PLAIN_EMOTION.match(line))
    assert_same_output(by_kind(ex["plain"]["body"]), by_kind(r.stdout), f"README's plain example is stale (python bench/readme_examples.py); this run printed:\n{r.stdout}")
    counts = re.compile(r"^(emotion windows|transcript|events): ")
    assert [x for x in lines(ex["summary"]["body"]) if counts.match(x)] == [x for x in lines(r.stderr) if counts.match(x)], r.stderr
    srt = (work / "jfk.srt").read_text()
    shown = ex["srt"]["body"].split("\n")
    assert_same_output(shown, srt.split("\n")[: len(shown)], f"README's SRT example is stale (python bench/readme_examples.py); this run wrote:\n{srt}")
    events = read_jsonl(work / "events.jsonl")
    check_events(validator, events)
    assert {e["type"] for e in events} == {"emotion", "transcript", "speech", "status"}
    cues = (work / "jfk.srt").read_text().strip().split("\n\n")
    assert len(cues) >= 3 and all(SRT_CUE.match(c) for c in cues), cues


def check_version(work, r, validator):
    ok(r, "version")
    assert re.fullmatch(r"stream-ser \d+\.\d+\.\d+\S*\n", r.stdout), r.stdout


def check_schema(work, r, validator):
    from stream_ser import schema

    ok(r, "schema")
    assert json.loads((work / "events.schema.json").read_text()) == schema.load()


def check_validate(work, r, validator):
    from stream_ser.events import SCHEMA_VERSION

    ok(r, "validate")
    n = len(read_jsonl(work / "events.jsonl"))
    assert r.stdout == f"{n} events valid, schema {SCHEMA_VERSION}\n", r.stdout


def check_api(work, r, validator):
    ok(r, "api")
    out = lines(r.stdout)
    pattern = re.compile(r"^\d+\.\d+ (\{'label': '[a-z]+', 'confidence': [01]\.\d+\}|None) \S.*$")
    assert len(out) >= 3 and all(pattern.match(line) for line in out), out
    assert "ask not" in r.stdout


def check_pipeline(work, r, validator):
    ok(r, "pipeline")
    m = re.fullmatch(r"(\d+) windows: ([a-z ]+)\n", r.stdout)
    assert m and int(m[1]) == len(m[2].split()) >= 8, r.stdout


def check_batch(work, r, validator):
    ok(r, "batch")
    done = named("example")["batch"]["body"]
    assert done in lines(r.stdout + r.stderr), f"no line {done!r} in:\n{r.stdout}{r.stderr}"
    archive = work / "archive"
    assert (archive / "calls.parquet").is_file() and (archive / "segments.parquet").is_file()
    check_events(validator, read_jsonl(archive / "calls" / "jfk.jsonl"))
    page = (work / "call.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and "plotly" in page.lower()


def check_tables(work, r, validator):
    ok(r, "tables")
    first, second = lines(r.stdout)
    assert re.fullmatch(r"jfk [a-z]+ \d+ None", first), first
    assert re.fullmatch(r"\d+ segments; \[.*'label'.*\]", second), second


def check_subtitles_text(work, r, validator):
    ok(r, "subtitles-text")
    check_plain(lines(r.stdout))
    tagged = (work / "jfk.srt").read_text().strip().split("\n\n")
    clean = (work / "clean.srt").read_text().strip().split("\n\n")
    # the same cues as the first run's, without the "(label conf) " prefix
    assert clean == [re.sub(r"\n\([a-z]+ [01]\.\d\d\) ", "\n", c) for c in tagged], clean


def check_refused(name: str, message: str):
    def check(work, r, validator):
        if r.stderr.startswith("stream-ser: PortAudio is not installed"):
            pytest.skip("no PortAudio library here (.ci/run installs libportaudio2)")
        ok(r, name)  # `|| echo "exit $?"`: the block itself succeeds
        assert r.stdout == "exit 2\n", r.stdout
        assert lines(r.stderr) == [lines(r.stderr)[0]] and lines(r.stderr)[0].startswith(message), r.stderr

    return check


CHECKS = {"first-run": check_first_run, "version": check_version, "schema": check_schema, "validate": check_validate,
          "api": check_api, "pipeline": check_pipeline, "subtitles-text": check_subtitles_text, "batch": check_batch, "tables": check_tables,
          "no-device": check_refused("no-device", "stream-ser: no input device with index 999"),
          "bad-file": check_refused("bad-file", "stream-ser: missing.wav: no such file")}


def test_every_block_runs_or_says_why_not():
    for b in blocks():
        if b["lang"] in RUNNABLE:
            kind, _, rest = b["mark"].partition(" ")
            assert kind in ("run", "skip", "pending") and rest.strip(), f"README block without a readme-test marker:\n{b['body'][:200]}"
    run, pending = set(named("run")), set(named("pending"))
    assert not run & pending and run | pending == set(CHECKS), (run | pending) ^ set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_block(name, ran, validator):
    if name in named("pending"):
        pytest.skip(f"README block {name}: {named('pending')[name]['mark']}")
    work, results = ran
    CHECKS[name](work, results[name], validator)


# ---- the README's example outputs have the formats the program prints -------------

def test_examples_have_the_documented_shape(validator):
    ex = named("example")
    check_plain(lines(ex["plain"]["body"]))
    check_stderr(lines(ex["summary"]["body"]))
    cues = ex["srt"]["body"].split("\n\n")
    assert all(SRT_CUE.match(c) for c in cues), cues
    check_events(validator, [json.loads(line) for line in lines(ex["jsonl"]["body"])])
    # plain lines quoted in the prose are lines of the example (latency aside)
    norm = lambda line: " ".join(re.sub(r"\(\d+ ms\)$", "(… ms)", line.strip()).split())
    shown = {norm(line) for line in lines(ex["plain"]["body"])}
    quoted = [norm(q) for q in re.findall(r"`(\[ *\d[^`]*)`", README.read_text())]
    assert quoted and all(q in shown for q in quoted), [q for q in quoted if q not in shown]


def test_dashboard_example_is_the_dashboard():
    """The README's picture has the frame the dashboard draws at 80x24: its header,
    its panels and legends (rendered here from the README's own JSONL example)."""
    from rich.console import Console

    from stream_ser.dashboard import Dashboard
    from stream_ser.events import event_from_dict

    picture = named("example")["dashboard"]["body"].split("\n")
    assert len(picture) == 24 and max(len(line) for line in picture) <= 80
    dash = Dashboard("jfk.flac", 16000, whole_session=False)  # the rolling timeline, as live and at --speed 1
    for line in lines(named("example")["jsonl"]["body"]):
        dash.update(event_from_dict(json.loads(line)))
    console = Console(record=True, width=80, height=24, file=io.StringIO())
    dash.console = console
    console.print(dash)
    drawn = console.export_text().split("\n")
    header = re.compile(r"^stream-ser  ·  \S+ · 16 kHz  ·  elapsed \d+:\d\d  ·  audio \d+:\d\d +q quit$")
    assert header.match(picture[0]) and header.match(drawn[0]), (picture[0], drawn[0])
    for fixed in ("─ now · utterance ", "─ health ─", "─ emotion timeline · last", "─ transcript · ", "latency ms last"):
        assert any(fixed in line for line in picture) and any(fixed in line for line in drawn), fixed
    legends = [line for line in drawn if "A angry  D disgust" in line or "? uncertain" in line]
    assert legends and all(line in picture for line in legends), legends


def test_generated_blocks_are_current():
    """The performance table matches bench/results and the events tables the schema."""
    sys.path.insert(0, str(ROOT))
    from bench import readme_table

    assert readme_table.main(["--check"]) == 0, "run `python bench/readme_table.py`"


def test_model_card_ravdess_recipe_rebuilds_the_manifest(tmp_path):
    """The model card's script, on one clip per actor of ../shared/data/ser laid out
    as the Zenodo download (Actor_NN/<stem>.wav), writes the shared manifest's rows."""
    import csv

    from .conftest import SER, need_shared

    need_shared()
    card = (ROOT / "models" / "MODEL_CARD.md").read_text()
    section = card[card.index("## How to get RAVDESS and build the manifest to retrain"):]
    script = re.search(r"```python\n(.*?)\n```", section, re.S)[1]
    rows = list(csv.DictReader(open(SER / "manifest.csv", newline="")))
    # one clip per actor, a different emotion and intensity for each
    picked = [[r for r in rows if r["speaker"] == f"ravdess_{a:02d}"][(a * 7) % 60] for a in range(1, 21)]
    for r in picked:
        stem = Path(r["path"]).stem
        (tmp_path / "zenodo" / f"Actor_{stem[-2:]}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "zenodo" / f"Actor_{stem[-2:]}" / f"{stem}.wav").symlink_to(SER / r["path"])
    (tmp_path / "build_ravdess.py").write_text(script)
    run = subprocess.run([sys.executable, "build_ravdess.py", "zenodo", "out"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert list(csv.DictReader(open(tmp_path / "out" / "manifest.csv", newline=""))) == sorted(picked, key=lambda r: r["path"])
    assert all((tmp_path / "out" / r["path"]).is_file() for r in picked)


def test_example_comparison_allows_a_cpus_last_digit_and_nothing_else():
    """assert_same_output lets a confidence move by up to 0.02 (int8 kernels differ
    by CPU) and catches any other difference: a label, a word, a time, a bigger move."""
    readme = ["[   0.0-   2.5] emotion neutral   0.56  (… ms)", "[   0.1-   2.2] (neutral 0.46) And so my fellow Americans."]
    assert CONFIDENCE.findall(readme[0]) == [("  ", "0.56")] and CONFIDENCE.findall(readme[1]) == [("", "0.46")]
    assert_same_output(readme, ["[   0.0-   2.5] emotion neutral   0.55  (… ms)", "[   0.1-   2.2] (neutral 0.48) And so my fellow Americans."], "")
    for changed in (("0.56", "0.53"), ("neutral   0.56", "disgust   0.56"), ("Americans", "American"), ("2.2]", "2.3]"), ("(neutral 0.46)", "(neutral 0.43)")):
        other = [line.replace(*changed) for line in readme]
        assert other != readme
        with pytest.raises(AssertionError):
            assert_same_output(readme, other, "")
