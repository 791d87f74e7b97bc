"""Throughput of ``stream-ser batch``: audio hours per wall hour for 1 and 2
local workers (emotion only, and both models), Ray against the local engine on
the same cores, and start-up per worker.

The archive: --files recordings, each the shared speech recordings joined
with 1 s gaps (build_long), rotated so that no two are the same, together
--minutes-emotion (emotion only) or --minutes-both (both models) of audio.
Each configuration runs ``stream_ser.batch.run_batch`` into a fresh output
directory (so every recording is analysed and every output written, as a
user's batch does).  A Ray head (``ray start --head --block --node-ip-address
127.0.0.1 --num-cpus <cores>``, tests/ray_head.py, with RAY_worker_niceness=0:
Ray otherwise runs its workers at nice 15, and on a shared machine that
measures the other users' load rather than the engine) is started for the Ray
rows and stopped after, by its own process id.

Figures:
  audio h / wall h (work)   audio / seconds from the first recording handed out
                            (every worker has loaded its models by then) to the
                            last result saved (start-up excluded; outputs included)
  audio h / wall h (total)  audio / the whole run_batch call (start-up included)
  start-up per worker       spawn (local) or actor creation (Ray) to models
                            loaded, mean over the workers of the run
  2 vs 1 worker             ratio of the work throughputs, within one round of one run
                            (--rounds N: every configuration N times, interleaved, so that
                            the other users' load drifts over all alike; the median ratio)
  Ray vs local              Ray work throughput / local, same workers and cores
  CPU s / audio s           the workers' CPU time on the recordings (process_time around
                            each, all threads; start-up excluded) per audio second: if 2
                            workers spend what 1 does, a shortfall from 2x is not work
                            the engine added
  cores used                that CPU time / work seconds: the share of the 2 cores the
                            workers got (the rest went to the machine's other load)
  load                      /proc/loadavg before each configuration, and the
                            share of the machine's CPU busy during it (/proc/stat):
                            the machine is shared, so read the ratios with it
Targets: 2 workers >= 1.7x one (emotion only); Ray within 15% of local.

    python bench/batch.py [--files 8] [--minutes-emotion 24] [--minutes-both 8] [--rounds 1] [--no-ray] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import resource
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402
import numpy as np  # noqa: E402
from tests.ray_head import ray_head  # noqa: E402

NAME = "batch"


def cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = f[3] + f[4]
    return sum(f) - idle, sum(f)


def build_archive(folder: Path, files: int, minutes: float) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    rows = C.speech_rows()
    total = 0.0
    for i in range(files):
        k = i % len(rows)
        info = C.build_long(folder / f"call{i:02d}.wav", seconds=minutes * 60 / files, rows=rows[k:] + rows[:k])
        total += info["seconds"]
    return total


def run(folder: Path, workers: int, transcript: bool, ray: str | None) -> dict:
    from stream_ser.batch import BatchOptions, run_batch
    from stream_ser.ray_engine import make_engine
    from stream_ser.pipeline import PipelineOptions

    out = C.tempdir("batch-out")
    load = open("/proc/loadavg").read().split()[:3]
    b0 = cpu_busy()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    opts = BatchOptions(out=str(out), pipeline=PipelineOptions(transcript=transcript), workers=workers, ray=ray)
    def engine(*args):  # all workers loaded before the first recording: work time apart from start-up
        e = make_engine(*args)
        e.wait_ready()
        return e

    with open(os.devnull, "w") as quiet:
        r = run_batch([str(folder)], opts, stream=quiet, tty=False, engine_factory=engine)
    b1 = cpu_busy()
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    # CPU of the local workers (children, reaped when the engine closes) and of this driver; Ray's actors are not ours
    cpu = [round(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime, 2) for a, b in zip(c0, c1)]
    shutil.rmtree(out, ignore_errors=True)
    if r.failed or r.analysed != r.total:
        raise SystemExit(f"bench: {r.failed} recordings failed in the {r.engine} run")
    audio_h = r.audio_seconds / 3600
    return {
        "engine": r.engine, "workers": workers, "transcript": transcript, "recordings": r.analysed,
        "audio_h": round(audio_h, 4), "work_s": round(r.work_seconds, 2), "total_s": round(r.wall_seconds, 2),
        "audio_h_per_wall_h_work": round(audio_h / (r.work_seconds / 3600), 1),
        "audio_h_per_wall_h_total": round(audio_h / (r.wall_seconds / 3600), 1),
        "startup_s_per_worker": round(sum(r.startup) / len(r.startup), 2) if r.startup else None,
        "startup_s": [round(s, 2) for s in r.startup],
        "cpu_s_workers_with_startup": cpu[0] if r.engine == "local" else None, "cpu_s_driver": cpu[1],
        "cpu_s_work": round(r.cpu_seconds, 2), "work_cpu_s_per_audio_s": round(r.cpu_seconds / r.audio_seconds, 4),
        "work_cores": round(r.cpu_seconds / r.work_seconds, 2),
        "loadavg_before": load, "machine_cpu_busy": round((b1[0] - b0[0]) / max(1, b1[1] - b0[1]), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--minutes-emotion", type=float, default=24.0, help="audio in the emotion-only archive")
    ap.add_argument("--minutes-both", type=float, default=8.0, help="audio in the both-models archive")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every configuration, interleaved; ratios are per round, and their median is reported")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    C.need_data()
    cores = os.cpu_count() or 1
    two = min(2, cores)
    configs = [(False, 1, None), (False, two, None), (False, two, "ray"), (True, 1, None), (True, two, None), (True, two, "ray")]
    if a.no_ray:
        configs = [c for c in configs if c[2] is None]
    with C.stdout_to_stderr():
        emo, both = C.tempdir("batch-emo"), C.tempdir("batch-both")
        sizes = {"emotion_only_audio_s": build_archive(emo, a.files, a.minutes_emotion),
                 "both_audio_s": build_archive(both, a.files, a.minutes_both)}
        runs = []
        # the workers import this checkout; ray.init would swap 127.0.0.1 for the machine's address without the second
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        head = ray_head(two, dict(os.environ, PYTHONPATH=str(C.ROOT))) if not a.no_ray else contextlib.nullcontext()
        with head as address:
            for k in range(a.rounds):
                for transcript, workers, engine in configs:
                    C.log(f"round {k + 1}: {engine or 'local'}, {workers} worker(s), {'both models' if transcript else 'emotion only'}")
                    r = run(both if transcript else emo, workers, transcript, address if engine else None)
                    runs.append({"round": k + 1, **r})

    def pick(k, engine, workers, transcript):
        return next((r for r in runs if r["round"] == k and r["engine"] == engine and r["workers"] == workers
                     and r["transcript"] == transcript), None)

    per_round: dict[str, list] = {}
    for k in range(1, a.rounds + 1):
        for transcript, key in ((False, "emotion_only"), (True, "both")):
            one, many, ray = pick(k, "local", 1, transcript), pick(k, "local", two, transcript), pick(k, "ray", two, transcript)
            per_round.setdefault(f"local_{two}_vs_1_{key}", []).append(
                round(many["audio_h_per_wall_h_work"] / one["audio_h_per_wall_h_work"], 2))
            if ray:
                per_round.setdefault(f"ray_vs_local_{key}", []).append(
                    round(ray["audio_h_per_wall_h_work"] / many["audio_h_per_wall_h_work"], 3))
    ratios = {k: float(np.median(v)) for k, v in per_round.items()}
    targets = [C.target(f"{two} local workers vs 1, emotion only (median of rounds)", ratios[f"local_{two}_vs_1_emotion_only"], ">=", 1.7, "x")]
    if "ray_vs_local_emotion_only" in ratios:
        targets.append(C.target("Ray vs local, emotion only (median of rounds)", ratios["ray_vs_local_emotion_only"], ">=", 0.85, "x"))
    # sizing: 10,000 h in 24 h on 2-core machines each running two local workers
    def median_rate(transcript):
        return float(np.median([r["audio_h_per_wall_h_work"] for r in runs
                                if r["engine"] == "local" and r["workers"] == two and r["transcript"] == transcript]))

    per_machine, per_machine_emo = median_rate(True), median_rate(False)
    sizing = {"archive_h": 10000, "hours": 24, "audio_h_per_wall_h_per_2core_worker_both": per_machine,
              "workers_2core_both": math.ceil(10000 / (per_machine * 24)),
              "audio_h_per_wall_h_per_2core_worker_emotion": per_machine_emo,
              "workers_2core_emotion": math.ceil(10000 / (per_machine_emo * 24))}
    result = {"sizes": sizes, "rounds": a.rounds, "runs": runs, "ratios_per_round": per_round, "ratios": ratios,
              "sizing": sizing, "targets": targets}

    def text() -> str:
        rows = [[r["round"], r["engine"], r["workers"], "both" if r["transcript"] else "emotion", f"{r['audio_h'] * 60:.1f}",
                 r["work_s"], r["audio_h_per_wall_h_work"], r["audio_h_per_wall_h_total"], r["startup_s_per_worker"],
                 r["work_cpu_s_per_audio_s"], r["work_cores"],
                 " ".join(r["loadavg_before"]), f"{r['machine_cpu_busy']:.0%}"] for r in runs]
        out = C.table(rows, ["round", "engine", "workers", "models", "audio min", "work s", "audio h/wall h", "incl. start-up",
                             "start-up s/worker", "CPU s/audio s", "cores used", "load before", "CPU busy"])
        out += "\n\n" + "\n".join(f"{k}: per round {per_round[k]}, median {v}" for k, v in ratios.items())
        out += (f"\nsizing: 10,000 h in a day needs {sizing['workers_2core_both']} 2-core machines with both models "
                f"({per_machine:.0f} audio h per wall h each), {sizing['workers_2core_emotion']} emotion only ({per_machine_emo:.0f})")
        return out

    C.finish(NAME, result, a.json, text)


if __name__ == "__main__":
    main()
