"""Training, export and evaluation do what they claim, on real RAVDESS clips."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stream_ser.features import raw_features
from stream_ser.training import normalise
from stream_ser.training.dataset import EMOTIONS, label_of, read_manifest
from stream_ser.training.metrics import clip_predictions, confusion, scores, ua_by_group
from stream_ser.windows import clip_windows, cut

from .conftest import SER, need_shared, run_cli


def test_scores_match_a_hand_computed_confusion_matrix():
    names = ["a", "b", "c"]
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 0, -1]  # -1: a clip without a window
    m = confusion(y_true, y_pred, 3)
    assert m.tolist() == [[2, 1, 0, 0], [0, 1, 1, 0], [1, 0, 2, 1]]
    s = scores(y_true, y_pred, names)
    recall = {"a": 2 / 3, "b": 1 / 2, "c": 2 / 4}
    precision = {"a": 2 / 3, "b": 1 / 2, "c": 2 / 3}
    f1 = {k: 2 * precision[k] * recall[k] / (precision[k] + recall[k]) for k in names}
    assert s["recall"] == pytest.approx(recall)
    assert s["ua"] == pytest.approx(np.mean(list(recall.values())))
    assert s["macro_f1"] == pytest.approx(np.mean(list(f1.values())))
    assert s["wa"] == pytest.approx(5 / 9)
    assert s["no_window"] == 1


def test_ua_per_speaker_is_each_speakers_mean_recall_over_its_own_classes():
    names = ["a", "b", "c"]
    y_true = [0, 0, 1, 1, 2, 0, 1, 1]
    y_pred = [0, 1, 1, 1, 0, 0, 2, 1]
    spk = ["s1", "s1", "s1", "s1", "s1", "s2", "s2", "s2"]
    # s1: a 1/2, b 2/2, c 0/1 -> 0.5; s2 has no "c" clip: a 1/1, b 1/2 -> 0.75
    assert ua_by_group(y_true, y_pred, spk, names) == pytest.approx({"s1": 0.5, "s2": 0.75})


def test_clip_prediction_averages_its_windows():
    probs = np.array([[0.6, 0.4], [0.1, 0.9], [0.9, 0.1]])
    # clip 0: mean (0.35, 0.65) -> 1; clip 1: -> 0; clip 2: no window
    assert clip_predictions(probs, np.array([0, 0, 1]), 3).tolist() == [1, 0, -1]


@pytest.mark.parametrize("bias", [1.0, 50.0, 1e6, -1e6])
def test_neutral_prior_reweights_without_overflow(bias):
    from stream_ser.emotion import prior_weights, reweight

    labels = ("angry", "neutral", "sad")
    probs = np.array([0.5, 0.2, 0.3])
    out = reweight(probs, prior_weights(labels, bias))
    # neutral's odds against each other class grow by e^bias (saturating at 1 or 0)
    expected = probs * np.exp(np.array([0.0, bias, 0.0]) - max(bias, 0.0))
    assert np.all(np.isfinite(out)) and out.sum() == pytest.approx(1.0)
    assert out == pytest.approx(expected / expected.sum(), abs=1e-12)
    # a float32 softmax can give neutral exactly 0: a huge prior then has nothing to scale
    # (only neutral moves, so the other classes keep their ratio: the model's own probabilities)
    zero = reweight(np.array([0.7, 0.0, 0.3]), prior_weights(labels, bias))
    assert zero == pytest.approx([0.7, 0.0, 0.3], abs=1e-12)


@pytest.fixture(scope="module")
def tiny_windows():
    """The stream's windows (audio) of three training clips per emotion, their labels, clips and speakers."""
    need_shared()
    clips = [c for c in read_manifest(SER) if c.split == "train"]
    chosen = []
    for e in EMOTIONS:
        chosen += [c for c in clips if label_of(c.emotion) == e][:3]
    audio_windows, y, owner = [], [], []
    for i, c in enumerate(chosen):
        audio, _ = sf.read(c.path, dtype="float32")
        for w in clip_windows(audio):
            audio_windows.append(cut(audio, w))
            y.append(EMOTIONS.index(label_of(c.emotion)))
            owner.append(i)
    return audio_windows, np.array(y), np.array(owner), [c.speaker for c in chosen]


@pytest.fixture(scope="module")
def tiny_slice(tiny_windows):
    """Raw features of three training clips per emotion, their labels and speakers."""
    audio_windows, y, owner, speakers = tiny_windows
    return np.stack([raw_features(a) for a in audio_windows]), y, owner, speakers


@pytest.mark.parametrize("kind", ["session", "window"])
def test_compact_model_learns_its_training_windows(tiny_slice, kind):
    import keras

    from stream_ser.training.models import build
    from stream_ser.training.train import predict

    raw, y, owner, speakers = tiny_slice
    x = normalise.for_evaluation(raw, owner, speakers, normalise.make_spec(kind, raw))
    keras.utils.set_random_seed(0)
    model = build("compact", len(EMOTIONS))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=60, batch_size=16, verbose=0)  # a few seconds on a CPU
    acc = float(np.mean(predict(model, x).argmax(1) == y))
    assert acc >= 0.6, acc  # chance is 1/7


def test_paper_architecture_has_the_papers_parameter_count():
    from stream_ser.training.models import build

    assert build("paper", 7).count_params() == 7_193_223


def test_shipped_fast_path_agrees_with_keras(tiny_windows):
    import keras

    from stream_ser.emotion import DEFAULT_MODELS, EmotionModel

    if not (DEFAULT_MODELS / "emotion.tflite").exists():
        pytest.skip("no shipped model")
    fast = EmotionModel(DEFAULT_MODELS, prefer="tflite", neutral_bias=0.0)  # the network alone, no prior
    assert fast.form == "tflite"
    keras_model = keras.models.load_model(DEFAULT_MODELS / "emotion.keras", compile=False)
    audio_windows, _, owner, speakers = tiny_windows
    raw = np.stack([fast.extract(a) for a in audio_windows])  # the features it was trained on
    x = normalise.for_evaluation(raw, owner, speakers, fast.normalisation or {"kind": "window"})
    ref = keras_model(x, training=False).numpy()
    got = np.array([fast.predict(row) for row in x])
    assert np.abs(got - ref).max() <= 1e-3
    assert len(fast.labels) == ref.shape[1] and json.loads((DEFAULT_MODELS / "labels.json").read_text())["labels"] == list(fast.labels)


def test_train_cli_checkpoints_and_resumes(tmp_path):
    need_shared()
    import keras

    def trainable(path):
        m = keras.models.load_model(path)
        return [v.numpy() for v in m.trainable_weights]

    env = {"STREAM_SER_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    # telephone@vad: that copy is cut where the VAD on the telephone audio puts the windows
    args = ("train", "--limit", "10", "--variants", "clean,telephone@vad", "--average", "0.5", "--out", out)
    r = run_cli(*args, "--epochs", "2", env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 2 and (out / "last.keras").exists() and (out / "best.keras").exists()
    average2 = trainable(out / "average.keras")
    assert any(np.abs(a - w).max() > 1e-4 for a, w in zip(average2, trainable(out / "last.keras")))
    caches = sorted(os.listdir(tmp_path / "cache"))
    assert [c.split("-")[1:3] for c in caches] == [["train", "clean"], ["train", "telephone@vad"], ["val", "clean"]]
    r = run_cli(*args, "--epochs", "3", "--resume", env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out / "state.json").read_text())["epoch"] == 3
    assert sorted(os.listdir(tmp_path / "cache")) == caches  # the second run reused the cached features
    # the average carried over the resume: half the epoch-2 average, half epoch 3's weights
    # (BatchNorm moving statistics are re-estimated, so only trainable weights compare)
    for a, a2, w3 in zip(trainable(out / "average.keras"), average2, trainable(out / "last.keras")):
        np.testing.assert_allclose(a, 0.5 * a2 + 0.5 * w3, rtol=1e-5, atol=1e-6)
    r = run_cli("train", "--limit", "10", "--variants", "clean,telephone@vad", "--out", out, "--epochs", "4", "--resume", env=env, timeout=300)
    assert r.returncode == 2 and "--average 0.5" in r.stderr and "Traceback" not in r.stderr
    for wrong in ("telephone@clean", "phone"):
        r = run_cli("train", "--limit", "10", "--variants", f"clean,{wrong}", "--out", tmp_path / "other", env=env)
        assert r.returncode == 2 and f"unknown variant '{wrong}'" in r.stderr and "Traceback" not in r.stderr, r.stderr[-1000:]


def test_exported_prior_scales_neutral_and_neutral_bias_replaces_it(tmp_path):
    """export --neutral-bias 0.7 ships a model whose neutral probability is
    scaled by e^0.7 and renormalised (Keras and TFLite forms alike);
    EmotionModel(neutral_bias=0) gives back the checkpoint's own probabilities,
    as `listen --neutral-bias 0` would."""
    import keras

    from stream_ser.emotion import EmotionModel
    from stream_ser.training.export import export
    from stream_ser.training.models import build

    keras.utils.set_random_seed(3)
    run = tmp_path / "run"
    run.mkdir()
    build("compact").save(run / "best.keras")
    (run / "norm.json").write_text(json.dumps({"kind": "window"}))
    x = np.random.default_rng(2).standard_normal((6, 108, 22)).astype(np.float32)
    own = keras.models.load_model(run / "best.keras")(x, training=False).numpy()
    meta = export([run / "best.keras"], tmp_path / "models", list(EMOTIONS), x, neutral_bias=0.7)
    assert meta["log_prior"] == {"neutral": 0.7}
    w = np.ones(len(EMOTIONS))
    w[EMOTIONS.index("neutral")] = np.exp(0.7)
    for prefer in ("tflite", "keras"):
        shipped = EmotionModel(tmp_path / "models", prefer=prefer)
        balanced = EmotionModel(tmp_path / "models", prefer=prefer, neutral_bias=0.0)
        for row, p in zip(x, own):
            np.testing.assert_allclose(shipped.predict(row), p * w / (p * w).sum(), atol=1e-5)
            np.testing.assert_allclose(balanced.predict(row), p, atol=1e-5)


@pytest.mark.parametrize("variant", ["noise", "telephone", "reverb", "pitch", "gain", "mp3", "stretch", "opus", "chain", "noisy", "speaker"])
def test_augmentation_keeps_length_and_changes_the_audio(variant):
    """Window positions found on the clean clip stay valid for every copy."""
    from stream_ser.training.augment import apply

    audio, _ = sf.read(Path(__file__).parent / "data" / "jfk.flac", dtype="float32")
    audio = audio[: 3 * 16000]
    out = apply(variant, audio, np.random.default_rng(0))
    assert out.dtype == np.float32 and out.shape == audio.shape and np.all(np.isfinite(out))
    # a real change: the residual is at least -26 dB of the clip's energy (the gentlest, a codec
    # or a gain step, measure about -20 to -24 dB), and the clip keeps a usable level
    residual_db = 10 * np.log10(np.sum((out - audio) ** 2) / np.sum(audio ** 2))
    level_db = 10 * np.log10(np.mean(out ** 2) / np.mean(audio ** 2))
    level_range = 21 if variant in ("gain", "speaker") else 10  # these draw a microphone level of -20..+10 dB on purpose
    assert residual_db > -26 and abs(level_db) < level_range, (residual_db, level_db)


def test_speech_level_is_the_active_level_whatever_the_silences():
    """P.56 active speech level: a tone's power whether or not half the clip is
    silent; speech's level lies between its whole-clip mean power and its peaks';
    and noise added at 10 dB SNR is 10 dB under that level."""
    from stream_ser.training.augment import add_noise, speech_level

    t = np.arange(4 * 16000) / 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    half = tone.copy()
    half[: 2 * 16000] = 0
    for y in (tone, half, 0.01 * half):
        want = np.mean(y[y != 0] ** 2)
        assert abs(10 * np.log10(speech_level(y) / want)) < 0.1, 10 * np.log10(speech_level(y) / want)
    assert speech_level(np.zeros(16000)) == 0.0
    speech, _ = sf.read(Path(__file__).parent / "data" / "jfk.flac", dtype="float32")
    level = speech_level(speech)
    peaks = np.mean(speech[np.abs(speech) > 0.1 * np.abs(speech).max()] ** 2)  # the level add_noise used before
    assert np.mean(speech ** 2) * 1.2 < level < peaks / 1.5, (np.mean(speech ** 2), level, peaks)
    noisy = add_noise(speech, np.random.default_rng(0), snr_db=10.0)
    assert abs(10 * np.log10(level / np.mean((noisy - speech) ** 2)) - 10) < 0.05


def test_babble_and_talk_put_other_voices_under_the_speaker_at_minus_5_to_15_db():
    """The babble copies: other speakers' audio summed under the clip, never white noise in disguise."""
    from stream_ser.training.augment import apply, speech_level

    audio, _ = sf.read(Path(__file__).parent / "data" / "jfk.flac", dtype="float32")
    clip, other = audio[: 3 * 16000], audio[5 * 16000 : 8 * 16000]
    level = speech_level(clip)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        out = apply("babble", clip, rng, babble=[other])
        added = out - clip
        snr = 10 * np.log10(level / np.mean(added ** 2))
        assert -5 - 0.1 <= snr <= 15 + 0.1, snr
        # what was added is the other voice (rolled, scaled): its spectrum, not a flat one
        spec = np.abs(np.fft.rfft(added)) ** 2
        assert spec[: len(spec) // 4].sum() > 10 * spec[len(spec) // 2 :].sum()
    with pytest.raises(ValueError, match="other speakers"):
        apply("babble_b", clip, np.random.default_rng(0))
    with pytest.raises(ValueError, match="calm speech"):
        apply("talk", clip, np.random.default_rng(0))
    out = apply("talk_b", clip, np.random.default_rng(0), talk=[other])
    assert -5 - 0.1 <= 10 * np.log10(level / np.mean((out - clip) ** 2)) <= 15 + 0.1


def test_babble_with_a_one_speaker_limit_is_a_usage_error(tmp_path):
    need_shared()
    r = run_cli("train", "--limit", "1", "--epochs", "1", "--variants", "clean,babble", "--out", tmp_path / "run", timeout=120)
    assert r.returncode == 2 and "two speakers" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_a_plus_n_variant_is_another_draw_of_that_copy(tmp_path):
    """`--variants noise,noise+1` trains on two independent noisy copies: the
    second is drawn with the data seed + 1, cached apart from the first."""
    need_shared()
    env = {"STREAM_SER_CACHE": str(tmp_path / "cache")}
    r = run_cli("train", "--limit", "2", "--epochs", "1", "--variants", "clean,noise,noise+1", "--out", tmp_path / "run",
                env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    noisy = sorted((tmp_path / "cache").glob("*-train-noise-*.npz"))
    assert len(noisy) == 2
    a, b = (np.load(p)["x"] for p in noisy)
    assert a.shape == b.shape and np.abs(a - b).max() > 1e-3


def test_train_with_val_trains_on_train_and_val_speakers_and_evaluate_refuses_them(tmp_path):
    """`train --with-val` (the final fit of a recipe chosen on val) trains on
    the train and val actors for exactly --epochs epochs, keeps the last epoch,
    and its model, checkpoint or shipped, cannot be scored on val."""
    need_shared()
    import keras

    env = {"STREAM_SER_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    r = run_cli("train", "--limit", "6", "--variants", "clean", "--with-val", "--out", out, env=env)
    assert r.returncode == 2 and "--epochs" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", "--limit", "6", "--variants", "clean", "--with-val", "--epochs", "2", "--out", out, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    state = json.loads((out / "state.json").read_text())
    clips = read_manifest(SER)
    first6 = {c.speaker for split in ("train", "val") for c in [c for c in clips if c.split == split][:6]}
    assert state["epoch"] == 2 and state["best_epoch"] == 2 and all("val_ua" not in h for h in state["history"])
    assert set(state["train_speakers"]) == first6 and {c.speaker for c in clips if c.split == "val"} & first6
    for a, b in zip(keras.models.load_model(out / "best.keras").get_weights(), keras.models.load_model(out / "last.keras").get_weights()):
        np.testing.assert_array_equal(a, b)
    r = run_cli("evaluate", "--split", "val", "--model", out / "best.keras", env=env)
    assert r.returncode == 2 and "speakers it has not heard" in r.stderr and "Traceback" not in r.stderr
    # a refused resume leaves the run as it was: its normalisation above all
    norm = (out / "norm.json").read_bytes()
    for wrong in (("--epochs", "3"), ("--with-val", "--epochs", "3")):
        r = run_cli("train", "--limit", "6", "--variants", "clean", *wrong, "--resume", "--out", out, env=env, timeout=300)
        assert r.returncode == 2 and "Traceback" not in r.stderr and ("train+val" in r.stderr or "--epochs 2" in r.stderr), r.stderr[-500:]
        assert (out / "norm.json").read_bytes() == norm
    state_text = (out / "state.json").read_text()
    (out / "state.json").unlink()
    r = run_cli("train", "--limit", "6", "--variants", "clean", "--with-val", "--epochs", "2", "--resume", "--out", out, env=env)
    assert r.returncode == 2 and "no state.json" in r.stderr and "Traceback" not in r.stderr
    (out / "state.json").write_text(state_text)
    # the fingerprint export ships is the one recorded at training (nudged here within its tolerance)
    spec = json.loads((out / "norm.json").read_text())
    spec["features_probe"]["mean"][0] *= 1 + 1e-5
    (out / "norm.json").write_text(json.dumps(spec))
    r = run_cli("export", out / "best.keras", "--out", tmp_path / "models", env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((tmp_path / "models" / "labels.json").read_text())
    assert meta["trained_on"] == ["train", "val"] and meta["train_speakers"] == state["train_speakers"]
    assert meta["normalisation"]["features_probe"] == spec["features_probe"]
    r = run_cli("evaluate", "--split", "val", "--model", tmp_path / "models", env=env)
    assert r.returncode == 2 and "speakers it has not heard" in r.stderr
    # the test speakers were not heard: scored as usual
    r = run_cli("evaluate", "--split", "test", "--model", tmp_path / "models", "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["n"] == sum(c.split == "test" for c in clips)
    assert set(res["ua_per_speaker"]) == {c.speaker for c in clips if c.split == "test"}
    # the features a checkpoint was trained on travel with it; on other
    # features it is neither scored nor trained on (train/serve skew)
    spec["features_probe"]["std"][1] *= 1.5  # as if RMS were computed differently now
    (out / "norm.json").write_text(json.dumps(spec))
    for args in (("evaluate", "--split", "test", "--model", out / "best.keras"),
                 ("export", out / "best.keras", "--out", tmp_path / "models2"),
                 ("train", "--limit", "6", "--variants", "clean", "--with-val", "--epochs", "2", "--resume", "--out", out)):
        r = run_cli(*args, env=env, timeout=300)
        assert r.returncode == 2 and "other features" in r.stderr and "rms std" in r.stderr, r.stderr[-1000:]
        assert "Traceback" not in r.stderr


def test_feature_cache_belongs_to_the_manifest_rows(tmp_path, monkeypatch):
    """Another manifest (other clips under the same split name) never reads
    this one's cached features."""
    need_shared()
    import csv

    from stream_ser.training.dataset import load_windows

    monkeypatch.setenv("STREAM_SER_CACHE", str(tmp_path / "cache"))
    with open(SER / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    other = tmp_path / "other"
    other.mkdir()
    with open(other / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows[100:103]:  # other clips, by absolute path
            w.writerow({**r, "path": str(SER / r["path"])})
    mine = load_windows("train", data_dir=SER, limit=3)
    theirs = load_windows("train", data_dir=other, limit=3)
    assert len(os.listdir(tmp_path / "cache")) == 2
    assert mine.x.shape != theirs.x.shape or np.abs(mine.x - theirs.x).max() > 0
    again = load_windows("train", data_dir=other, limit=3)
    np.testing.assert_array_equal(again.x, theirs.x)


def test_every_known_variant_is_built_and_only_vad_is_a_cut():
    """The names `--variants` accepts are the copies training can build (augment.apply,
    or dataset's "chained"), and only "@vad" changes where a copy is cut."""
    from stream_ser.training.augment import VARIANTS, apply
    from stream_ser.training.train import parse_variant

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    audio = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    others = [(0.1 * np.sin(2 * np.pi * f * t)).astype(np.float32) for f in (150, 300, 450)]
    for name in VARIANTS:
        assert parse_variant(name) == (name, "clean", 0) and parse_variant(name + "@vad") == (name, "degraded", 0)
        assert parse_variant(name + "@vad+2") == (name, "degraded", 2) and parse_variant(name + "+1") == (name, "clean", 1)
        if name != "chained":  # built in dataset.load_windows from two clips
            assert len(apply(name, audio, rng, babble=others, talk=others)) == len(audio), name
    for wrong in ("noisy", "noise@clean", "noise@", "@vad", "phone", "noise+", "noise+0", "noise@vad+x", "noise+1@vad"):
        with pytest.raises(ValueError, match="unknown variant"):
            parse_variant(wrong)
