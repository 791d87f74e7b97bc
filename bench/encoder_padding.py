"""What the encoder's padding costs and buys: CPU per decode and words, per padding.

faster-whisper pads every decode to whisper's 30 s window; the transcriber
hands the encoder the decoded audio plus ``TranscribeOptions.encoder_padding``
seconds of that padding only.  For each padding (None = the whole 30 s), the
transcriber's own decode (``load_whisper`` and ``decode_kwargs``: temperature 0,
the token bound, faster-whisper's VAD filter) of every shared speech recording
whole and of its first 2 s (as a partial decode sees it), greedy and beam 5.
The paddings take turns recording by recording, so that the machine's load
drifts over all of them alike:

  edits: word errors of the whole-recording decodes against the references
      (``common.wer``: case and punctuation folded), summed over the recordings;
  loops: whole-recording decodes with more than twice the reference's words
      (a sentence repeated to the token bound);
  CPU s per decode: the process's CPU time (every thread), mean over all decodes.

Also the encoder alone: CPU s per encode of jfk's features cut to 3000 (the
whole window), 2000, 1300 (3 s of speech and 10 s of padding) and 1000 frames,
median of ``--runs``.  Texts of the whole-recording decodes are in the JSON.

    python bench/encoder_padding.py [--paddings none,3,5,10,15] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402
import numpy as np  # noqa: E402

NAME = "encoder_padding"
PARTIAL_S = 2.0
ENCODER_FRAMES = (3000, 2000, 1300, 1000)


def measure(paddings: list[float | None], rows: list[dict], audios: list) -> list[dict]:
    from stream_ser.features import SAMPLE_RATE
    from stream_ser.transcribe import TranscribeOptions, decode_kwargs, load_whisper

    o = replace(TranscribeOptions(), device="cpu")
    models = [load_whisper(replace(o, encoder_padding=p)) for p in paddings]
    for m in models:
        list(m.transcribe(audios[0][: SAMPLE_RATE], **decode_kwargs(o, 1.0, 1))[0])  # warm-up
    beams = (o.beam_size, o.final_beam_size)
    acc = {(i, b): {"edits": 0, "ref_words": 0, "loops": 0, "decodes": 0, "cpu_s": 0.0, "texts": []}
           for i in range(len(paddings)) for b in beams}
    for r, audio in zip(rows, audios):
        for beam in beams:
            for i, model in enumerate(models):
                a = acc[i, beam]
                for x in (audio[: int(PARTIAL_S * SAMPLE_RATE)], audio):
                    c0 = time.process_time()
                    segments, _ = model.transcribe(x, **decode_kwargs(o, len(x) / SAMPLE_RATE, beam))
                    text = " ".join(s.text.strip() for s in segments)
                    a["cpu_s"] += time.process_time() - c0
                    a["decodes"] += 1
                w = C.wer(r["reference_transcript"], text)  # the whole recording's decode
                a["edits"] += w["edits"]
                a["ref_words"] += w["ref_words"]
                a["loops"] += len(C.words(text)) > 2 * w["ref_words"]
                a["texts"].append(text)
        C.log(f"encoder_padding: {r['path']} done")
    out = []
    for (i, beam), a in acc.items():
        out.append({"padding_s": paddings[i], "beam": beam, "edits": a["edits"], "ref_words": a["ref_words"],
                    "wer": round(a["edits"] / a["ref_words"], 4), "loops": a["loops"],
                    "cpu_s_per_decode": round(a["cpu_s"] / a["decodes"], 3), "texts": a["texts"]})
    return out


def encoder_alone(runs: int) -> list[dict]:
    """CPU s per encode of jfk's log-mel features cut to a few frame counts."""
    import soundfile as sf
    from faster_whisper.audio import pad_or_trim

    from stream_ser.transcribe import TranscribeOptions, load_whisper

    model = load_whisper(replace(TranscribeOptions(), device="cpu", encoder_padding=None))
    audio, _ = sf.read(C.ROOT / "tests" / "data" / "jfk.flac", dtype="float32")
    features = pad_or_trim(model.feature_extractor(audio))
    out = []
    for frames in ENCODER_FRAMES:
        x = np.ascontiguousarray(features[:, :frames])
        model.encode(x)  # warm-up
        cpu = []
        for _ in range(runs):
            c0 = time.process_time()
            model.encode(x)
            cpu.append(time.process_time() - c0)
        out.append({"frames": frames, "cpu_s": round(statistics.median(cpu), 4)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paddings", default="none,3,5,10,15", help="seconds, comma-separated; none = whole 30 s window")
    ap.add_argument("--runs", type=int, default=5, help="encodes per frame count (median; default 5)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    C.need_data()
    rows = C.speech_rows()
    audios = [C.load_speech(r) for r in rows]
    paddings = [None if p.strip().lower() == "none" else float(p) for p in args.paddings.split(",")]
    table = measure(paddings, rows, audios)
    encodes = encoder_alone(args.runs)
    result = {"recordings": len(rows), "rows": table, "encoder_alone": encodes}
    text = C.table([["30 s window" if r["padding_s"] is None else f'{r["padding_s"]:g} s', r["beam"], r["edits"],
                     f'{100 * r["wer"]:.1f}%', r["loops"], r["cpu_s_per_decode"]] for r in table],
                   ["padding", "beam", "edits", "WER", "loops", "CPU s/decode"]) + "\n\n" + \
        C.table([[e["frames"], e["cpu_s"]] for e in encodes], ["encoder frames", "CPU s/encode"])
    C.finish(NAME, result, args.json, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
