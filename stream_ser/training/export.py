"""Ship a trained model: Keras file, TFLite fast path (checked against Keras),
labels and the normalisation it expects, into a models directory."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..features import FEATURE_NAMES, FRAME_LENGTH, HOP_LENGTH, N_FEATURES, N_FFT, N_FRAMES, SAMPLE_RATE, kind_of, probe
from ..windows import WindowOptions
from .normalise import spec_for, trained_on

TOLERANCE = 1e-3


def to_tflite(model, quantize: bool) -> bytes:
    import tensorflow as tf

    # the converter prints the traced signature (dozens of TensorSpec lines) on stdout
    with contextlib.redirect_stdout(io.StringIO()):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if quantize:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range int8 weights
        return conv.convert()


def tflite_predict(blob: bytes, x: np.ndarray) -> np.ndarray:
    import warnings

    import tensorflow as tf

    from ..quiet import quiet_stderr

    with warnings.catch_warnings(), quiet_stderr():  # the XNNPACK notice, as in the stream
        warnings.simplefilter("ignore")
        interp = tf.lite.Interpreter(model_content=blob, num_threads=1)
        interp.allocate_tensors()
    i, o = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    out = []
    for row in x:
        interp.set_tensor(i, row[None])
        interp.invoke()
        out.append(interp.get_tensor(o)[0])
    return np.array(out)


def ensemble(checkpoints: list[Path]):
    """One Keras model that averages the probabilities of several checkpoints
    (seeds of one recipe): one file, one TFLite invoke per window."""
    import keras

    members = [keras.models.load_model(c, compile=False) for c in checkpoints]
    if len(members) == 1:
        return members[0]
    base = members[0].name
    inp = keras.Input(members[0].input_shape[1:], name="features")
    for i, m in enumerate(members):
        m.name = f"member_{i}"
    out = keras.layers.Average(name="probs_mean")([m(inp) for m in members])
    return keras.Model(inp, out, name=f"{base}_x{len(members)}")


def _with_probe(spec: dict, checkpoint: Path) -> dict:
    if "features_probe" in spec:
        return spec
    # trained before fingerprints were recorded: nothing says which features
    # it saw, so say so, and take this extractor's
    print(f"note: {checkpoint} has no feature fingerprint (trained before they were recorded); labels.json gets this "
          f"extractor's: check that its evaluate scores reproduce", file=sys.stderr)
    return {**spec, "features_probe": probe(kind_of(spec))}


def export(checkpoints: list[Path], out_dir: Path, labels: list[str], check_x: np.ndarray, neutral_bias: float = 0.0) -> dict:
    """Write ``emotion.keras``, ``emotion.tflite`` and ``labels.json`` to ``out_dir``.
    Several checkpoints are averaged into one model; ``neutral_bias`` is its
    neutral log-prior, recorded in ``labels.json`` and applied to the model's
    probabilities by :class:`~stream_ser.emotion.EmotionModel` and ``evaluate``.  The TFLite form is int8
    dynamic-range if its outputs stay within 1e-3 of Keras on ``check_x``,
    else float32; it must agree or nothing is shipped."""
    from .train import predict

    checkpoints = [Path(c) for c in ([checkpoints] if isinstance(checkpoints, (str, Path)) else checkpoints)]
    # each member's fingerprint is checked against this extractor by spec_for
    if len({json.dumps({k: v for k, v in spec_for(c).items() if k != "features_probe"}) for c in checkpoints}) > 1:
        raise ValueError("checkpoints with different normalisations cannot be averaged")
    model = ensemble(checkpoints)
    if neutral_bias and "neutral" not in labels:
        raise ValueError("--neutral-bias needs a 'neutral' class")
    ref = predict(model, check_x)
    chosen = None
    for quantize in (True, False):
        blob = to_tflite(model, quantize)
        diff = float(np.abs(tflite_predict(blob, check_x) - ref).max())
        if diff <= TOLERANCE:
            chosen = (blob, "int8-dynamic" if quantize else "float32", diff)
            break
    if chosen is None:
        raise RuntimeError(f"TFLite outputs differ from Keras by {diff:.2e} > {TOLERANCE}")
    heard = [trained_on(c) for c in checkpoints]  # (splits, speakers) of each member
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / "emotion.keras")
    (out_dir / "emotion.tflite").write_bytes(chosen[0])
    meta = {
        "labels": list(labels),
        "arch": model.name,
        "params": int(model.count_params()),
        "members": [str(c) for c in checkpoints],
        # evaluate refuses speakers this model has heard
        "trained_on": sorted({s for splits, _ in heard for s in splits}),
        "tflite": chosen[1],
        "tflite_max_abs_diff": chosen[2],
        **_input(spec_for(checkpoints[0])),
        # stream_ser.features.normaliser() reads this, and the fingerprint
        # of the features the checkpoint was trained on
        "normalisation": _with_probe(spec_for(checkpoints[0]), checkpoints[0]),
        # added to the neutral log-probability at run time (stream_ser.emotion.reweight)
        "log_prior": {"neutral": neutral_bias},
        "window": WindowOptions().__dict__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    recipes = [_recipe(c) for c in checkpoints]
    if any(recipes):
        meta["recipe"] = recipes  # each member's training options, to retrain it
    if all(speakers is not None for _, speakers in heard):
        meta["train_speakers"] = sorted(set().union(*(speakers for _, speakers in heard)))
    (out_dir / "labels.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def _input(spec: dict) -> dict:
    """``labels.json``'s description of what the model reads."""
    if kind_of(spec) == "whisper":
        from ..whisper_states import MEL_FRAMES, N_VALUES, POSITIONS

        return {"input": {"frames": 1, "features": N_VALUES, "names": ["encoder mean", "encoder std"]},
                "features": {"kind": "whisper", "model": "tiny.en (bundled)", "compute_type": "int8", "device": "cpu",
                             "mel_frames": MEL_FRAMES, "positions": POSITIONS, "summary": "mean and std over positions"}}
    return {"input": {"frames": N_FRAMES, "features": N_FEATURES, "names": list(FEATURE_NAMES)},
            "features": {"kind": "mfcc", "sample_rate": SAMPLE_RATE, "frame_length": FRAME_LENGTH, "n_fft": N_FFT,
                         "hop_length": HOP_LENGTH, "n_mfcc": 20, "n_mels": 64}}


def _recipe(checkpoint: Path) -> dict | None:
    """The training options in ``state.json`` beside a checkpoint, without
    this machine's paths (only the data folders' names)."""
    try:
        options = dict(json.loads((Path(checkpoint).parent / "state.json").read_text())["options"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for key in ("data_dir", "neutral_dir", "out"):
        if options.get(key):
            options[key] = Path(options[key]).name
    return options

