"""Emotion and transcript-commit latency of a real-time replay.

Replays real speech (the shared speech recordings joined with 1 s gaps, or
--file) through ``stream-ser replay --speed 1 --plain --jsonl`` -- the same
code path as ``listen`` -- and reports the events' own latency_ms:
emotion events, and final transcript events (the commit latency: emission
minus the capture time of the last committed word's audio).

    python bench/latency.py [--file X] [--json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

NAME = "latency"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", help="audio file to replay (default: the shared speech recordings joined with 1 s gaps)")
    ap.add_argument("--speed", type=float, default=1.0, help="replay speed (default 1: real-time pace)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    tmp = C.tempdir(NAME)
    if args.file:
        path, audio_s = Path(args.file), None
    else:
        C.need_data()
        built = C.build_long(tmp / "joined.wav")
        path, audio_s = Path(built["path"]), built["seconds"]
    C.log(f"latency: replaying {path.name} at speed {args.speed} ...")
    run = C.run_cli(["replay", path, "--speed", args.speed, "--plain"], tmp / "events.jsonl")
    C.check_run(run, "stream-ser replay")
    ev = run["events"]
    lat = C.latency_summary(ev)
    status = C.last_status(ev)
    emo, com = lat["emotion_ms"], lat["transcript_commit_ms"]
    targets = [
        C.target("emotion latency p95", emo["p95"], "<=", 30, "ms"),
        C.target("transcript commit latency p50", com["p50"] / 1000 if com["p50"] is not None else None, "<=", 1.5, "s"),
        C.target("transcript commit latency p95", com["p95"] / 1000 if com["p95"] is not None else None, "<=", 2.5, "s"),
    ]
    result = {
        "file": str(path) if args.file else "shared speech joined with 1 s gaps",
        "speed": args.speed,
        "audio_s": status["end"] if status else audio_s,
        "latency": lat,
        "counts": {k: len(C.of_type(ev, k)) for k in ("emotion", "transcript", "speech", "status")},
        "final_transcripts": len(C.final_transcripts(ev)),
        "health": C.health(status),
        "wall_s": round(run["wall_s"], 2),
        "targets": targets,
    }

    def text() -> str:
        rows = [[label, d["n"], d["p50"], d["p95"], d["max"]] for label, d in (
            ("emotion events", emo), ("transcript commits (final)", com), ("transcript partials", lat["transcript_partial_ms"]))]
        return (f"replay {path.name} at speed {args.speed}: {result['audio_s']} s of audio, wall {result['wall_s']} s\n\n"
                + C.table(rows, ["latency (ms)", "n", "p50", "p95", "max"]))

    C.finish(NAME, result, args.json, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
