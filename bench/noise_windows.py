"""Where the windows fall when noise is under the voice: the VAD and windower
run on the degraded clip, as ``replay`` of it would (evaluate's "noisy"
condition), against the same clip clean.  No model: this measures what the
emotion model is handed, not what it makes of it.

For every 3rd clip of ../shared/data/ser, at 10 dB under the clip's P.56
active speech level (:func:`stream_ser.training.augment.add_noise`): white
noise, and babble (three clips of other speakers of the clip's split, as
evaluate draws it).  Per condition: windows per clip, the share of the
speaker's speech (the clean clip's first VAD onset to its last end) that some
window covers, the share of window audio inside that speech, and where the
first window starts.

    python bench/noise_windows.py [--snr 10] [--json]

The printout quoted in models/MODEL_CARD.md is models/runs/noise_windows.txt.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402,F401  (puts the checkout first on sys.path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snr", type=float, default=10.0, help="dB under the P.56 speech level (default 10)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import soundfile as sf

    from stream_ser.sources import condition
    from stream_ser.training.augment import add_noise
    from stream_ser.training.dataset import DEFAULT_DATA, _speech_bounds, read_manifest
    from stream_ser.windows import clip_windows

    every = 3
    clips = read_manifest(DEFAULT_DATA)
    audio = {i: sf.read(c.path, dtype="float32")[0] for i, c in enumerate(clips)}
    rng = np.random.default_rng(0)
    rows = {"clean": [], "white": [], "babble": []}
    for i in range(0, len(clips), every):
        clip, y = clips[i], condition(audio[i])
        s0, s1 = _speech_bounds(y)
        pool = [j for j, c in enumerate(clips) if c.split == clip.split and c.speaker != clip.speaker]
        babble = [audio[j] for j in rng.choice(pool, 3, replace=False)]
        for kind in rows:
            z = y if kind == "clean" else condition(add_noise(y, rng, snr_db=args.snr, babble=babble if kind == "babble" else None))
            windows = clip_windows(z)
            covered = np.zeros(len(z), bool)
            inside = []
            for w in windows:
                covered[w.start : w.end] = True
                inside.append(max(0, min(w.end, s1) - max(w.start, s0)) / (w.end - w.start))
            rows[kind].append((len(windows), covered[s0:s1].mean() if s1 > s0 else 0.0,
                               float(np.mean(inside)) if inside else np.nan, windows[0].start_s if windows else np.nan))

    result = {"clips": len(rows["clean"]), "snr_db": args.snr, "conditions": {}}
    for kind, v in rows.items():
        v = np.array(v, dtype=float)
        result["conditions"][kind] = {
            "windows_per_clip": round(float(v[:, 0].mean()), 2),
            "clips_without_window": int((v[:, 0] == 0).sum()),
            "speech_covered": round(float(v[:, 1].mean()), 3),
            "window_audio_in_speech": round(float(np.nanmean(v[:, 2])), 3),
            "first_window_start_s_median": round(float(np.nanmedian(v[:, 3])), 2),
        }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['clips']} clips (every {every}rd of {DEFAULT_DATA.name}/manifest.csv), noise {args.snr:g} dB under the P.56 level;"
          " VAD and windows on each condition's own audio")
    print(f"{'condition':<10} {'windows/clip':>12} {'no window':>10} {'speech covered':>15} {'window audio in speech':>23} {'first window starts (median s)':>31}")
    for kind, s in result["conditions"].items():
        print(f"{kind:<10} {s['windows_per_clip']:>12.2f} {s['clips_without_window']:>10d} {s['speech_covered']:>15.3f}"
              f" {s['window_audio_in_speech']:>23.3f} {s['first_window_start_s_median']:>31.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
