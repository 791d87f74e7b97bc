"""One feature extractor and one window logic for training and streaming."""

import numpy as np
import soundfile as sf

from stream_ser.features import N_FEATURES, N_FRAMES, WINDOW_SAMPLES, extract, raw_features
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


class _Recorder:
    """Stands in for the emotion model and keeps every feature matrix it is given."""

    labels = ("a", "b")

    def __init__(self):
        self.seen = []

    def predict(self, features):
        self.seen.append(features.copy())
        return np.array([0.5, 0.5])


def test_training_and_streaming_see_identical_windows_and_features():
    need_shared()
    clip = SER / "ravdess" / "03-01-05-02-01-01-18.flac"  # angry, actor 18
    audio, _ = sf.read(clip, dtype="float32")
    train_windows = clip_windows(audio)
    train_features = [extract(cut(audio, w)) for w in train_windows]
    model = _Recorder()
    events = [e for e in run_pipeline(clip, model) if e["type"] == "emotion"]
    assert len(events) == len(train_windows) >= 1
    for e, w in zip(events, train_windows):
        assert (round(e["start"] * 16000), round(e["end"] * 16000)) == (w.start, w.end)
    for a, b in zip(model.seen, train_features):
        np.testing.assert_array_equal(a, b)
