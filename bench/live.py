"""Live capture on a real (virtual) microphone for --minutes of real speech.

Starts a PulseAudio null sink whose monitor is the default input
(tests/virtual_mic.py, GUIDE §2), runs ``stream-ser listen --plain --jsonl X``
on it, waits for the stream to open (first status event with end > 0), plays
the shared speech recordings joined with 1 s gaps into the sink with paplay,
waits a few seconds for the last windows and commits, then SIGINTs listen.

Reports, from the events and /proc/<pid>:
  input overflows, dropped samples / windows, skipped transcript audio (last status event)
  emotion and transcript-commit latency percentiles (latency_ms)
  CPU seconds per audio second of the listen process: /proc/<pid>/stat utime+stime
      just before SIGINT minus at stream open, over the audio captured in between
      ("incl. load": all its CPU time over all captured audio)
  RSS (/proc/<pid>/status VmRSS every few seconds): at stream open, at the end,
      min/max, growth, and growth and slope over the second half of the run
Also the WER of the live transcript against the played recordings' references
(case and punctuation folded), and the transcript audio the transcriber skipped.
Targets: <= 0.30 CPU-s per audio s (issue 21), 0 overflows, 0 dropped (samples, emotion
windows, transcript audio), RSS <= 1.2 GiB and not growing (second-half growth
<= 32 MiB).

    python bench/live.py [--minutes 10] [--json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

NAME = "live"
GROWTH_LIMIT_MIB = 32


def live_targets(r: dict) -> list[dict]:
    h, rss, cpu = r["health"], r["rss"], r["cpu"]
    return [
        C.target("CPU s per audio s (listen, after load)", cpu["per_audio_s_steady"], "<=", 0.30, "s/s"),
        C.target("input overflows", h["overflows"], "==", 0),
        C.target("dropped samples", h["dropped_samples"], "==", 0),
        C.target("dropped emotion windows", h["dropped_windows"], "==", 0),
        C.target("skipped transcript audio", h["skipped_audio_s"], "==", 0, "s"),
        C.target("RSS max", rss.get("max_mib"), "<=", 1228.8, "MiB"),
        C.target("RSS growth, second half", rss.get("growth_second_half_mib"), "<=", GROWTH_LIMIT_MIB, "MiB"),
    ]


def report(r: dict, minutes: float) -> str:
    lat, h, rss, cpu = r["latency"], r["health"], r["rss"], r["cpu"]
    rows = [[label, d["n"], d["p50"], d["p95"], d["max"]] for label, d in (
        ("emotion events", lat["emotion_ms"]), ("transcript commits (final)", lat["transcript_commit_ms"]),
        ("transcript partials", lat["transcript_partial_ms"]))]
    out = [f"listen on the virtual mic: {r['played_s']} s of speech played, {r['audio_captured_s']} s captured at "
           f"{h['sample_rate']} Hz; stream opened {r['open_s']} s after launch; exit {r['exit_code']} "
           f"{r['exit_after_sigint_s']} s after SIGINT\n",
           C.table(rows, ["latency (ms)", "n", "p50", "p95", "max"]), "",
           C.table([["input overflows", h["overflows"]], ["dropped samples", h["dropped_samples"]],
                    ["dropped emotion windows", h["dropped_windows"]], ["skipped transcript audio (s)", h["skipped_audio_s"]],
                    ["transcript WER vs references", (r["transcript_wer"] or {}).get("wer")],
                    ["compute/audio (last status)", " ".join(f"{k} {v}" for k, v in (h["compute_ratio"] or {}).items())],
                    ["CPU s per audio s, after load", cpu["per_audio_s_steady"]],
                    ["CPU s per audio s, incl. load", cpu["per_audio_s_incl_load"]],
                    ["RSS at open / end (MiB)", f"{rss.get('start_mib')} / {rss.get('end_mib')}"],
                    ["RSS min / max (MiB)", f"{rss.get('min_mib')} / {rss.get('max_mib')}"],
                    ["RSS growth all / 2nd half (MiB)", f"{rss.get('growth_mib')} / {rss.get('growth_second_half_mib')}"],
                    ["RSS slope 2nd half (MiB/min)", rss.get("slope_second_half_mib_per_min")],
                    ["threads at end", r["samples"][-1]["threads"] if r["samples"] else None]],
                   ["health", ""])]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="minutes of speech to play (default 10)")
    ap.add_argument("--every", type=float, default=3.0, help="seconds between /proc samples (default 3)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    C.need_data()
    C.need_pulse()
    with C.LiveSession(seconds=args.minutes * 60, every=args.every) as s:
        C.log(f"live: listen on the virtual mic, {args.minutes:g} min of speech ...")
        s.start()
        C.log(f"live: stream open after {s.opened_at - s.launched_at:.1f} s; playing ...")
        s.run()
        r = s.result()
    if r["exit_code"] != 130:
        C.log(f"live: listen exited {r['exit_code']} after SIGINT (expected 130): {r['stderr_tail']}")
    r["targets"] = live_targets(r)
    r["minutes"] = args.minutes
    C.finish(NAME, r, args.json, lambda: report(r, args.minutes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
