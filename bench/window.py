"""Per-window cost: feature extraction and every form of the emotion model.

On a real 2.5 s window (jfk.flac from 1.0 s), after warm-up, --runs timed calls
each (median and p95, ms) of
  features        the models directory's feature extractor (the 22 tracks, or
                  the whisper encoder's summary) + its normalisation (per
                  session or per window)
  keras predict   model.predict(x, verbose=0)
  keras call      model(x, training=False)
  tf.function     tf.function(lambda x: model(x, training=False))
  tflite f32      tf.lite.Interpreter, num_threads=1
  tflite int8     dynamic-range (TFLiteConverter, Optimize.DEFAULT), num_threads=1
for the models directory's own arch (--models, default the bundled models/)
and the ``paper`` arch (runs/paper/best.keras if it loads, else
stream_ser.training.models.build("paper") with random weights).  Each TFLite
form's max abs difference from Keras is measured on windows from every shared
speech recording.  The MFCC alone is timed at a 1486-point FFT (the frame
length; 2 x 743 is a slow size) and at the 1536 points the extractor uses.
Then the streaming path, EmotionModel(models dir).predict(normalise(extract(window))),
with the model's own normaliser: target < 10 ms median.

    python bench/window.py [--runs 200] [--skip-paper] [--models DIR] [--json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

NAME = "window"


def timeit(fn, runs: int, warm: int = 10) -> dict:
    """Wall ms (median, p95) and process CPU ms (median; all threads) per call."""
    import numpy as np

    for _ in range(warm):
        fn()
    t, c = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1000)
        c.append((time.process_time() - c0) * 1000)
    t = np.array(t)
    return {"median_ms": round(float(np.median(t)), 3), "p95_ms": round(float(np.percentile(t, 95)), 3),
            "cpu_median_ms": round(float(np.median(c)), 3), "runs": runs}


def interpreter(blob: bytes):
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = tf.lite.Interpreter(model_content=blob, num_threads=1)
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]

    def run(x):
        interp.set_tensor(i, x)
        interp.invoke()
        return interp.get_tensor(o)

    return run


def forms(model, x, check, runs: int) -> dict:
    """Time every form of ``model`` on ``x`` (1, 108, 22); TFLite diffs on ``check`` (n, 108, 22)."""
    import numpy as np
    import tensorflow as tf

    from stream_ser.training.export import to_tflite

    out = {"params": int(model.count_params())}
    ref = np.concatenate([model(c[None], training=False).numpy() for c in check])
    xt = tf.constant(x)
    fn = tf.function(lambda v: model(v, training=False), reduce_retracing=True)
    out["keras_predict"] = timeit(lambda: model.predict(x, verbose=0), max(20, runs // 4))
    out["keras_call"] = timeit(lambda: model(xt, training=False), runs)
    out["tf_function"] = timeit(lambda: fn(xt).numpy(), runs)
    for key, quant in (("tflite_f32", False), ("tflite_int8", True)):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blob = to_tflite(model, quant)
        convert_s = time.perf_counter() - t0
        run = interpreter(blob)
        got = np.concatenate([run(c[None]) for c in check])
        out[key] = {**timeit(lambda: run(x), runs), "bytes": len(blob), "convert_s": round(convert_s, 1),
                    "max_abs_diff_vs_keras": float(np.abs(got - ref).max()),
                    "same_argmax": float(np.mean(got.argmax(1) == ref.argmax(1)))}
    return out


def blas_limited(fn):
    """``fn`` run with numpy's BLAS limited to one thread (threadpoolctl), if available."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None

    def run():
        with threadpool_limits(1, user_api="blas"):
            return fn()

    return run


def measure(args) -> dict:
    rows = C.speech_rows()
    import numpy as np

    from stream_ser.emotion import EmotionModel
    from stream_ser.features import SAMPLE_RATE, WINDOW_SAMPLES, normaliser
    from stream_ser.training.normalise import spec_for

    models = Path(args.models)
    spec = spec_for(models)
    em = EmotionModel(models)  # its features: the 22 tracks, or the whisper encoder's summary
    raw_features = em.extract

    def extract(y):  # what the stream does for one window of a fresh session
        return normaliser(spec)(raw_features(y))

    jfk = C.load_speech(next(r for r in rows if r["path"] == "jfk.flac"))
    window = jfk[SAMPLE_RATE: SAMPLE_RATE + WINDOW_SAMPLES]
    # one window from every recording (zero-padded if short) for the TFLite diffs
    check_audio = [np.pad(y, (0, WINDOW_SAMPLES - len(y))) for y in (C.load_speech(r)[:WINDOW_SAMPLES] for r in rows)]
    check = np.stack([extract(a) for a in check_audio]).astype(np.float32)
    x = extract(window)[None].astype(np.float32)
    result: dict = {"window": "jfk.flac 1.0-3.5 s", "runs": args.runs, "normalisation": spec["kind"], "features_kind": em.features,
                    "models": C.shown_path(models)}
    C.log("window: features ...")
    result["features"] = timeit(lambda: extract(window), args.runs)
    limited = blas_limited(lambda: extract(window))
    if limited:
        result["features_blas1"] = timeit(limited, args.runs)
    # why the MFCC's FFT is zero-padded: the same MFCC call at both FFT sizes
    import librosa

    from stream_ser.features import FRAME_LENGTH, HOP_LENGTH, N_FFT, N_MFCC

    def mfcc(n_fft):
        return lambda: librosa.feature.mfcc(y=window, sr=SAMPLE_RATE, n_mfcc=N_MFCC, n_fft=n_fft,
                                            win_length=FRAME_LENGTH, hop_length=HOP_LENGTH, n_mels=64)
    result["mfcc_by_fft_size"] = {str(n): timeit(mfcc(n), args.runs) for n in (FRAME_LENGTH, N_FFT)}

    import keras
    import tensorflow as tf

    result["tensorflow"] = tf.__version__
    archs = {}
    model_path = models / "emotion.keras"
    if model_path.is_file():
        m = keras.models.load_model(model_path, compile=False)
        arch = m.name.removeprefix("ser_")
        C.log(f"window: {arch} ({C.shown_path(model_path)}) ...")
        archs[arch] = {"source": C.shown_path(model_path), **forms(m, x, check, args.runs)}
    else:
        C.log(f"window: {model_path} not found; its arch skipped")
    if not args.skip_paper:
        from stream_ser.training.models import build

        ckpt = C.ROOT / "runs" / "paper" / "best.keras"
        m, source = None, "stream_ser.training.models.build('paper'), random weights"
        if ckpt.is_file():
            try:
                m, source = keras.models.load_model(ckpt, compile=False), str(ckpt.relative_to(C.ROOT))
            except Exception as e:  # e.g. being written by a training run right now
                C.log(f"window: {ckpt} did not load ({str(e).splitlines()[0][:120]}); using random weights")
        if m is None:
            m = build("paper", n_classes=7)
        C.log(f"window: paper ({source}) ...")
        if em.features == "mfcc":
            archs["paper"] = {"source": source, **forms(m, x, check, args.runs)}
        else:  # the paper's CNN reads the 22 tracks, per window normalised here
            from stream_ser.features import extract as tracks

            paper_check = np.stack([tracks(a) for a in check_audio]).astype(np.float32)
            archs["paper"] = {"source": source, **forms(m, tracks(window)[None].astype(np.float32), paper_check, args.runs)}
    result["archs"] = archs

    C.log("window: streaming path EmotionModel(models).predict(normalise(extract(window))) ...")
    norm = em.new_normaliser()  # one session, as the emotion worker holds it
    result["stream_path"] = {"form": em.form, "file": C.shown_path(Path(em.path)),
                             **timeit(lambda: em.predict(norm(raw_features(window))), args.runs)}
    limited = blas_limited(lambda: em.predict(norm(raw_features(window))))
    if limited:
        result["stream_path_blas1"] = timeit(limited, args.runs)
    # what the model weighs on disk; a "whisper" model also reads the bundled ASR model's encoder
    files = {p.name: p for p in (models / "emotion.keras", models / "emotion.tflite") if p.is_file()}
    if em.features == "whisper":
        from stream_ser.whisper_states import default_model_path

        files["whisper tiny.en model.bin (bundled ASR model)"] = Path(default_model_path()) / "model.bin"
    result["files_mb"] = {k: round(p.stat().st_size / 1e6, 2) for k, p in files.items()}
    result["targets"] = [C.target("stream path (features + model) median", result["stream_path"]["median_ms"], "<", 10, "ms")]
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="timed calls per form (after 10 warm-up calls; predict uses runs/4)")
    ap.add_argument("--skip-paper", action="store_true", help="only the models directory's own arch")
    ap.add_argument("--models", default=str(C.ROOT / "models"), metavar="DIR", help="emotion models directory (default: the bundled models/)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    C.need_data()
    with C.stdout_to_stderr():  # the TFLite converter prints to stdout
        result = measure(args)
    archs = result["archs"]

    def text() -> str:
        def row(label, d, diff=None, mb=None):
            return [label, d["median_ms"], d["p95_ms"], d["cpu_median_ms"], diff, mb]

        rows = [row(f"features ({result['features_kind']} + {result['normalisation']} normalisation)", result["features"])]
        if "features_blas1" in result:
            rows.append(row("features, numpy BLAS 1 thread", result["features_blas1"]))
        for n, d in result["mfcc_by_fft_size"].items():
            rows.append(row(f"MFCC alone, {n}-point FFT", d))
        for a, v in archs.items():
            for k in ("keras_predict", "keras_call", "tf_function", "tflite_f32", "tflite_int8"):
                rows.append(row(f"{a} ({v['params']:,} params) {k}", v[k], v[k].get("max_abs_diff_vs_keras"),
                                v[k]["bytes"] / 1e6 if "bytes" in v[k] else None))
        sp = result["stream_path"]
        rows.append(row(f"stream path: features + EmotionModel ({sp['form']})", sp))
        if "stream_path_blas1" in result:
            rows.append(row("stream path, numpy BLAS 1 thread", result["stream_path_blas1"]))
        out = [f"one 2.5 s window ({result['window']}), {args.runs} runs after warm-up; TF {result['tensorflow']}, TFLite num_threads=1\n",
               C.table(rows, ["form", "median ms", "p95 ms", "CPU ms", "max |diff| vs keras", "MB"])]
        for a, v in archs.items():
            out.append(f"{a}: {v['source']}")
        out.append("on disk: " + ", ".join(f"{k} {v} MB" for k, v in result["files_mb"].items()))
        return "\n".join(out)

    # another models directory's figures go beside the bundled model's, never over them
    bundled = Path(args.models).resolve() == (C.ROOT / "models").resolve()
    C.finish(NAME if bundled else f"{NAME}_{Path(args.models).resolve().name}", result, args.json, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
