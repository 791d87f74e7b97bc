"""Derive the Windower's lead from the paper's 0.6 s clip offset.

The paper's windows start 0.6 s into each RAVDESS clip.  The stream's windows
start ``lead`` before the VAD onset, so lead = (median VAD onset of the training
clips) - 0.6 s.  Prints the onset distribution and the lead.

    python bench/window_lead.py [--json]
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stream_ser.features import SAMPLE_RATE  # noqa: E402
from stream_ser.vad import VadGate  # noqa: E402
from stream_ser.windows import WindowOptions  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ser"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    onsets, missed = [], 0
    for row in csv.DictReader(open(DATA / "manifest.csv")):
        if row["split"] != "train":
            continue
        audio, _ = sf.read(DATA / row["path"], dtype="float32")
        gate = VadGate()
        starts = [u.sample for u in gate.push(audio) + gate.flush() if u.kind == "start"]
        if starts:
            onsets.append(starts[0] / SAMPLE_RATE)
        else:
            missed += 1
    onsets = np.array(onsets)
    offset = WindowOptions().offset
    result = {
        "clips": len(onsets) + missed,
        "no_onset": missed,
        "onset_p10": round(float(np.percentile(onsets, 10)), 3),
        "onset_median": round(float(np.median(onsets)), 3),
        "onset_p90": round(float(np.percentile(onsets, 90)), 3),
        "paper_offset": offset,
        "lead": round(float(np.median(onsets)) - offset, 3),
        "lead_in_use": WindowOptions().lead,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>14}: {v}")


if __name__ == "__main__":
    main()
