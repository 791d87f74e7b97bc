"""``stream-ser train`` and ``stream-ser evaluate``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..features import kind_of
from . import normalise
from .dataset import DEFAULT_DATA, labels, load_windows, read_manifest


def _data_dir(args) -> Path:
    d = Path(args.data) if getattr(args, "data", None) else DEFAULT_DATA
    if not (d / "manifest.csv").is_file():
        from ..errors import UsageError

        raise UsageError(f"no dataset at {d} (expected manifest.csv; see README)")
    return d


def train_command(args) -> int:
    from rich.console import Console

    from ..quiet import quiet_tensorflow
    from .train import TrainOptions, train

    quiet_tensorflow()
    data = _data_dir(args)
    if not 0.0 <= args.average < 1.0:
        from ..errors import UsageError

        raise UsageError("--average must be at least 0 and below 1 (e.g. 0.8)")
    if (args.arch == "head") != (args.features == "whisper"):
        from ..errors import UsageError

        raise UsageError("--arch head goes with --features whisper (one frame of 768 values); the CNNs with mfcc")
    if args.features == "whisper" and args.norm == "window":
        from ..errors import UsageError

        raise UsageError("--features whisper: a window is one frame, which per-window normalisation would zero; use --norm session")
    if args.features == "whisper" and args.time_mask > 0:
        from ..errors import UsageError

        raise UsageError("--features whisper: a window is one frame; pass --time-mask 0")
    opts = TrainOptions(arch=args.arch, features=args.features, time_mask=args.time_mask, feature_mask=args.feature_mask, seed=args.seed, keep_calm=args.keep_calm, limit=args.limit, data_dir=data,
                        norm=args.norm, prior_windows=args.prior_windows, scale=args.scale,
                        neutral_sessions=not args.balanced_sessions, warm_up=args.warm_up, average=args.average,
                        train_splits=("train", "val", "test") if args.all_actors else ("train", "val") if args.with_val else ("train",),
                        fold=args.fold, epoch_windows=args.epoch_windows, calm_weight=args.calm_weight,
                        neutral_splits=tuple(s.strip() for s in args.neutral.split(",")) if args.neutral else ())
    fixed = args.with_val or args.all_actors or args.fold is not None
    if sum(map(bool, (args.with_val, args.all_actors, args.fold is not None))) > 1:
        from ..errors import UsageError

        raise UsageError("choose one of --with-val, --all-actors and --fold")
    if not set(opts.neutral_splits) <= {"train", "val", "test"}:
        from ..errors import UsageError

        raise UsageError("--neutral takes splits of ../shared/data/neutral: train, val, test")
    if args.epochs:
        opts.epochs = args.epochs
    elif fixed:
        from ..errors import UsageError

        # nothing is held out to stop on: the length of the run is part of the recipe
        raise UsageError("--with-val, --all-actors and --fold need --epochs (a number of epochs chosen beforehand, e.g. 40)")
    if args.variants:
        opts.variants = tuple(v.strip() for v in args.variants.split(","))
        from .train import parse_variant

        for v in opts.variants:
            try:
                parse_variant(v)
            except ValueError as e:
                from ..errors import UsageError

                raise UsageError(f"--variants: {e}") from None
    if any(v.startswith("babble") for v in opts.variants) and args.limit:
        from ..errors import UsageError
        from .dataset import read_manifest

        # babble sums other speakers' clips of the same split: each split's first --limit clips need two voices
        clips = read_manifest(data)
        for split in ("train", "val", "test"):
            if len({c.speaker for c in [c for c in clips if c.split == split][: args.limit]}) < 2:
                raise UsageError(f"--variants babble needs two speakers in each split, and the first {args.limit} {split} clips "
                                 "are one speaker's: raise --limit")
    if args.lr:
        opts.learning_rate = args.lr
    opts.out = Path(args.out or f"runs/{args.arch}")
    console = Console(stderr=True)
    state = train(opts, resume=args.resume, console=console)
    if args.fold is not None or args.all_actors:
        console.print(f"trained {'fold ' + str(args.fold) if args.fold is not None else 'on all actors'} for {state['epoch']} epochs; checkpoints in {opts.out}")
    elif args.with_val:
        console.print(f"trained on train + val for {state['epoch']} epoch{'s' if state['epoch'] != 1 else ''} ({state['params']:,} parameters); "
                      f"best.keras is the last epoch's model; checkpoints in {opts.out}")
    else:
        console.print(f"best val UA {state['best_val_ua']:.3f} at epoch {state['best_epoch']} ({state['params']:,} parameters); checkpoints in {opts.out}")
    if args.export:
        from .export import export

        meta = export([opts.out / "best.keras"], Path(args.export), state["labels"], _check_windows(data, opts.out / "best.keras", args.limit))
        console.print(f"shipped to {args.export}: {meta['arch']}, TFLite {meta['tflite']} (max diff {meta['tflite_max_abs_diff']:.1e})")
    return 0


def export_command(args) -> int:
    from ..errors import UsageError
    from ..quiet import quiet_tensorflow
    from .export import export

    quiet_tensorflow()
    names = list(labels(args.keep_calm))
    for c in args.checkpoints:
        model = load_keras(Path(c))  # one line for a missing or unreadable checkpoint
        if model.output_shape[-1] != len(names):
            raise UsageError(f"{c} has {model.output_shape[-1]} classes, not {len(names)}"
                            f"{'' if args.keep_calm else ' (use --keep-calm for an 8-class model)'}")
        if not (Path(c).parent / "norm.json").is_file() and not normalise.shipped_meta(Path(c)):
            # shipping it would silently change how its inputs are normalised
            raise UsageError(f"no norm.json beside {c}: its normalisation is unknown (keep the checkpoint in its run directory)")
        normalise.spec_for(Path(c))  # trained on other features: refused before any work
    check = _check_windows(_data_dir(args), Path(args.checkpoints[0]))
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out: cannot create {args.out}: {e.strerror or e}") from None
    try:
        meta = export([Path(c) for c in args.checkpoints], Path(args.out), names, check, args.neutral_bias)
    except (ValueError, RuntimeError) as e:
        raise UsageError(f"export: {e}") from None
    except OSError as e:
        raise UsageError(f"--out: cannot write {args.out}: {e.strerror or e}") from None
    print(f"shipped to {args.out}: {meta['arch']} ({meta['params']:,} parameters), TFLite {meta['tflite']} "
          f"(max diff vs Keras {meta['tflite_max_abs_diff']:.1e})")
    return 0


def _check_windows(data: Path, checkpoint: Path, limit: int | None = None) -> np.ndarray:
    """Model inputs of val windows, normalised the checkpoint's way, to check
    that the fast path agrees with Keras."""
    spec = normalise.spec_for(checkpoint)
    val = load_windows("val", "clean", data_dir=data, limit=limit, features=kind_of(spec))
    x = normalise.for_evaluation(val.x, val.clip_of_window, val.clip_speakers, spec)
    return x[:64]


def load_keras(path: Path):
    import keras

    from ..errors import UsageError

    path = Path(path)
    if path.is_dir():
        path = path / "emotion.keras"
    if not path.is_file():
        raise UsageError(f"no model at {path}")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:
        from ..emotion import load_error

        raise UsageError(f"{path}: cannot load model ({load_error(e)})") from None


def evaluate(model, spec: dict, split: str, condition: str, keep_calm: bool, data: Path = DEFAULT_DATA, seed: int = 1,
             neutral_bias: float = 0.0, vad_on: str = "clean") -> dict:
    """Clip-level scores of ``model`` (expecting normalisation ``spec``) on
    ``split`` under ``condition``.  With session normalisation each speaker is
    one session, its clips heard in a fixed random order (:mod:`.normalise`).
    ``neutral_bias`` is the neutral log-prior, applied as the stream applies it."""
    from .metrics import clip_predictions, scores, ua_by_group
    from .train import predict

    ws = load_windows(split, condition, data_dir=data, seed=seed, vad_on=vad_on, features=kind_of(spec))
    names = labels(keep_calm)
    probs = predict(model, normalise.for_evaluation(ws.x, ws.clip_of_window, ws.clip_speakers, spec))
    if neutral_bias:
        from ..emotion import prior_weights, reweight

        probs = reweight(probs, prior_weights(names, neutral_bias))
    pred = clip_predictions(probs, ws.clip_of_window, len(ws.clip_emotions))
    result = scores(ws.clip_y(keep_calm), pred, names)
    result["ua_per_speaker"] = ua_by_group(ws.clip_y(keep_calm), pred, ws.clip_speakers, names)
    if not keep_calm:
        from .cv import arousal_ua

        clip_probs = np.stack([probs[ws.clip_of_window == c].mean(0) if np.any(ws.clip_of_window == c)
                               else np.full(len(names), 1 / len(names)) for c in range(len(ws.clip_emotions))])
        result["arousal_ua"] = arousal_ua(ws.clip_emotions, clip_probs, names)
    result.update({"split": split, "condition": condition, "labels": list(names), "windows": int(len(ws.x)),
                   "speakers": sorted(set(ws.clip_speakers)), "model": model.name, "params": int(model.count_params()),
                   "normalisation": spec["kind"]})
    return result


def plot_confusion(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.array(result["confusion"])
    names = result["labels"]
    fig, ax = plt.subplots(figsize=(6, 5))
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, m[i, j], ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{result['model']} - {result['split']} ({', '.join(s.split('_')[-1] for s in result['speakers'])}) "
                 f"{result['condition']}: UA {result['ua']:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def speech_distribution(model_path: Path, names: list[str], speech_dir: Path, neutral_bias: float | None = None) -> dict:
    """Replay every recording in ``speech_dir`` through the stream (emotion only)
    and count the windows' labels: how the model sees ordinary, calm speech."""
    import tempfile
    from collections import Counter

    from ..emotion import EmotionModel
    from ..errors import ModelError
    from ..pipeline import Pipeline, PipelineOptions
    from ..sources import FileSource

    model_path = Path(model_path)
    with tempfile.TemporaryDirectory() as tmp:
        if model_path.is_dir():
            models_dir = model_path
        else:  # a checkpoint: serve it from a temporary models directory
            models_dir = Path(tmp)
            (models_dir / "emotion.keras").symlink_to(model_path.resolve())
            (models_dir / "labels.json").write_text(json.dumps({"labels": names, "normalisation": normalise.spec_for(model_path),
                                                                "log_prior": normalise.shipped_meta(model_path).get("log_prior", {})}))
        try:
            model = EmotionModel(models_dir, neutral_bias=neutral_bias)
        except ModelError as e:
            from ..errors import UsageError

            raise UsageError(str(e)) from None
        files = sorted(speech_dir.glob("*.flac"))
        per_file = {}
        for f in files:
            pipeline = Pipeline(FileSource(f, speed=0), PipelineOptions(transcript=False), emotion_model=model)
            per_file[f.name] = [(e.label, e.confidence) for e in pipeline.events() if e.type == "emotion"]

    def share(labels_: list[str]) -> dict:
        c = Counter(labels_)
        return {n: round(c[n] / max(len(labels_), 1), 3) for n in names}

    events = [e for seq in per_file.values() for e in seq]
    counts = Counter(label for label, _ in events)
    # a recording is a session: its first windows lean on the training prior
    return {"files": len(files), "windows": len(events), "share": share([label for label, _ in events]),
            "most_predicted": counts.most_common(1)[0][0] if counts else None,
            "share_first_two_windows": share([label for seq in per_file.values() for label, _ in seq[:2]]),
            "share_later_windows": share([label for seq in per_file.values() for label, _ in seq[2:]]),
            "confidence_p10_p50_p90": [round(float(q), 3) for q in np.percentile([c for _, c in events], [10, 50, 90])] if events else None,
            "labels_per_file": {name: [label for label, _ in seq] for name, seq in per_file.items()}}


def evaluate_command(args) -> int:
    from ..errors import SourceError, UsageError
    from ..quiet import quiet_tensorflow

    quiet_tensorflow()
    data = _data_dir(args)
    if args.cv or args.ordinary:
        return cv_command(args, data)
    from ..emotion import DEFAULT_MODELS

    model_path = Path(args.model) if args.model else DEFAULT_MODELS
    model = load_keras(model_path)
    # the model's own log-prior (labels.json "log_prior" of a models directory;
    # a bare checkpoint has none), replaced by --neutral-bias as in listen/replay
    from ..emotion import read_log_prior
    from ..errors import ModelError

    names = labels(args.keep_calm)
    if model.output_shape[-1] != len(names):
        raise UsageError(f"{model_path} has {model.output_shape[-1]} classes, not {len(names)}"
                        f"{' (--keep-calm needs a model trained with it)' if args.keep_calm else ' (use --keep-calm for an 8-class model)'}")
    if args.plot and not Path(args.plot).resolve().parent.is_dir():
        raise UsageError(f"--plot: no such directory: {Path(args.plot).parent}")
    try:
        own = read_log_prior(normalise.shipped_meta(model_path), names, model_path).get("neutral", 0.0)
    except ModelError as e:
        raise UsageError(str(e)) from None
    bias = own if args.neutral_bias is None else args.neutral_bias
    spec = normalise.spec_for(model_path)  # its normalisation, and one line if its features are not ours
    if args.speech:
        speech_dir = data.parent / "speech"
        r = speech_distribution(model_path, list(names), speech_dir, bias)
        r["model"], r["neutral_bias"] = model.name, bias
        if args.json:
            print(json.dumps(r))
        else:
            print(f"{r['model']} (neutral prior {r['neutral_bias']:g}) on {r['files']} recordings of ordinary speech ({speech_dir}), {r['windows']} windows:")
            for title, key in (("all", "share"), ("first two of a recording", "share_first_two_windows"),
                               ("later", "share_later_windows")):
                print(f"  {title + ':':26}" + "  ".join(f"{k} {v:.0%}" for k, v in sorted(r[key].items(), key=lambda kv: -kv[1])))
            if r["confidence_p10_p50_p90"]:
                print("  confidence p10/p50/p90: " + " / ".join(f"{q:.2f}" for q in r["confidence_p10_p50_p90"]))
        return 0
    splits, heard = normalise.trained_on(model_path)
    speakers = {c.speaker for c in read_manifest(data) if c.split == args.split}
    heard = speakers & heard if heard is not None else (speakers if args.split in splits else set())
    if heard:
        # its scores there would be training accuracy, not speaker-independent
        raise UsageError(f"{model_path} was trained on {len(heard)} of the {len(speakers)} {args.split} speakers "
                        f"({', '.join(sorted(heard)[:3])}{', ...' if len(heard) > 3 else ''}): score it on speakers it has not heard")
    conditions = ("clean", "telephone", "noisy", "reverb", "mp3") if args.condition == "all" else (args.condition,)
    results, skipped = [], []
    for c in conditions:
        t0 = time.perf_counter()
        try:
            r = evaluate(model, spec, args.split, c, args.keep_calm, data, neutral_bias=bias, vad_on=args.vad_on)
        except SourceError as e:  # a codec condition this machine cannot simulate: said, and the others still run
            print(f"stream-ser: condition {c} skipped: {e}", file=sys.stderr)
            skipped.append(c)
            continue
        r["seconds"], r["neutral_bias"], r["vad_on"] = round(time.perf_counter() - t0, 1), bias, args.vad_on
        results.append(r)
        if args.plot and len(conditions) == 1:
            try:
                plot_confusion(r, args.plot)
            except OSError as e:
                raise UsageError(f"--plot: cannot write {args.plot}: {e.strerror or e}") from None
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 and not skipped else results))
        return 1 if skipped else 0
    for r in results:
        print(f"{r['model']} on {r['split']} ({', '.join(r['speakers'])}), condition {r['condition']}, neutral prior {r['neutral_bias']:g}: "
              f"UA {r['ua']:.3f}  macro-F1 {r['macro_f1']:.3f}  WA {r['wa']:.3f}"
              + (f"  arousal UA {r['arousal_ua']:.3f}" if "arousal_ua" in r else "") + f"  ({r['n']} clips, {r['windows']} windows)")
        print("  recall: " + "  ".join(f"{k} {v:.2f}" for k, v in r["recall"].items()))
        print("  UA per speaker: " + "  ".join(f"{k} {v:.3f}" for k, v in r["ua_per_speaker"].items()))
        if r["no_window"]:
            print(f"  {r['no_window']} clips had no speech window (counted as wrong)")
    return 1 if skipped else 0


def _write(path: str | None, result: dict) -> None:
    if not path:
        return
    from ..errors import UsageError

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=1) + "\n")
    except OSError as e:
        raise UsageError(f"--write: cannot write {path}: {e.strerror or e}") from None


def _share_line(s: dict) -> str:
    return f"neutral {s['neutral']:.0%}, {s['top_other']} {s['top_other_share']:.0%}"


def cv_command(args, data: Path) -> int:
    """``evaluate --cv RUN`` and ``evaluate --ordinary``."""
    from ..errors import UsageError
    from . import cv

    names = labels(False)
    neutral_dir, speech_dir = data.parent / "neutral", data.parent / "speech"
    if not (neutral_dir / "manifest.csv").is_file():
        raise UsageError(f"no calm-speech corpus at {neutral_dir} (expected manifest.csv)")
    if args.ordinary:
        from ..emotion import DEFAULT_MODELS, read_log_prior
        from ..errors import ModelError

        model_path = Path(args.model) if args.model else DEFAULT_MODELS
        model = load_keras(model_path)
        try:
            own = read_log_prior(normalise.shipped_meta(model_path), names, model_path).get("neutral", 0.0)
        except ModelError as e:
            raise UsageError(str(e)) from None
        bias = own if args.neutral_bias is None else args.neutral_bias
        scored = cv.ordinary(model, normalise.spec_for(model_path), names, neutral_dir, speech_dir)
        # as the user named it (the bundled one: "models"), never this machine's absolute path
        result = {"model": args.model or "models", "neutral_bias": bias}
        _, heard = normalise.trained_on(model_path)
        for name, sc in scored.items():
            if heard and heard & set(sc.ws.clip_speakers):  # training speakers: not a false-alarm rate
                print(f"{name:13} skipped: the model was trained on these speakers")
                continue
            share = sc.shares(bias)
            result[name] = {**cv.ordinary_summary(share), "share": {n: round(v, 4) for n, v in share.items()},
                            "windows": int(len(sc.ws.x)), "sessions": len(set(sc.ws.clip_speakers))}
            print(f"{name:13} ({result[name]['sessions']} sessions, {result[name]['windows']} windows): {_share_line(result[name])}   "
                  + "  ".join(f"{n} {v:.0%}" for n, v in sorted(share.items(), key=lambda kv: -kv[1])))
        _write(args.write, result)
        return 0
    runs = [Path(r) for r in args.cv.split(",") if r]
    for run in runs:
        missing = [k for k in range(cv.N_FOLDS) if not (run / f"fold{k}" / "last.keras").is_file()]
        if missing:
            raise UsageError(f"{run}: no fold{missing[0]}/last.keras (train it with `stream-ser train --fold {missing[0]} --out {run}/fold{missing[0]}`)")
    run = args.cv
    result = cv.evaluate_cv(runs, data, neutral_dir, speech_dir, names, progress=lambda m: print(m, file=sys.stderr))
    bias = args.neutral_bias if args.neutral_bias is not None else result["calibrated_bias"]
    if bias is None:
        bias = 0.0
        print("no prior on the grid meets the calm-speech rule on the neutral val speakers; showing prior 0", file=sys.stderr)
    key = f"{bias:g}"
    if key not in result["by_bias"]:
        raise UsageError(f"--neutral-bias {bias:g} is not on the grid ({', '.join(result['by_bias'])})")
    result["shown_bias"] = bias
    block = result["by_bias"][key]
    print(f"{run}: 5-fold CV over RAVDESS actors 01-20, neutral prior {bias:g} "
          f"(calibrated: {result['calibrated_bias']})")
    cols = ("clip_ua", "window_ua", "cold_ua", "arousal_ua", "telephone_ua", "noisy_ua", "reverb_ua", "mp3_ua")
    print(f"{'fold':5} {'actors':24} " + " ".join(f"{c.replace('_ua', ''):>9}" for c in cols) + "  neutral val / test / speech")
    for r in block["folds"]:
        print(f"{r['fold']:<5} {','.join(a.split('_')[-1] for a in r['actors']):24} " + " ".join(f"{r[c]:9.3f}" for c in cols)
              + "  " + " / ".join(_share_line(r[n]) for n in ("neutral_val", "neutral_test", "speech") if n in r))
    m = block["mean_sd"]
    print(f"{'mean':5} {'(sd over folds)':24} " + " ".join(f"{m[c][0]:9.3f}" for c in cols)
          + "  " + " / ".join(_share_line(m[n]) for n in ("neutral_val", "neutral_test", "speech") if n in m))
    print(f"{'sd':30} " + " ".join(f"{m[c][1]:9.3f}" for c in cols))
    pc = result["per_class_prior"]
    m = pc["nested"]["mean_sd"]
    print(f"per-class log-prior (all folds): {pc['log_prior']}")
    print(f"{'nested':30} " + " ".join(f"{m[c][0]:9.3f}" for c in cols)
          + "  " + " / ".join(_share_line(m[n]) for n in ("neutral_val", "neutral_test", "speech") if n in m)
          + "   (each fold scored with the prior its 4 other folds chose)")
    _write(args.write, result)
    return 0
