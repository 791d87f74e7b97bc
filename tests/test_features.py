"""One feature extractor and one window logic for training and streaming."""

import numpy as np
import pytest
import soundfile as sf

from stream_ser.features import N_FEATURES, N_FRAMES, WINDOW_SAMPLES, SessionNorm, extract, normaliser, raw_features
from stream_ser.training import normalise
from stream_ser.sources import condition
from stream_ser.windows import clip_windows, cut

from .conftest import SER, need_shared, run_pipeline


def test_shape_and_gain_invariance():
    rng = np.random.default_rng(1)
    t = np.arange(WINDOW_SAMPLES) / 16000
    x = (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    f = extract(x)
    assert f.shape == (N_FRAMES, N_FEATURES) == (108, 22)
    assert np.allclose(f.mean(axis=0), 0, atol=1e-4) and np.allclose(f.std(axis=0), 1, atol=1e-2)
    # 20 dB quieter: the same features (the loudness normalisation)
    assert np.abs(extract(x * 0.1) - f).max() < 0.05
    assert not np.allclose(raw_features(x * 0.1), raw_features(x))


def test_mfcc_tracks_are_librosas_mfcc():
    # raw_features builds the mel basis once and calls librosa step by step:
    # the tracks must be what librosa.feature.mfcc(y=...) gives in one call
    import librosa

    from stream_ser.features import FRAME_LENGTH, HOP_LENGTH, N_FFT, N_MELS, N_MFCC

    rng = np.random.default_rng(2)
    for x in (rng.standard_normal(WINDOW_SAMPLES).astype(np.float32) * 0.1, np.zeros(WINDOW_SAMPLES, np.float32)):
        whole = librosa.feature.mfcc(y=x, sr=16000, n_mfcc=N_MFCC, n_fft=N_FFT, win_length=FRAME_LENGTH,
                                     hop_length=HOP_LENGTH, n_mels=N_MELS).T
        assert np.allclose(raw_features(x)[:, 2:], whole, rtol=1e-5, atol=1e-4)


def test_session_normalisation_warms_up_from_the_prior_to_the_session():
    rng = np.random.default_rng(0)
    prior = {"kind": "session", "mean": [0.0] * N_FEATURES, "std": [1.0] * N_FEATURES, "prior_frames": 2 * N_FRAMES}
    # a session whose tracks sit at 10 +- 2: far from the prior
    windows = [(10 + 2 * rng.standard_normal((N_FRAMES, N_FEATURES))).astype(np.float32) for _ in range(200)]
    norm = normaliser(prior)
    assert isinstance(norm, SessionNorm)
    out = [norm(w) for w in windows]
    # first window: one part session to two parts prior: mean 10/3, and a wide
    # std from mixing the two, so the offset is only partly removed
    mean, second = 10 / 3, (2 * 1 + (10**2 + 2**2)) / 3
    assert out[0].mean() == pytest.approx((10 - mean) / np.sqrt(second - mean**2), abs=0.05)
    # settled: the session's own statistics dominate
    assert abs(out[-1].mean()) < 0.2 and 0.8 < out[-1].std() < 1.2
    # evaluation computes what the stream computes, in the same order
    x = np.stack(windows)
    order = np.random.default_rng(3).permutation(len(x))
    for scale in ("session", "prior"):
        spec = {**prior, "scale": scale}
        same = normalise.for_evaluation(x, np.arange(len(x)), ["s"] * len(x), spec, seed=3)
        replay = normaliser(spec)
        np.testing.assert_allclose(np.stack([replay(x[i]) for i in order]), same[order], atol=1e-4)


class _Recorder:
    """Stands in for the emotion model and keeps every feature matrix it is given."""

    labels = ("a", "b")

    def __init__(self, spec, extract=None):
        self.seen, self.spec = [], spec
        self.extract = extract or raw_features

    def new_normaliser(self):
        return normaliser(self.spec)

    def predict(self, features):
        self.seen.append(features.copy())
        return np.array([0.5, 0.5])


@pytest.mark.parametrize("kind", ["mfcc", "whisper"])
def test_training_and_streaming_see_identical_windows_and_features(kind):
    need_shared()
    from stream_ser.features import extractor

    clip = SER / "ravdess" / "03-01-05-02-01-01-18.flac"  # angry, actor 18
    audio, _ = sf.read(clip, dtype="float32")
    audio = condition(audio)  # as training's dataset does: what the stream's source does to every block
    train_windows = clip_windows(audio)
    features_of = extractor(kind)
    raw = np.stack([features_of(cut(audio, w)) for w in train_windows])
    session = normalise.make_spec("session", raw, features_kind=kind)
    for spec in ({"kind": "window"}, session):
        # the training side: the dataset's raw features, normalised as evaluation does
        expected = normalise.for_evaluation(raw, np.zeros(len(raw), int), ["ravdess_18"], spec)
        model = _Recorder(spec, features_of)
        events = [e for e in run_pipeline(clip, model) if e["type"] == "emotion"]
        assert len(events) == len(train_windows) >= 2
        for e, w in zip(events, train_windows):
            # the same window; an event ends where the audio does (the window past it is zero-padded)
            assert (e["start"], e["end"]) == (round(w.start / 16000, 3), round(min(w.end, len(audio)) / 16000, 3))
        for a, b in zip(model.seen, expected):
            np.testing.assert_allclose(a, b, atol=1e-5)
    if kind == "mfcc":
        np.testing.assert_array_equal(normalise.for_evaluation(raw, np.zeros(len(raw), int), ["s"], {"kind": "window"}),
                                      np.stack([extract(cut(audio, w)) for w in train_windows]))


@pytest.mark.parametrize("scale", ["session", "prior"])
def test_training_sessions_stay_within_one_speaker_and_chain(scale):
    rng = np.random.default_rng(0)
    spec = {"kind": "session", "mean": [0.0] * N_FEATURES, "std": [1.0] * N_FEATURES, "prior_frames": 1.0, "scale": scale}
    # two sessions far apart (+10 and -10), each with neutral (label 4) and other windows
    x = np.concatenate([10 + rng.standard_normal((40, N_FRAMES, N_FEATURES)), -10 + rng.standard_normal((40, N_FRAMES, N_FEATURES))]).astype(np.float32)
    session = np.repeat(["a", "b"], 40)
    y = np.tile([4, 0, 1, 2], 20)
    out = normalise.for_training(x, session, spec, rng, y, neutral=4)
    # every window is normalised with its own session's statistics: the offsets are gone
    assert np.abs(out.mean(axis=(1, 2))).max() < 0.2
    assert 0.8 < out.std() < 1.2


def test_the_shipped_model_carries_a_fingerprint_this_extractor_reproduces():
    """models/labels.json carries a feature fingerprint, and this extractor
    (this librosa, numpy and FFT build) reproduces it."""
    import json

    from stream_ser.emotion import DEFAULT_MODELS
    from stream_ser.features import probe_mismatch

    meta = json.loads((DEFAULT_MODELS / "labels.json").read_text())
    assert set(meta["normalisation"]["features_probe"]) == {"mean", "std"}
    assert probe_mismatch(meta["normalisation"]) is None


def test_the_fingerprint_sees_a_one_db_change_of_the_log_floor(monkeypatch):
    import librosa

    from stream_ser import features

    saved = {"features_probe": features.probe()}
    power_to_db = librosa.power_to_db
    monkeypatch.setattr(librosa, "power_to_db", lambda S, **kw: power_to_db(S, top_db=79.0))
    features._probe_stats.cache_clear()
    try:
        assert "mfcc0 mean" in features.probe_mismatch(saved)
    finally:
        features._probe_stats.cache_clear()  # the next caller computes it with librosa as it is


def test_the_fingerprint_allows_rounding_and_names_a_malformed_one():
    from stream_ser.features import probe, probe_mismatch

    p = probe()
    nudged = {"mean": [v * (1 + 1e-5) for v in p["mean"]], "std": [v * (1 - 1e-5) for v in p["std"]]}
    assert probe_mismatch({"features_probe": nudged}) is None
    assert probe_mismatch({"kind": "window"}) is None  # a model from before fingerprints
    for bad in ({"mean": p["mean"]}, [1, 2], "x", {"mean": p["mean"], "std": p["std"][:5]},
                {"mean": [float("nan")] * len(p["mean"]), "std": p["std"]}, {"mean": [[1.0]], "std": [[1.0]]}):
        assert "unreadable features_probe" in probe_mismatch({"features_probe": bad}), bad
    assert "20 feature tracks" in probe_mismatch({"features_probe": {"mean": p["mean"][:20], "std": p["std"][:20]}})
    p["mean"][0] = 123.0  # callers may keep and change what they got
    assert probe()["mean"][0] != 123.0
