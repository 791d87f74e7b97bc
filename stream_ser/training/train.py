"""Training loop: speaker-split RAVDESS, augmented training windows, masking and
mixup, checkpoints every epoch with ``--resume``, best epoch chosen on val UA
(or, trained on train and val, a fixed number of epochs chosen beforehand)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import normalise
from .dataset import DEFAULT_DATA, labels, load_windows
from .metrics import clip_predictions, scores

DEFAULT_NEUTRAL = DEFAULT_DATA.parent / "neutral"  # the calm-speech corpus


# the shipped model's training copies (stream_ser/training/augment.py)
SHIPPED_VARIANTS = ("clean", "noise", "noise_b", "telephone", "reverb", "pitch", "mp3", "chained", "gain", "chain")


def parse_variant(variant: str) -> tuple[str, str, int]:
    """``"noise"`` -> ("noise", "clean", 0): the copy cut at the clean clip's windows;
    ``"noise@vad"`` -> ("noise", "degraded", 0): cut where the VAD on the copy itself
    puts them, as the stream cuts that audio; ``"babble@vad+1"`` -> ("babble",
    "degraded", 1): another draw of that copy, made with the data seed + 1 (one
    more independent copy of a kind, alongside ``babble`` and ``babble_b``).
    ValueError for anything else."""
    from .augment import VARIANTS

    base, plus, draw = variant.partition("+")
    name, at, cut_on = base.partition("@")
    if name not in VARIANTS or (at and cut_on != "vad") or (plus and not (draw.isdigit() and int(draw) > 0)):
        raise ValueError(f"unknown variant {variant!r} (choose from {', '.join(VARIANTS)}; add @vad to cut a copy "
                         "where the VAD on the copy puts the windows, +N for another draw of it)")
    return name, "degraded" if at else "clean", int(draw) if plus else 0


@dataclass
class TrainOptions:
    """Options of ``stream-ser train`` (defaults are the shipped model's).

    Attributes:
        arch: "compact" or "paper" (CNNs on the 22 tracks), or "head" (on
            ``features="whisper"``).
        features: the extractor (:func:`stream_ser.features.extractor`):
            "mfcc" or "whisper".
        epochs: maximum epochs; training stops early after ``patience`` epochs
            without a better val UA.
        variants: training-side augmentations, each a full copy of the windows,
            cut at the clean clip's windows; ``"<variant>@vad"`` (e.g.
            ``"noise@vad"``) cuts the copy where the VAD on the copy itself puts
            them, as the stream would cut that audio; ``"<variant>+N"`` (e.g.
            ``"babble@vad+1"``) is another draw of a copy, made with the data
            seed + N.
        time_mask, feature_mask: SpecAugment-style mask widths (frames, features).
        mixup: probability of mixing a batch row with another (Beta(0.4, 0.4)).
        norm: "session" (per speaker and recording chain in training, running
            per stream in serving) or "window" (each window on its own).
        prior_windows: how many windows of speech the training-set prior
            weighs in a session's statistics (``"session"`` only).
        scale: "session" (divide by the session's std) or "prior" (by the
            training set's: the session only moves the mean).
        neutral_sessions: draw a random share of neutral speech into each
            training session (:func:`.normalise.for_training`).
        warm_up: how far into its session a training window falls: "log"
            (often early, while the prior weighs) or "uniform".
        average: if > 0, validate and keep an exponential moving average of
            the weights over epochs (each epoch's weights count ``1 - average``);
            the best epoch is then chosen among averaged models.  Smooths the
            epoch-to-epoch swings that make a 3-speaker val set pick spikes.
        train_splits: the manifest splits trained on.  ``("train", "val")``
            trains on both splits' speakers for exactly ``epochs`` epochs:
            nothing is held out to choose a checkpoint, so ``best.keras`` is
            the last epoch's model (averaged, with ``average``) and the recipe,
            epochs included, must have been chosen on val before.  All three
            splits (``--all-actors``) is the final fit after cross-validation.
        fold: a cross-validation fold (:mod:`.cv`, 0-4): train on every RAVDESS
            actor outside it, whatever its split, for exactly ``epochs`` epochs
            (nothing held out: ``evaluate --cv`` scores the fold's actors).
        neutral_splits: splits of the calm-speech corpus (``neutral_dir``) to
            train on as well, under the same variants: each of its speakers is a
            session of neutral speech only.
        epoch_windows: train each epoch on a random draw of this many of the
            augmented windows (all: ``None``); a cheaper epoch on a slow CPU.
        calm_weight: with ``neutral_splits``, how much the calm corpus weighs
            in all, as a share of RAVDESS's neutral windows (e.g. 0.5).  The
            class weights are then RAVDESS's own, and each epoch's windows are
            drawn in proportion to their weight (instead of uniformly, weighted
            in the loss).  ``None``: the calm windows count as any neutral window,
            so the (much larger) calm corpus swamps RAVDESS's neutral clips.
    """

    arch: str = "compact"
    features: str = "mfcc"
    epochs: int = 80
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 30
    seed: int = 0  # weights and batch order
    data_seed: int = 0  # augmentation draws (features are cached per data seed)
    keep_calm: bool = False
    variants: tuple[str, ...] = SHIPPED_VARIANTS
    time_mask: int = 20
    feature_mask: int = 3
    mixup: float = 0.5
    norm: str = "session"
    prior_windows: float = 2.0
    scale: str = "session"
    neutral_sessions: bool = True
    warm_up: str = "log"
    average: float = 0.0
    train_splits: tuple[str, ...] = ("train",)
    fold: int | None = None
    neutral_splits: tuple[str, ...] = ()
    neutral_dir: Path = DEFAULT_NEUTRAL
    epoch_windows: int | None = None
    calm_weight: float | None = None
    limit: int | None = None
    data_dir: Path = DEFAULT_DATA
    out: Path = field(default_factory=lambda: Path("runs/compact"))


def predict(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Inference-mode probabilities (BatchNorm uses its moving statistics)."""
    return np.concatenate([model(x[i : i + batch], training=False).numpy() for i in range(0, len(x), batch)])


def recalibrate_batchnorm(model, x: np.ndarray, rng, batch_size: int, batches: int = 30) -> None:
    """Re-estimate BatchNorm moving statistics on clean training windows.

    With ~40 steps an epoch the paper CNN's moving averages lag its weights, and
    in inference mode (what TFLite and the stream run) it predicts one class
    while training-mode accuracy looks fine (GUIDE §1).  Forward passes in
    training mode update only the moving statistics; no weight changes."""
    for _ in range(batches):
        model(x[rng.choice(len(x), min(batch_size, len(x)), replace=False)], training=True)


def calm_draw(y: np.ndarray, calm: np.ndarray, n_classes: int, neutral: int, calm_weight: float) -> np.ndarray:
    """Probability of drawing each window into an epoch: the classes of the
    acted windows (``~calm``) weigh equally, and the calm-corpus windows share
    ``calm_weight`` times the acted neutral windows' total."""
    acted = np.bincount(y[~calm], minlength=n_classes)
    weight = (np.sum(~calm) / (n_classes * np.maximum(acted, 1)))[y]
    weight[calm] = calm_weight * weight[~calm & (y == neutral)].sum() / max(calm.sum(), 1)
    return weight / weight.sum()


def _mask(x: np.ndarray, rng, width_t: int, width_f: int) -> np.ndarray:
    x = x.copy()
    n, t, f = x.shape
    for i in range(n):
        w = rng.integers(0, width_t + 1)
        s = rng.integers(0, t - w + 1)
        x[i, s : s + w, :] = 0.0
        w = rng.integers(0, width_f + 1)
        s = rng.integers(0, f - w + 1)
        x[i, :, s : s + w] = 0.0
    return x


def _mixup(x, y, rng, p):
    lam = rng.beta(0.4, 0.4, size=len(x)).astype(np.float32)
    lam = np.where(rng.random(len(x)) < p, np.maximum(lam, 1 - lam), 1.0).astype(np.float32)
    j = rng.permutation(len(x))
    return lam[:, None, None] * x + (1 - lam[:, None, None]) * x[j], lam[:, None] * y + (1 - lam[:, None]) * y[j]


def _check_resume(old: dict, opts: TrainOptions, out: Path) -> None:
    from ..errors import UsageError

    if float(old.get("average", 0.0)) != opts.average:
        # the best epoch so far was judged on raw or averaged weights: do not mix the two
        raise UsageError(f"{out} was trained with --average {old.get('average', 0.0)}; resume with the same")
    for key in ("fold", "neutral_splits", "epoch_windows", "calm_weight", "features"):
        was, now = old.get(key, "mfcc" if key == "features" else None), getattr(opts, key)
        if (list(was) if isinstance(was, (list, tuple)) else was) != (list(now) if isinstance(now, tuple) else now) \
                and not (key == "neutral_splits" and not was and not now):
            raise UsageError(f"{out} was trained with {key} {was}; resume with the same")
    splits = tuple(old.get("train_splits", ("train",)))
    if splits != opts.train_splits:
        raise UsageError(f"{out} was trained on {'+'.join(splits)}; resume with the same splits"
                        + (" (--with-val)" if "val" in splits else " (without --with-val)"))
    if ("val" in splits or old.get("fold") is not None) and int(old["epochs"]) != opts.epochs:
        # the run's length is its recipe (and its learning-rate schedule)
        raise UsageError(f"{out} is a {old['epochs']}-epoch run on train + val; resume it with --epochs {old['epochs']}")


def train(opts: TrainOptions, resume: bool = False, console=None) -> dict:
    import keras
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .models import build

    for v in opts.variants:  # refused before the run directory or any cache is written
        parse_variant(v)
    names = labels(opts.keep_calm)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(opts.seed)
    resuming = resume and (out / "last.keras").exists()
    spec = None  # the normalisation (and feature fingerprint) the model trains with
    if resuming:  # refused before anything in the run directory is rewritten
        if not (out / "state.json").is_file():
            from ..errors import UsageError

            raise UsageError(f"{out} has a checkpoint but no state.json: cannot resume (train into a new --out)")
        _check_resume(json.loads((out / "state.json").read_text())["options"], opts, out)
        if (out / "norm.json").is_file():
            spec = normalise.spec_for(out / "last.keras")  # other features: refused now, before any are computed

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console) as bar:
        def loader(split, variant, data_dir=opts.data_dir):
            task = bar.add_task(f"features {data_dir.name}/{split}/{variant}", total=None)
            name, vad_on, draw = parse_variant(variant)
            ws = load_windows(split, name, data_dir=data_dir, seed=opts.data_seed + draw, limit=opts.limit, features=opts.features, vad_on=vad_on,
                              progress=lambda i, n: bar.update(task, completed=i, total=n))
            bar.update(task, completed=1, total=1, visible=False)
            return ws

        from .cv import fold_speakers, select
        from .dataset import WindowSet

        def training_set(v):
            if opts.fold is not None:  # every actor outside the fold, whatever its split
                ws = WindowSet.concat([loader(s, v) for s in ("train", "val", "test")])
                ws = select(ws, set(ws.clip_speakers) - set(fold_speakers(opts.data_dir)[opts.fold]))
            else:
                ws = WindowSet.concat([loader(s, v) for s in opts.train_splits])
            return WindowSet.concat([ws] + [loader(s, v, Path(opts.neutral_dir)) for s in opts.neutral_splits])

        train_sets = [training_set(v) for v in opts.variants]
        # with val in training (or a fold) there is nothing held out to choose a checkpoint on
        held_out = "val" not in opts.train_splits and opts.fold is None
        val = loader("val", "clean") if held_out else None
        x = np.concatenate([w.x for w in train_sets])
        y = np.concatenate([w.y(opts.keep_calm) for w in train_sets])
        counts = np.bincount(y, minlength=len(names))
        class_weight = (len(y) / (len(names) * np.maximum(counts, 1))).astype(np.float32)
        weight = class_weight[y]
        draw = None  # each epoch's windows: uniform, weighted in the loss
        if opts.calm_weight is not None and opts.neutral_splits:
            from .dataset import read_manifest

            calm_speakers = {c.speaker for c in read_manifest(Path(opts.neutral_dir))}
            calm = np.isin(np.concatenate([w.speaker_of_window() for w in train_sets]), list(calm_speakers))
            # drawn in proportion to weight, so the epoch is not spent on down-weighted calm windows
            draw, weight = calm_draw(y, calm, len(names), names.index("neutral"), opts.calm_weight), np.ones(len(y), np.float32)
        y1 = np.eye(len(names), dtype=np.float32)[y]
        # a session is one speaker under one recording chain
        session = np.concatenate([[f"{v}/{s}" for s in w.speaker_of_window()] for v, w in zip(opts.variants, train_sets)])
        clean = train_sets[opts.variants.index("clean")] if "clean" in opts.variants else train_sets[0]
        if spec is None:
            spec = normalise.make_spec(opts.norm, clean.x, opts.prior_windows, opts.scale, opts.features)
            (out / "norm.json").write_text(json.dumps(spec) + "\n")
        val_x = normalise.for_evaluation(val.x, val.clip_of_window, val.clip_speakers, spec) if held_out else None

        state_path = out / "state.json"
        if resuming:
            model = keras.models.load_model(out / "last.keras")
            state = json.loads(state_path.read_text())
        else:
            model = build(opts.arch, len(names))
            # cosine decay over the whole run: the late, small steps settle the
            # noisy epoch-to-epoch val swings of a 3-speaker val set
            per_epoch = min(len(x), opts.epoch_windows or len(x))
            lr = keras.optimizers.schedules.CosineDecay(opts.learning_rate, opts.epochs * int(np.ceil(per_epoch / opts.batch_size)), alpha=0.05)
            model.compile(optimizer=keras.optimizers.RMSprop(lr) if opts.arch == "paper" else keras.optimizers.Adam(lr),
                          loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.05))
            state = {"epoch": 0, "best_val_ua": -1.0, "best_epoch": 0, "history": [],
                     "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
                     "labels": list(names), "params": int(model.count_params())}

        # what this run learned from (a --with-val run's val actors are listed here)
        state["train_speakers"] = sorted(set(clean.clip_speakers))
        state["train_windows"] = int(len(x))
        per_epoch = min(len(x), opts.epoch_windows or len(x))
        steps = int(np.ceil(per_epoch / opts.batch_size))
        epochs = bar.add_task(f"{opts.arch}: epochs", total=opts.epochs, completed=state["epoch"])
        batches = bar.add_task("  batches", total=steps)

        # the averaged model is a second copy of the network; only its weights differ
        averaged = None
        if opts.average > 0:
            averaged = keras.models.clone_model(model)
            averaged.build((None,) + x.shape[1:])
            source = out / "average.keras" if resume and (out / "average.keras").exists() and state["epoch"] else None
            averaged.set_weights(keras.models.load_model(source).get_weights() if source else model.get_weights())

        class Tick(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                bar.update(batches, completed=batch + 1)

        for epoch in range(state["epoch"], opts.epochs):
            if held_out and epoch - state["best_epoch"] >= opts.patience and state["best_epoch"] > 0:
                break
            rng = np.random.default_rng([opts.seed, epoch])
            xn = normalise.for_training(x, session, spec, rng, y, names.index("neutral") if opts.neutral_sessions else None, opts.warm_up)
            order = rng.permutation(len(x))[:per_epoch] if draw is None else rng.choice(len(x), per_epoch, replace=False, p=draw)
            xe = _mask(xn[order], rng, opts.time_mask, opts.feature_mask)
            xe, ye = _mixup(xe, y1[order], rng, opts.mixup)
            bar.reset(batches, total=steps)
            hist = model.fit(xe, ye, sample_weight=weight[order], batch_size=opts.batch_size,
                             epochs=1, verbose=0, callbacks=[Tick()])
            if opts.arch == "paper":
                recalibrate_batchnorm(model, xn, rng, opts.batch_size)
            chosen = model
            if averaged is not None:
                d = opts.average if epoch > 0 else 0.0
                averaged.set_weights([d * a + (1 - d) * w for a, w in zip(averaged.get_weights(), model.get_weights())])
                # averaged moving statistics do not belong to the averaged weights (as in SWA)
                recalibrate_batchnorm(averaged, xn, rng, opts.batch_size)
                averaged.save(out / "average.keras")
                chosen = averaged
            state["epoch"] = epoch + 1
            entry = {"epoch": epoch + 1, "loss": float(hist.history["loss"][-1])}
            if held_out:
                probs = predict(chosen, val_x)
                val_scores = scores(val.clip_y(opts.keep_calm), clip_predictions(probs, val.clip_of_window, len(val.clip_emotions)), names)
                # "always one class" shows up here: inference-mode predictions per class
                entry.update(val_ua=val_scores["ua"], val_f1=val_scores["macro_f1"],
                             val_pred_counts=np.bincount(probs.argmax(1), minlength=len(names)).tolist())
            state["history"].append(entry)
            model.save(out / "last.keras")
            if not held_out or val_scores["ua"] > state["best_val_ua"]:
                state["best_val_ua"], state["best_epoch"] = (val_scores["ua"] if held_out else None), epoch + 1
                shutil.copy(out / ("average.keras" if averaged is not None else "last.keras"), out / "best.keras")
            state_path.write_text(json.dumps(state, indent=1))
            progress = (f"val UA {val_scores['ua']:.3f} (best {state['best_val_ua']:.3f} @ {state['best_epoch']})" if held_out
                        else f"(fold {opts.fold}: no val)" if opts.fold is not None
                        else f"(trained on {'+'.join(opts.train_splits)}: no val)")
            bar.update(epochs, completed=epoch + 1,
                       description=f"{opts.arch}: epoch {epoch + 1} loss {entry['loss']:.3f} {progress}")
    return state
