"""Write the README's generated blocks: the performance table from
``bench/results/*.json`` (every target a bench script recorded, with its date,
machine and load) and the events reference from the shipped event schema.

    python bench/readme_table.py            # rewrite them in README.md
    python bench/readme_table.py --check    # exit 1 if README.md is not current

A block sits between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``; the
text around it is hand-written.  ``tests/test_schema.py`` and
``tests/test_readme.py`` check that both blocks are current, so a bench rerun
(or a schema change) is followed by this script.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
# the order a reader meets them; benches not listed follow alphabetically
ORDER = ["latency", "transcript", "throughput", "window", "live", "soak", "api_loop", "startup", "dashboard", "batch"]
SKIP = {"summary"}  # run_all.py's copy of the others' targets


def _marks(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def block(text: str, name: str) -> str:
    """The content of block ``name`` (stripped); ValueError if it is missing."""
    begin, end = _marks(name)
    m = re.search(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S)
    if not m:
        raise ValueError(f"README has no {begin} ... {end} block")
    return m.group(1).strip()


def replace(text: str, name: str, body: str) -> str:
    begin, end = _marks(name)
    block(text, name)  # it must exist
    return re.sub(re.escape(begin) + r"\n.*?" + re.escape(end), lambda _: f"{begin}\n{body.strip()}\n{end}", text, flags=re.S)


def _number(value, unit: str) -> str:
    if isinstance(value, float) and not value.is_integer():
        text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    else:
        text = f"{int(value)}"
    return f"{text}{unit}" if unit in ("x", "%") else f"{text} {unit}".strip()


def _results() -> list[dict]:
    found = {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json")) if p.stem not in SKIP}
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    # a script's second run is kept under another name (serve_run2.json): the script is the JSON's own "bench"
    return [found[n] | {"bench": found[n].get("bench") or n, "file": n} for n in names]


def performance() -> str:
    """The performance table: one row per recorded target."""
    rows, machines = [], set()
    for r in _results():
        m = r.get("machine", {})
        machines.add(f"{m.get('cores', '?')} cores ({m.get('cpu', '?')}), Python {m.get('python', '?')}")
        load = m.get("loadavg") or ["?"]
        for t in r.get("targets", []):
            unit = t.get("unit", "")
            commit = (r.get("commit") or "?")[:7] + ("+" if r.get("dirty") else "")
            run = "" if r["file"] == r["bench"] else f" ({r['file']}.json)"
            rows.append(f"| {t['name']} | {_number(t['value'], unit)} | {t['op']} {_number(t['limit'], unit)} | "
                        f"{'yes' if t['met'] else '**no**'} | `bench/{r['bench']}.py`{run} | {r.get('when', '?')[:10]} | {commit} | {load[0]} |")
    head = [f"Measured on {'; '.join(sorted(machines))}, no GPU. \"load\" is the machine's 1-minute load average when the",
            "script wrote its results (on 2 cores, above 2 means other work was competing); \"commit\" the code measured (+: with uncommitted changes). The runs",
            "and details of each row: `bench/results/<script>.json`.",
            "", "| what | measured | target | met | script | date | commit | load |", "|---|---|---|---|---|---|---|---|"]
    return "\n".join(head + rows)


def events() -> str:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from stream_ser import schema

    return schema.markdown()


BLOCKS = {"performance": performance, "events": events}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only check; exit 1 if README.md is not current")
    args = p.parse_args(argv)
    text = README.read_text()
    new = text
    for name, make in BLOCKS.items():
        new = replace(new, name, make())
    if args.check:
        stale = [n for n in BLOCKS if block(text, n) != block(new, n)]
        if stale:
            print(f"README.md: {', '.join(stale)} not current: run `python bench/readme_table.py`", file=sys.stderr)
            return 1
        return 0
    if new != text:
        README.write_text(new)
        print("README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
