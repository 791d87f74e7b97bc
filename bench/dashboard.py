"""CPU cost of the live dashboard at 10 Hz.

Feeds :class:`stream_ser.dashboard.Dashboard` a synthetic event stream shaped
like a real session (utterances of 2-8 s with pauses; per utterance an emotion
window a second, a partial transcript a second and a final at its end; a status
a second) at real-time pace, while rich Live redraws it at 10 Hz into a
terminal-like Console that writes to /dev/null.  Before measuring, an hour of
history is fed at once (a long call), so the figure covers a full timeline and
transcript, not an empty screen.  Reports the process's CPU seconds per wall
second (time.process_time: Live's refresh thread writing the frames, the
feeder and update()), the time the dashboard takes to produce a frame during
the run (mostly regions replayed from their caches; p95: frames after an
event) and a cold frame (every region drawn afresh, as after a resize).

    python bench/dashboard.py [--seconds 10] [--prefill 3600] [--json]
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

from stream_ser.dashboard import Dashboard  # noqa: E402
from stream_ser.events import EmotionEvent, SpeechEvent, StatusEvent, TranscriptEvent  # noqa: E402
from stream_ser.labels import EMOTIONS  # noqa: E402

NAME = "dashboard"
LABELS = list(EMOTIONS)
WORDS = ("and so my fellow americans ask not what your country can do for you ask what you can do for your "
         "country the quick brown fox jumps over the lazy dog while we talk about the plan for next week").split()


def synthetic(start: float, end: float, rng: random.Random) -> list[tuple[float, object]]:
    """Events of the audio span [start, end) as (audio time they are emitted at, event)."""
    out: list[tuple[float, object]] = []
    t, utt = start, int(start)  # utterance numbers stay unique across calls
    while t < end:
        t += rng.uniform(0.5, 3.0)  # a pause
        length = rng.uniform(2.0, 8.0)
        a, b = t, t + length
        utt += 1
        mood = rng.choice(LABELS)
        out.append((a, SpeechEvent("speech", a, a, 0, 0.5, state="start", utterance=utt)))
        out.append((b, SpeechEvent("speech", b, b, 0, 0.5, state="end", utterance=utt)))
        w = a
        while w + 2.5 <= b + 1.0:  # windows every 1 s, the last one padded past the end
            raw = [rng.random() + (1.5 if k == mood else 0.0) for k in LABELS]
            probs = {k: v / sum(raw) for k, v in zip(LABELS, raw)}
            label = max(probs, key=probs.get)
            lat = rng.uniform(60, 300)
            out.append((w + 2.5 + lat / 1000, EmotionEvent("emotion", w, w + 2.5, 0, lat, label=label, confidence=probs[label],
                                                           probs=probs, window_probs=probs, utterance=utt)))
            w += 1.0
        text = " ".join(rng.choice(WORDS) for _ in range(int(length * 2.5)))
        for k in range(1, int(length)):
            partial = text[: len(text) * k // int(length)]
            out.append((a + k + 0.8, TranscriptEvent("transcript", a, a + k, 0, 800, text=partial, final=False, utterance=utt)))
        out.append((b + 1.5, TranscriptEvent("transcript", a, b, 0, 1500, text=text, final=True,
                                             emotion={"label": mood, "confidence": 0.35}, utterance=utt)))
        t = b
    speech = sorted((e.start, e.state) for _, e in out if isinstance(e, SpeechEvent))
    times = [x for x, _ in speech]
    for s in range(int(start), int(end)):
        k = bisect.bisect_right(times, s + 1.0)  # the speech state at the status's end
        in_speech = k > 0 and speech[k - 1][1] == "start"
        level = rng.uniform(-30, -12) if in_speech else -math.inf
        out.append((s + 1.0, StatusEvent("status", s, s + 1.0, 0, 0, source="synthetic mic", sample_rate=48000,
                                         level_dbfs=level, peak=0.3, compute_ratio={"emotion": 0.1, "transcript": 0.8},
                                         queues={"emotion": 0}, in_speech=in_speech)))
    return sorted((x for x in out if x[0] < end), key=lambda x: x[0])


def measure(width: int, height: int, seconds: float, prefill: float, whole: bool, hz: float, seed: int) -> dict:
    from rich.console import Console

    rng = random.Random(seed)
    null = open(os.devnull, "w")
    console = Console(file=null, force_terminal=True, color_system="256", width=width, height=height)
    dash = Dashboard("synthetic mic", 48000, on_quit=None, console=console, refresh_hz=hz, whole_session=whole)
    for _, ev in synthetic(0.0, prefill, rng):  # history, fed at once
        dash.update(ev)
    live_events = synthetic(prefill, prefill + seconds, rng)

    frames: list[float] = []
    render = dash._render

    def timed_render(*a):
        t0 = time.perf_counter()
        lines = render(*a)
        frames.append((time.perf_counter() - t0) * 1000)
        return lines

    dash._render = timed_render
    # a cold frame (every region rendered afresh, as after a resize), printed synchronously
    cold_ms = []
    for _ in range(10):
        dash._caches.clear()
        t0 = time.perf_counter()
        console.print(dash)
        cold_ms.append((time.perf_counter() - t0) * 1000)
    frames.clear()

    stop = threading.Event()

    def feed():
        t0 = time.monotonic()
        for at, ev in live_events:
            delay = (at - prefill) - (time.monotonic() - t0)
            if delay > 0 and stop.wait(delay):
                return
            ev.emitted_at = time.time()
            dash.update(ev)

    with dash:
        cpu0, wall0 = time.process_time(), time.monotonic()
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        time.sleep(seconds)
        cpu1, wall1 = time.process_time(), time.monotonic()
        stop.set()
    null.close()
    wall = wall1 - wall0
    return {"size": f"{width}x{height}", "timeline": "whole session" if whole else "rolling", "refresh_hz": hz,
            "seconds": round(wall, 2), "frames": len(frames), "achieved_hz": round(len(frames) / wall, 2),
            "events": len(live_events), "cpu_per_wall_s": round((cpu1 - cpu0) / wall, 4),
            "frame_ms": C.pct(frames, 2), "cold_frame_ms": C.pct(cold_ms, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="wall seconds per configuration (default 10)")
    ap.add_argument("--prefill", type=float, default=3600.0, help="seconds of history fed before measuring (default 3600)")
    ap.add_argument("--hz", type=float, default=10.0, help="refresh rate (default 10)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    configs = [(80, 24, False), (160, 48, False), (160, 48, True)]
    runs = []
    for width, height, whole in configs:
        C.log(f"dashboard: {width}x{height}, {'whole session' if whole else 'rolling'}, {args.hz:g} Hz for {args.seconds:g} s ...")
        runs.append(measure(width, height, args.seconds, args.prefill, whole, args.hz, seed=len(runs)))
    worst = max(r["cpu_per_wall_s"] for r in runs)
    result = {"prefill_s": args.prefill, "runs": runs, "cpu_per_wall_s_max": worst,
              "targets": [C.target(f"dashboard CPU at {args.hz:g} Hz (worst size)", round(worst * 100, 2), "<", 5.0, "% of a core")]}

    def text() -> str:
        rows = [[r["size"], r["timeline"], r["achieved_hz"], f"{r['cpu_per_wall_s'] * 100:.2f}%", r["frame_ms"]["p50"],
                 r["frame_ms"]["p95"], r["cold_frame_ms"]["p50"], r["events"]] for r in runs]
        return (f"dashboard at {args.hz:g} Hz into /dev/null, {args.prefill:g} s of history, {args.seconds:g} s each\n\n"
                + C.table(rows, ["terminal", "timeline", "frames/s", "CPU of a core", "frame p50 ms", "p95 ms", "cold frame ms", "events"]))

    C.finish(NAME, result, args.json, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
