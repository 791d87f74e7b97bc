"""What one transcriber decode costs with 1 and 2 CTranslate2 threads.

The transcriber's own decode call (``Transcriber._decode``'s options: greedy
partials and beam-5 finals, word timestamps, faster-whisper's VAD filter,
temperature 0) on 2, 5 and 10 s of jfk.flac, with the bundled tiny.en (int8)
loaded as the transcriber loads it (``load_whisper``, its encoder padding
included) with ``cpu_threads`` 1 and then 2.  Per setting: wall time and the
process's CPU time (every thread) per decode, median of ``--runs``.  This is
what ``TranscribeOptions.cpu_threads`` was chosen by; run it on a quiet
machine (CPU time per decode rises when the other core is busy).

    python bench/decode_threads.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

NAME = "decode_threads"
SECONDS = (2, 5, 10)


def measure(threads: int, runs: int) -> list[dict]:
    import soundfile as sf
    from dataclasses import replace

    from stream_ser.transcribe import TranscribeOptions, decode_kwargs, load_whisper

    o = TranscribeOptions()
    audio, rate = sf.read(C.ROOT / "tests" / "data" / "jfk.flac", dtype="float32")
    model = load_whisper(replace(o, device="cpu", cpu_threads=threads))

    def decode(x, beam):
        segments, _ = model.transcribe(x, **decode_kwargs(o, len(x) / rate, beam))
        return list(segments)

    decode(audio[: 2 * rate], 1)  # warm-up
    rows = []
    for seconds in SECONDS:
        for beam in (o.beam_size, o.final_beam_size):
            wall, cpu = [], []
            for _ in range(runs):
                c0, t0 = time.process_time(), time.perf_counter()
                decode(audio[: seconds * rate], beam)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            rows.append({"threads": threads, "audio_s": seconds, "beam": beam,
                         "wall_s": round(statistics.median(wall), 3), "cpu_s": round(statistics.median(cpu), 3)})
            C.log(f"decode_threads: {threads} thread(s), {seconds} s, beam {beam}: "
                  f"wall {rows[-1]['wall_s']} s, CPU {rows[-1]['cpu_s']} s")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="decodes per setting (median; default 5)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    rows = measure(1, args.runs) + measure(2, args.runs)
    one = {(r["audio_s"], r["beam"]): r for r in rows if r["threads"] == 1}
    two = {(r["audio_s"], r["beam"]): r for r in rows if r["threads"] == 2}
    ratio = {f"{s} s beam {b}": {"cpu_2_over_1": round(two[s, b]["cpu_s"] / one[s, b]["cpu_s"], 2),
                                  "wall_2_over_1": round(two[s, b]["wall_s"] / one[s, b]["wall_s"], 2)} for s, b in one}
    result = {"runs": args.runs, "rows": rows, "two_threads_over_one": ratio}
    text = C.table([[r["threads"], r["audio_s"], r["beam"], r["wall_s"], r["cpu_s"]] for r in rows],
                   ["threads", "audio s", "beam", "wall s", "CPU s"])
    C.finish(NAME, result, args.json, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
