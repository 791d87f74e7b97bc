"""Throughput of ``--speed 0`` replay: how much faster than real time, and the
CPU it costs per second of audio.

A long file (the shared speech recordings joined with 1 s gaps, repeated to
--minutes) is replayed as fast as possible three ways:
  both models     ``stream-ser replay LONG --speed 0 --plain --jsonl X`` (subprocess)
  emotion only    the same with ``--no-transcript`` (subprocess)
  transcript only in-process ``stream_ser.pipeline.Pipeline(FileSource(LONG, speed=0))``
                  with the emotion model replaced by a constant stub (no TensorFlow;
                  VAD, windowing and features still run), timed with
                  time.perf_counter / time.process_time around the event loop.
Figures:
  x real time (stream)   audio seconds (final status end) / wall seconds from the
                         first status event (stream open) to the final one
                         (models already loaded); "end to end" includes the load.
  CPU s / audio s        subprocess: its own user+system time (wait4) minus its CPU
                         time when the stream opened (/proc/<pid>/stat), per audio second;
                         in-process: time.process_time() over the event loop.
  stage compute/audio    the final status event's compute_ratio.
Targets: >= 15x with both models, >= 200x emotion only (stream figures).

    python bench/throughput.py [--minutes 10] [--json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

NAME = "throughput"


def from_run(run: dict) -> dict:
    ev = run["events"]
    statuses = C.of_type(ev, "status")
    final = statuses[-1] if statuses else None
    first = next((s for s in statuses if s["end"] > 0), None)
    audio = final["end"] if final else None
    stream_wall = final["emitted_at"] - first["emitted_at"] if final and first else None
    cpu_stream = run["cpu_s"] - run["cpu_at_open_s"] if run["cpu_at_open_s"] is not None else None
    return {
        "audio_s": audio,
        "wall_s_end_to_end": round(run["wall_s"], 2),
        "wall_s_stream": round(stream_wall, 2) if stream_wall is not None else None,
        "x_realtime_stream": round(audio / stream_wall, 1) if audio and stream_wall else None,
        "x_realtime_end_to_end": round(audio / run["wall_s"], 1) if audio else None,
        "cpu_s_total": round(run["cpu_s"], 2),
        "cpu_s_stream": round(cpu_stream, 2) if cpu_stream is not None else None,
        "cpu_per_audio_s_stream": round(cpu_stream / audio, 4) if cpu_stream is not None and audio else None,
        "cpu_per_audio_s_end_to_end": round(run["cpu_s"] / audio, 4) if audio else None,
        "compute_ratio": final.get("compute_ratio") if final else None,
        "max_rss_mib": round(run["max_rss_mib"], 1),
        "events": {k: len(C.of_type(ev, k)) for k in ("emotion", "transcript", "speech", "status")},
        "health": C.health(final),
    }


class _ConstantEmotion:
    """Stands in for the emotion CNN in the transcript-only run."""

    labels = ("neutral",)

    def __init__(self):
        from stream_ser.features import raw_features

        self.extract = raw_features  # the 22 tracks still run, as the docstring says

    def new_normaliser(self):
        from stream_ser.features import normalise

        return normalise

    def predict(self, features):
        import numpy as np

        return np.ones(1)


def transcript_only(path: str) -> dict:
    from stream_ser.pipeline import Pipeline, PipelineOptions
    from stream_ser.sources import FileSource

    t_load = time.perf_counter()
    pipe = Pipeline(FileSource(path, speed=0), PipelineOptions(), emotion_model=_ConstantEmotion())
    load_s = time.perf_counter() - t_load
    counts: dict[str, int] = {}
    final = None
    c0, w0 = time.process_time(), time.perf_counter()
    for ev in pipe.events():
        counts[ev.type] = counts.get(ev.type, 0) + 1
        if ev.type == "status":
            final = ev
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    audio = final.end
    return {
        "audio_s": audio, "load_s": round(load_s, 2), "wall_s_stream": round(wall, 2),
        "x_realtime_stream": round(audio / wall, 1), "cpu_s_stream": round(cpu, 2),
        "cpu_per_audio_s_stream": round(cpu / audio, 4), "compute_ratio": dict(final.compute_ratio), "events": counts,
        "health": {"overflows": final.overflows, "dropped_samples": final.dropped_samples,
                   "dropped_windows": final.dropped_windows, "skipped_audio_s": final.skipped_audio_s},
        "method": "in-process Pipeline, emotion CNN stubbed (features still computed), process_time over the event loop",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the replayed file (default 10)")
    ap.add_argument("--skip-transcript-only", action="store_true", help="skip the in-process transcript-only run")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    C.need_data()
    tmp = C.tempdir(NAME)
    built = C.build_long(tmp / "long.wav", seconds=args.minutes * 60)
    C.log(f"throughput: {built['seconds']:.0f} s file ({built['speech_seconds']:.0f} s in recordings); both models ...")
    runs = {}
    r = C.run_cli(["replay", built["path"], "--speed", "0", "--plain"], tmp / "both.jsonl")
    C.check_run(r, "replay --speed 0 (both models)")
    runs["both"] = from_run(r)
    C.log("throughput: emotion only ...")
    r = C.run_cli(["replay", built["path"], "--speed", "0", "--plain", "--no-transcript"], tmp / "emotion.jsonl")
    C.check_run(r, "replay --speed 0 --no-transcript")
    runs["emotion_only"] = from_run(r)
    if not args.skip_transcript_only:
        C.log("throughput: transcript only (in-process) ...")
        with C.stdout_to_stderr():
            runs["transcript_only"] = transcript_only(built["path"])
    both_tr = (runs["both"]["compute_ratio"] or {}).get("transcript")
    runs["transcript_from_both"] = {
        "compute_ratio": both_tr, "x_realtime_compute": round(1 / both_tr, 1) if both_tr else None,
        "method": "the both-models run's final status compute_ratio['transcript'] (the transcriber's decode seconds / audio seconds)"}
    targets = [
        C.target("x real time, both models", runs["both"]["x_realtime_stream"], ">=", 15, "x"),
        C.target("x real time, emotion only", runs["emotion_only"]["x_realtime_stream"], ">=", 200, "x"),
    ]
    result = {"minutes": args.minutes, "audio_s": built["seconds"], "speech_s": built["speech_seconds"], "runs": runs, "targets": targets}

    def text() -> str:
        rows = []
        for label, key in (("both models", "both"), ("emotion only", "emotion_only"), ("transcript only (in-process)", "transcript_only")):
            x = runs.get(key)
            if not x:
                continue
            cr = x.get("compute_ratio") or {}
            rows.append([label, x["audio_s"], x["x_realtime_stream"], x.get("x_realtime_end_to_end"), x["cpu_per_audio_s_stream"],
                         x.get("cpu_per_audio_s_end_to_end"), cr.get("emotion"), cr.get("transcript")])
        rows.append(["transcript (both run's ratio)", None, runs["transcript_from_both"]["x_realtime_compute"], None, None, None, None, both_tr])
        return (f"--speed 0 replay of {built['seconds']:.0f} s ({args.minutes:g} min) of joined speech\n\n"
                + C.table(rows, ["run", "audio s", "x RT stream", "x RT e2e", "CPU/audio", "CPU/audio e2e", "emo c/a", "asr c/a"]))

    C.finish(NAME, result, args.json, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
