"""Cross-validation pieces (issue 20): folds, selection, the stream's smoothing,
arousal scoring, and the fast path's windows on ordinary speech."""

import csv

import numpy as np
import pytest

from stream_ser.training import cv
from stream_ser.training.dataset import WindowSet

from .conftest import SER, SPEECH, need_shared, run_cli


def test_folds_are_four_actors_two_men_two_women_covering_all_twenty():
    need_shared()
    with open(SER / "manifest.csv", newline="") as f:
        gender = {r["speaker"]: r["gender"] for r in csv.DictReader(f)}
    folds = cv.fold_speakers(SER)
    assert len(folds) == 5 and all(len(f) == 4 for f in folds)
    assert sorted(a for f in folds for a in f) == sorted(gender)  # disjoint, all 20
    assert all(sorted(gender[a] for a in f) == ["female", "female", "male", "male"] for f in folds)


def test_select_keeps_the_speakers_windows_and_renumbers_clips():
    ws = WindowSet(np.arange(6, dtype=np.float32).reshape(6, 1, 1), np.array([0, 0, 1, 2, 2, 2]),
                   ["angry", "sad", "happy"], ["a", "b", "a"], 0)
    s = cv.select(ws, {"a"})
    assert s.x.ravel().tolist() == [0, 1, 3, 4, 5]
    assert s.clip_of_window.tolist() == [0, 0, 1, 1, 1]
    assert s.clip_emotions == ["angry", "happy"] and s.clip_speakers == ["a", "a"]


def test_a_seed_ensemble_scores_the_mean_of_its_members_each_normalised_its_own_way():
    class Linear:  # a stand-in for a Keras model: softmax of the first feature times w
        def __init__(self, w):
            self.w = w

        def __call__(self, x, training=False):
            z = np.stack([x[:, 0, 0] * self.w, -x[:, 0, 0] * self.w], axis=1)
            p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
            return type("T", (), {"numpy": lambda _: p})()

    x = np.random.default_rng(0).normal(size=(3, 5, 2)).astype(np.float32)
    ws = WindowSet(x, np.array([0, 1, 2]), ["angry", "sad", "happy"], ["a", "a", "a"], 0)
    order = [np.arange(3)]
    window = {"kind": "window"}
    one, two = cv._predict(Linear(1.0), ws, window, order), cv._predict(Linear(-2.0), ws, window, order)
    both = cv._predict(cv.Ensemble([(Linear(1.0), window), (Linear(-2.0), window)]), ws, window, order)
    assert np.allclose(both, (one + two) / 2) and not np.allclose(both, one)


def test_smoothing_averages_the_last_three_windows_of_the_same_utterance():
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    order = np.array([0, 1, 2, 3, 4])
    utterance = np.array([0, 0, 0, 0, 1])
    out = cv.smoothed(probs, order, utterance)
    np.testing.assert_allclose(out[:, 0], [1.0, 0.5, 1 / 3, 0.0, 1.0])  # window 4 starts a new utterance


def test_arousal_ua_leaves_disgust_out_and_weighs_both_sides_equally():
    names = ["angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised"]

    def p(label):
        v = np.zeros(7)
        v[names.index(label)] = 1.0
        return v

    emotions = ["angry", "happy", "surprised", "sad", "neutral", "calm", "disgust"]
    # high side: 2 of 3 right (surprised read as sad); low side: 3 of 3; disgust ignored whatever it reads
    probs = np.stack([p("angry"), p("fearful"), p("sad"), p("sad"), p("neutral"), p("neutral"), p("angry")])
    assert cv.arousal_ua(emotions, probs, names) == pytest.approx((2 / 3 + 1.0) / 2)


def test_calm_speech_summary_names_the_largest_other_class():
    s = cv.ordinary_summary({"neutral": 0.7, "disgust": 0.2, "angry": 0.1})
    assert s == {"neutral": 0.7, "top_other": "disgust", "top_other_share": 0.2}
    assert not cv.meets_ordinary(s) and cv.meets_ordinary({"neutral": 0.8, "top_other_share": 0.08})


def test_fast_path_cuts_the_streams_windows_on_ordinary_speech():
    """The speech recordings give the 59 windows the stream emits on them
    (models/MODEL_CARD.md, `evaluate --speech`), a recording per session."""
    need_shared()
    ws = cv.speech_set(SPEECH)
    assert len(ws.x) == 59 and len(set(ws.clip_speakers)) == 13


def test_cv_cli_refuses_a_run_without_its_folds_and_a_fold_without_epochs(tmp_path):
    need_shared()
    r = run_cli("evaluate", "--cv", tmp_path / "nothing")
    assert r.returncode == 2 and "fold0/last.keras" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", "--fold", "0", "--out", tmp_path / "f0")
    assert r.returncode == 2 and "--epochs" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", "--fold", "0", "--all-actors", "--epochs", "1", "--out", tmp_path / "f0")
    assert r.returncode == 2 and "one of" in r.stderr


def test_calm_corpus_draw_keeps_the_acted_classes_equal_and_weighs_calm_as_a_share_of_neutral():
    from stream_ser.training.train import calm_draw

    # acted: 2 of class 0, 6 of class 1 (neutral), 4 of class 2; calm corpus: 20 neutral windows
    y = np.array([0] * 2 + [1] * 6 + [2] * 4 + [1] * 20)
    calm = np.array([False] * 12 + [True] * 20)
    p = calm_draw(y, calm, 3, 1, 0.5)
    assert p.sum() == pytest.approx(1.0)
    per_class = [p[~calm & (y == k)].sum() for k in range(3)]
    assert per_class == pytest.approx([per_class[0]] * 3)  # acted classes equal
    assert p[calm].sum() == pytest.approx(0.5 * per_class[1])  # calm: half the acted neutral windows
    assert np.ptp(p[calm]) == 0  # and spread evenly over the calm windows


def test_degraded_windows_follow_the_vad_on_the_degraded_audio(tmp_path, monkeypatch):
    """vad_on="degraded" cuts the windows where the VAD hears speech in the
    degraded audio (it calls white noise speech), as replay would; training
    copies keep the clean clip's positions."""
    need_shared()
    from stream_ser.training.dataset import load_windows

    monkeypatch.setenv("STREAM_SER_CACHE", str(tmp_path))
    clean = load_windows("test", "clean", data_dir=SER, limit=3)
    noisy = load_windows("test", "noisy", data_dir=SER, limit=3, seed=1, vad_on="degraded")
    assert len(noisy.x) > len(clean.x)  # the VAD calls the added noise speech, as replay would
    assert len(load_windows("test", "noisy", data_dir=SER, limit=3, seed=1).x) == len(clean.x)  # training: clean positions
