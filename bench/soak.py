"""Soak: bench/live.py for a long time (--minutes, default 60), one line a minute.

The same machinery as live.py (virtual microphone, ``stream-ser listen`` as a
subprocess, real speech played by paplay -- a chunk of at most 10 minutes,
played again and again).  Every minute after the stream opened it prints:
RSS and thread count (/proc/<pid>/status), CPU s per audio s over that minute
(/proc/<pid>/stat over the status events' audio clock), latency p50/p95 of
the emotion and final transcript events emitted in that minute (drift), and
the overflows / dropped samples / dropped windows / skipped transcript audio
so far (latest status event).  At the end, live.py's summary and targets plus
latency drift (last minute's p95 - first minute's p95).

    python bench/soak.py [--minutes 60] [--json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402
import live  # noqa: E402

NAME = "soak"
HEADER = ["min", "RSS MiB", "threads", "CPU/audio", "emo p50", "emo p95", "commit p50", "commit p95", "overflows", "dropped", "drop win", "skipped s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="minutes of speech to play (default 60)")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between /proc samples (default 5)")
    ap.add_argument("--json", action="store_true", help="print one JSON object (minute lines go to stderr)")
    args = ap.parse_args()
    C.need_data()
    C.need_pulse()
    out = sys.stderr if args.json else sys.stdout
    minutes: list[dict] = []
    widths = [4, 8, 7, 9, 8, 8, 10, 10, 9, 8, 8, 9]

    def line(values) -> str:
        return "  ".join(C.fmt(v).rjust(w) for v, w in zip(values, widths))

    with C.LiveSession(seconds=args.minutes * 60, every=args.every) as s:
        state = {"next": 60.0, "cpu": None, "audio": None}

        def on_sample(sample: dict) -> None:
            if sample["t"] < state["next"]:
                return
            k = len(minutes) + 1
            t0, t1 = s.opened_at + state["next"] - 60, s.opened_at + state["next"]
            ev = [e for e in s.tail.events if t0 <= e.get("emitted_at", 0) < t1]
            emo = C.pct(e["latency_ms"] for e in C.of_type(ev, "emotion"))
            com = C.pct(e["latency_ms"] for e in C.final_transcripts(ev))
            h = C.health(C.last_status(s.tail.events))
            cpu_rate = None
            if state["cpu"] is not None and sample["cpu_s"] is not None and sample["audio_s"] and sample["audio_s"] > state["audio"]:
                cpu_rate = round((sample["cpu_s"] - state["cpu"]) / (sample["audio_s"] - state["audio"]), 3)
            state["cpu"], state["audio"] = sample["cpu_s"], sample["audio_s"]
            m = {"minute": k, "t": sample["t"], "rss_mib": sample["rss_mib"], "threads": sample["threads"], "cpu_per_audio_s": cpu_rate,
                 "emotion_ms": emo, "commit_ms": com, "overflows": h["overflows"], "dropped_samples": h["dropped_samples"],
                 "dropped_windows": h["dropped_windows"], "skipped_audio_s": h["skipped_audio_s"]}
            minutes.append(m)
            print(line([k, m["rss_mib"], m["threads"], cpu_rate, emo["p50"], emo["p95"], com["p50"], com["p95"], m["overflows"],
                        m["dropped_samples"], m["dropped_windows"], m["skipped_audio_s"]]), file=out, flush=True)
            state["next"] += 60.0

        C.log(f"soak: listen on the virtual mic, {args.minutes:g} min of speech ...")
        s.start()
        state["cpu"], state["audio"] = s.cpu_open, s.open_status["end"]
        C.log(f"soak: stream open after {s.opened_at - s.launched_at:.1f} s")
        print("  ".join(h.rjust(w) for h, w in zip(HEADER, widths)), file=out, flush=True)
        s.run(on_sample=on_sample)
        r = s.result()
    r["minutes"] = args.minutes
    r["per_minute"] = minutes
    p95s = [m["emotion_ms"]["p95"] for m in minutes if m["emotion_ms"]["p95"] is not None]
    c95s = [m["commit_ms"]["p95"] for m in minutes if m["commit_ms"]["p95"] is not None]
    threads = [m["threads"] for m in minutes if m["threads"] is not None]
    r["drift"] = {"emotion_p95_ms": round(p95s[-1] - p95s[0], 1) if len(p95s) > 1 else None,
                  "commit_p95_ms": round(c95s[-1] - c95s[0], 1) if len(c95s) > 1 else None,
                  "threads": threads[-1] - threads[0] if len(threads) > 1 else None}
    r["targets"] = live.live_targets(r) + [C.target("thread count growth", r["drift"]["threads"], "<=", 0)]

    def text() -> str:
        return (live.report(r, args.minutes) + f"\n\ndrift first -> last minute: emotion p95 {C.fmt(r['drift']['emotion_p95_ms'])} ms, "
                f"commit p95 {C.fmt(r['drift']['commit_p95_ms'])} ms, threads {C.fmt(r['drift']['threads'])}")

    C.finish(NAME, r, args.json, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
