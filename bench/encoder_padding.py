"""What the encoder's padding costs and buys: CPU per decode and words, per padding.

faster-whisper pads every decode to whisper's 30 s window; the transcriber
hands the encoder the decoded audio plus ``TranscribeOptions.encoder_padding``
seconds of that padding only.  For each padding (None = the whole 30 s), the
transcriber's own decode (``load_whisper`` and ``decode_kwargs``: temperature 0,
the token bound, faster-whisper's VAD filter) of every shared speech recording
whole and of its first 2 s (as a partial decode sees it), greedy and beam 5:

  edits: word errors of the whole-recording decodes against the references
      (``common.wer``: case and punctuation folded), summed over the recordings;
  loops: whole-recording decodes with more than twice the reference's words
      (a sentence repeated to the token bound);
  CPU s per decode: the process's CPU time (every thread), mean over all decodes.

    python bench/encoder_padding.py [--paddings none,3,5,10,15] [--json]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

NAME = "encoder_padding"
PARTIAL_S = 2.0


def measure(padding: float | None, rows: list[dict], audios: list) -> list[dict]:
    from stream_ser.features import SAMPLE_RATE
    from stream_ser.transcribe import TranscribeOptions, decode_kwargs, load_whisper

    o = replace(TranscribeOptions(), device="cpu", encoder_padding=padding)
    model = load_whisper(o)
    list(model.transcribe(audios[0][: SAMPLE_RATE], **decode_kwargs(o, 1.0, 1))[0])  # warm-up
    out = []
    for beam in (o.beam_size, o.final_beam_size):
        edits = ref_words = loops = decodes = 0
        c0 = time.process_time()
        for r, audio in zip(rows, audios):
            for x in (audio[: int(PARTIAL_S * SAMPLE_RATE)], audio):
                segments, _ = model.transcribe(x, **decode_kwargs(o, len(x) / SAMPLE_RATE, beam))
                text = " ".join(s.text.strip() for s in segments)
                decodes += 1
            w = C.wer(r["reference_transcript"], text)  # the whole recording's decode
            edits, ref_words = edits + w["edits"], ref_words + w["ref_words"]
            loops += len(C.words(text)) > 2 * w["ref_words"]
        row = {"padding_s": padding, "beam": beam, "edits": edits, "ref_words": ref_words,
               "wer": round(edits / ref_words, 4), "loops": loops,
               "cpu_s_per_decode": round((time.process_time() - c0) / decodes, 3)}
        C.log(f"encoder_padding: {row}")
        out.append(row)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paddings", default="none,3,5,10,15", help="seconds, comma-separated; none = whole 30 s window")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    C.need_data()
    rows = C.speech_rows()
    audios = [C.load_speech(r) for r in rows]
    paddings = [None if p.strip().lower() == "none" else float(p) for p in args.paddings.split(",")]
    table = [r for p in paddings for r in measure(p, rows, audios)]
    result = {"recordings": len(rows), "rows": table}
    text = C.table([["30 s window" if r["padding_s"] is None else f'{r["padding_s"]:g} s', r["beam"], r["edits"],
                     f'{100 * r["wer"]:.1f}%', r["loops"], r["cpu_s_per_decode"]] for r in table],
                   ["padding", "beam", "edits", "WER", "loops", "CPU s/decode"])
    C.finish(NAME, result, args.json, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
