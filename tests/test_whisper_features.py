"""The second feature extractor: the bundled whisper encoder's summary of a
window, trained on, exported and streamed like the 22 tracks."""

import json

import numpy as np
import pytest
import soundfile as sf

from stream_ser.features import SAMPLE_RATE, WINDOW_SAMPLES, SessionNorm, extractor, probe, probe_mismatch

from .conftest import need_shared, read_events, run_cli


def test_a_window_is_the_mean_and_std_of_its_encoder_positions(jfk):
    from stream_ser import whisper_states as ws
    from stream_ser.whisper_states import MEL_FRAMES, N_VALUES, whisper_states

    assert ws.WINDOW_SAMPLES == WINDOW_SAMPLES  # its own copy (features imports it, not the reverse)

    audio, _ = sf.read(jfk, dtype="float32")
    window = audio[SAMPLE_RATE : SAMPLE_RATE + WINDOW_SAMPLES]
    extract = extractor("whisper")
    v = extract(window)
    assert v.shape == (1, N_VALUES) == (1, 768) and v.dtype == np.float32
    # the encoder's own output for the window's log-mel frames, summarised here
    w = whisper_states()._whisper
    states = np.asarray(w.encode(np.ascontiguousarray(w.feature_extractor(window)[None, :, :MEL_FRAMES])))[0]
    assert states.shape == (125, 384)
    np.testing.assert_allclose(v[0, :384], states.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(v[0, 384:], states.std(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(extract(window), v)  # the same window, the same numbers
    later = audio[5 * SAMPLE_RATE : 5 * SAMPLE_RATE + WINDOW_SAMPLES]
    assert np.abs(extract(later) - v).max() > 0.1  # other speech, other states
    with pytest.raises(ValueError, match="40000 samples"):
        extract(window[:1000])


def test_session_normalisation_of_one_768_value_frame_uses_the_prior_and_every_window_so_far():
    rng = np.random.default_rng(0)
    prior_mean, prior_std = rng.normal(0, 1, 768), rng.uniform(0.5, 2, 768)
    norm = SessionNorm(prior_mean, prior_std, prior_frames=2.0)
    centre, spread = rng.normal(0, 5, 768), rng.uniform(0.5, 3, 768)
    xs = (centre + spread * rng.standard_normal((50, 768))).astype(np.float32)
    out = [norm(x[None]) for x in xs]
    assert out[-1].shape == (1, 768)
    # window 50 of the session: 50 frames of its own and the prior counted as 2
    x64 = xs.astype(np.float64)
    mean = (2 * prior_mean + x64.sum(0)) / 52
    std = np.sqrt((2 * (prior_std**2 + prior_mean**2) + (x64**2).sum(0)) / 52 - mean**2)
    np.testing.assert_allclose(out[-1][0], (x64[-1] - mean) / (std + 1e-6), rtol=1e-4, atol=1e-4)
    # the first window leans on the prior: 1 frame against 2
    mean1 = (2 * prior_mean + x64[0]) / 3
    std1 = np.sqrt((2 * (prior_std**2 + prior_mean**2) + x64[0] ** 2) / 3 - mean1**2)
    np.testing.assert_allclose(out[0][0], (x64[0] - mean1) / (std1 + 1e-6), rtol=1e-4, atol=1e-4)


def test_whisper_fingerprint_refuses_other_encoder_states():
    p = probe("whisper")
    assert len(p["mean"]) == 768
    assert probe_mismatch({"features": "whisper", "features_probe": p}) is None
    nudged = {"mean": [v * 1.001 for v in p["mean"]], "std": p["std"]}  # another CPU's int8 kernels: tolerated
    assert probe_mismatch({"features": "whisper", "features_probe": nudged}) is None
    other = {"mean": [v * 1.05 for v in p["mean"]], "std": p["std"]}
    assert "other encoder states" in probe_mismatch({"features": "whisper", "features_probe": other})
    assert "768 feature tracks" in probe_mismatch({"features_probe": p})  # whisper states read as the 22 tracks
    assert "does not compute" in probe_mismatch({"features": "wav2vec", "features_probe": p})


def test_a_whisper_head_trains_exports_and_streams(tmp_path, jfk):
    need_shared()
    env = {"STREAM_SER_CACHE": str(tmp_path / "cache")}
    out, models = tmp_path / "run", tmp_path / "models"
    r = run_cli("train", "--arch", "head", "--limit", "6", "--variants", "clean", "--epochs", "2", "--out", out, env=env)
    assert r.returncode == 2 and "--features whisper" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", "--features", "whisper", "--arch", "head", "--limit", "6", "--variants", "clean", "--epochs", "2",
                "--out", out, env=env)
    assert r.returncode == 2 and "--time-mask 0" in r.stderr
    r = run_cli("train", "--features", "whisper", "--arch", "head", "--time-mask", "0", "--feature-mask", "0", "--limit", "6",
                "--variants", "clean,telephone", "--epochs", "2", "--out", out, "--export", models, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((models / "labels.json").read_text())
    assert meta["arch"] == "ser_head" and meta["normalisation"]["features"] == "whisper"
    assert meta["input"] == {"frames": 1, "features": 768, "names": ["encoder mean", "encoder std"]}
    assert len(meta["normalisation"]["mean"]) == 768 and meta["normalisation"]["prior_frames"] == 2.0
    events = tmp_path / "events.jsonl"
    r = run_cli("replay", jfk, "--speed", "0", "--plain", "--no-transcript", "--models", models, "--jsonl", events)
    assert r.returncode == 0, r.stderr[-3000:]
    emotion = [e for e in read_events(events) if e["type"] == "emotion"]
    assert len(emotion) >= 5 and all(e["label"] in meta["labels"] and 0 <= e["arousal"] <= 1 for e in emotion)
    assert len({tuple(e["window_probs"].values()) for e in emotion}) == len(emotion)  # each window its own states
    # a model resumed or scored on other features is refused, in one line
    r = run_cli("train", "--limit", "6", "--variants", "clean,telephone", "--epochs", "3", "--resume", "--out", out, env=env)
    assert r.returncode == 2 and "features whisper" in r.stderr and "Traceback" not in r.stderr
    meta["normalisation"]["features_probe"]["mean"] = [v * 1.05 for v in meta["normalisation"]["features_probe"]["mean"]]
    (models / "labels.json").write_text(json.dumps(meta))
    r = run_cli("replay", jfk, "--speed", "0", "--plain", "--no-transcript", "--models", models)
    assert r.returncode != 0 and "other encoder states" in r.stderr and "Traceback" not in r.stderr
