"""The pipeline as a component other code can trust: it owns its threads, a
failing stage ends the session within 1 s with an error that names it, leaving
the loop by any route leaves nothing running, and the code's layers point down."""

import ast
import gc
import json
import logging
import subprocess
import sys
import threading
import time
import weakref

import numpy as np
import pytest
import soundfile as sf

import stream_ser
from stream_ser.errors import ModelError, SourceError, StageError
from stream_ser.events import EmotionEvent
from stream_ser.pipeline import Pipeline, PipelineOptions, check_window_options
from stream_ser.sources import FileSource
from stream_ser.tagging import tag_emotion
from stream_ser.vad import Utterance
from stream_ser.windows import WindowOptions, clip_windows

from .conftest import CLI, ROOT, SR, need, read_events

STAGE_THREADS = {"capture", "emotion", "transcriber"}


def stage_threads():
    return [t for t in threading.enumerate() if t.name in STAGE_THREADS and t.is_alive()]


def no_stage_threads_within(seconds=2.0):
    end = time.monotonic() + seconds
    while stage_threads() and time.monotonic() < end:
        time.sleep(0.02)
    return not stage_threads()


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory, jfk):
    """jfk three times with pauses (33 s): long enough that a failure lands mid-session."""
    y, _ = sf.read(jfk, dtype="float32")
    path = tmp_path_factory.mktemp("audio") / "long.wav"
    sf.write(path, np.concatenate([y, np.zeros(SR, np.float32)] * 3), SR)
    return path


class Failing:
    """Wraps a model; ``method`` raises from its ``after``-th call on, and
    remembers when it first did."""

    def __init__(self, inner, method, after):
        self.inner, self.method, self.after, self.calls, self.failed_at = inner, method, after, 0, None

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name != self.method:
            return attr

        def call(*a, **k):
            self.calls += 1
            if self.calls >= self.after:
                self.failed_at = self.failed_at or time.monotonic()
                raise RuntimeError("injected failure")
            return attr(*a, **k)
        return call


def run_until_failure(pipeline, failing):
    events = []
    with pytest.raises(StageError) as info:
        for ev in pipeline.events():
            events.append(ev)
    ended = time.monotonic()
    return info.value, events, ended - failing.failed_at


def test_emotion_stage_failure_ends_the_session_within_a_second(long_speech, emotion_model, whisper_model):
    failing = Failing(emotion_model, "predict", 4)
    p = Pipeline(FileSource(long_speech, speed=0), PipelineOptions(), emotion_model=failing, whisper_model=whisper_model)
    error, events, after = run_until_failure(p, failing)
    assert error.stage == "emotion" and "injected failure" in str(error) and str(error).count("\n") == 0
    assert isinstance(error.__cause__, RuntimeError)
    assert after < 1.0, after
    assert sum(e.type == "emotion" for e in events) == 3  # the windows classified before it
    assert no_stage_threads_within(2.0)


def test_transcript_stage_failure(long_speech, emotion_model, whisper_model):
    failing = Failing(whisper_model, "transcribe", 2)
    p = Pipeline(FileSource(long_speech, speed=0), PipelineOptions(), emotion_model=emotion_model, whisper_model=failing)
    error, events, after = run_until_failure(p, failing)
    assert error.stage == "transcript" and after < 1.0, (error, after)
    assert no_stage_threads_within(2.0)


class BrokenSource(FileSource):
    def __init__(self, path, after):
        super().__init__(path, speed=0, block_seconds=0.032)
        self.after, self.failed_at = after, None

    def blocks(self):
        for k, item in enumerate(super().blocks()):
            if k == self.after:
                self.failed_at = time.monotonic()
                raise OSError("the disk went away")
            yield item


def test_source_failure(long_speech, emotion_model, whisper_model):
    source = BrokenSource(long_speech, after=300)  # ~10 s in
    p = Pipeline(source, PipelineOptions(), emotion_model=emotion_model, whisper_model=whisper_model)
    error, events, after = run_until_failure(p, source)
    assert error.stage == "source" and "the disk went away" in str(error) and after < 1.0, (error, after)
    assert any(e.type == "emotion" for e in events)
    assert no_stage_threads_within(2.0)


@pytest.mark.parametrize("stage,part,method", [("vad", "gate", "push"), ("windower", "windower", "ready")])
def test_segmenter_failures_name_their_stage(long_speech, emotion_model, stage, part, method):
    p = Pipeline(FileSource(long_speech, speed=0), PipelineOptions(transcript=False), emotion_model=emotion_model)
    failing = Failing(getattr(p.segmenter, part), method, 30)  # a call per 0.512 s block: ~15 s in
    setattr(getattr(p.segmenter, part), method, failing.__getattr__(method))
    error, events, after = run_until_failure(p, failing)
    assert error.stage == stage and after < 1.0, (error, after)
    assert no_stage_threads_within(2.0)


def test_cli_stage_failure_exits_1_with_its_jsonl_intact(tmp_path, long_speech):
    """The CLI: exit 1, one line naming the stage, and every event before it on disk."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        "from stream_ser.emotion import EmotionModel\n"
        "from stream_ser.cli import main\n"
        "real, calls = EmotionModel.predict, [0]\n"
        "def predict(self, x):\n"
        "    calls[0] += 1\n"
        "    if calls[0] > 6:\n"  # 1 call at load, then 5 windows
        "        raise RuntimeError('injected failure')\n"
        "    return real(self, x)\n"
        "EmotionModel.predict = predict\n"
        "sys.exit(main(sys.argv[1:]))\n")
    jsonl = tmp_path / "e.jsonl"
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, str(script), "replay", str(long_speech), "--speed", "0", "--plain", "--no-transcript",
                        "--jsonl", str(jsonl)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("stream-ser:")]
    assert lines == ["stream-ser: emotion stage failed: injected failure; stopping (events so far are saved)"], r.stderr
    events = read_events(jsonl)  # every line parses
    assert sum(e["type"] == "emotion" for e in events) == 5  # the windows classified before the failure
    assert time.monotonic() - t0 < 60


# ---------------------------------------------------------------- lifetimes
def test_break_out_of_replay_leaves_no_threads_and_closes_the_file(long_speech):
    gen = stream_ser.replay(str(long_speech), speed=1, options=PipelineOptions(transcript=False))
    for ev in gen:
        if ev.type == "speech":
            break
    t0 = time.monotonic()
    gen.close()  # what `break` out of a `for` over the generator leads to once the loop's reference goes
    assert no_stage_threads_within(2.0) and time.monotonic() - t0 < 2.0


def test_leaving_by_exception_gc_and_with_block(long_speech, emotion_model, whisper_model):
    def pipeline():
        return Pipeline(FileSource(long_speech, speed=1), PipelineOptions(), emotion_model=emotion_model, whisper_model=whisper_model)

    # an exception in the consumer
    p = pipeline()
    with pytest.raises(KeyError):
        for ev in p.events():
            if ev.type == "speech":
                raise KeyError("consumer bug")
    assert no_stage_threads_within(2.0) and p.source._file.closed
    # garbage collection of a half-read iterator
    p = pipeline()
    gen = p.events()
    while next(gen).type != "speech":
        pass
    assert stage_threads()
    source = p.source
    del gen, p
    gc.collect()
    assert no_stage_threads_within(2.0) and source._file.closed
    # a with block left mid-session
    with pipeline() as p:
        for ev in p.events():
            if ev.type == "speech":
                break
    assert no_stage_threads_within(2.0) and p.alive_threads == [] and p.source._file.closed


class TruncatedSource(BrokenSource):
    def blocks(self):
        for k, item in enumerate(FileSource.blocks(self)):
            if k == self.after:
                raise SourceError("the file ends early")
            yield item


@pytest.mark.parametrize("ending", ["clean", "emotion stage fails", "source breaks", "source ends with an error"])
def test_a_finished_pipeline_is_freed_without_the_cycle_collector(ending, jfk, long_speech, emotion_model, whisper_model):
    # a loop over files must stay flat: the stages' error callback into their
    # pipeline, and the tracebacks of the errors it keeps, once made cycles
    # that kept each file's models alive until gc ran
    model = Failing(emotion_model, "predict", 4) if ending == "emotion stage fails" else emotion_model
    source = {"source breaks": BrokenSource, "source ends with an error": TruncatedSource}.get(ending)
    source = source(long_speech, after=300) if source else FileSource(jfk, speed=0)
    gc.disable()
    try:
        p = Pipeline(source, PipelineOptions(), emotion_model=model, whisper_model=whisper_model)
        events, error = [], None
        try:
            for ev in p.events():
                events.append(ev)
        except (StageError, SourceError) as e:
            error = e  # the caller keeps the error: it must not keep the pipeline
        assert (error is None) == (ending == "clean") and any(e.type == "emotion" for e in events)
        pipeline, worker, transcriber = weakref.ref(p), weakref.ref(p.emotion), weakref.ref(p.transcriber)
        del p
        assert pipeline() is None and worker() is None and transcriber() is None, ending
    finally:
        gc.enable()


def test_a_model_that_fails_to_load_closes_the_source(jfk, tmp_path):
    source = FileSource(jfk, speed=0)
    options = PipelineOptions(transcript=False)
    options.emotion.models_dir = tmp_path  # no labels.json
    with pytest.raises(ModelError):
        Pipeline(source, options)
    assert source._file.closed


def test_break_out_of_listen_closes_the_device(tmp_path, jfk):
    """On the virtual microphone: after `break`, within 2 s no stage thread
    runs and PulseAudio has no recording stream open (the device is closed)."""
    need("pulseaudio", "pactl", "paplay")
    from stream_ser.virtual_mic import VirtualMic

    script = tmp_path / "listen.py"
    script.write_text(
        "import subprocess, threading, time, sys\n"
        "import stream_ser\n"
        "from stream_ser.pipeline import PipelineOptions\n"
        "def recording():\n"
        "    out = subprocess.run(['pactl', 'list', 'short', 'source-outputs'], capture_output=True, text=True).stdout\n"
        "    return bool(out.strip())\n"
        "gen = stream_ser.listen(options=PipelineOptions(transcript=False))\n"
        "for ev in gen:\n"
        "    if ev.type == 'status' and ev.end > 1.0:\n"
        "        was = recording()\n"
        "        break\n"
        "gen.close()\n"
        "t0 = time.monotonic()\n"
        "names = {'capture', 'emotion', 'transcriber'}\n"
        "while (recording() or any(t.name in names for t in threading.enumerate())) and time.monotonic() - t0 < 2:\n"
        "    time.sleep(0.05)\n"
        "left = [t.name for t in threading.enumerate() if t.name in names]\n"
        "print(was, recording(), left, round(time.monotonic() - t0, 2))\n")
    with VirtualMic() as mic:
        r = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=dict(mic.env, TF_CPP_MIN_LOG_LEVEL="3"),
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    was, still, left, took = r.stdout.split(maxsplit=3)[0], r.stdout.split()[1], r.stdout.split("[")[1].split("]")[0], float(r.stdout.split()[-1])
    assert was == "True" and still == "False" and left == "" and took < 2.0, r.stdout


# ---------------------------------------------------------------- one segmenter for the stream and training
def test_stream_and_training_cut_identical_windows(jfk, emotion_model):
    audio, _ = sf.read(jfk, dtype="float32")
    p = Pipeline(FileSource(jfk, speed=0), PipelineOptions(transcript=False), emotion_model=emotion_model)
    streamed = [(round(e.start * SR), e.utterance) for e in p.events() if isinstance(e, EmotionEvent)]
    cut = [(w.start, w.utterance) for w in clip_windows(audio)]
    assert streamed == cut and len(cut) >= 8


def test_fast_replay_results_do_not_depend_on_the_block_size(jfk, emotion_model):
    # fast replay reads 0.512 s blocks (32 ms reads were most of the capture
    # thread's CPU); the VAD, the DC filter and the windows carry their state
    # across blocks, so what is found must be what 32 ms blocks find
    def found(block_seconds):
        src = FileSource(jfk, speed=0, block_seconds=block_seconds)
        events = [e.to_dict() for e in Pipeline(src, PipelineOptions(transcript=False), emotion_model=emotion_model).events()]
        return src.block_seconds, sorted(repr({k: e[k] for k in ("type", "start", "end", "state", "probs") if k in e})
                                         for e in events if e["type"] in ("speech", "emotion"))

    default_block, default = found(None)
    small_block, small = found(0.032)
    assert (default_block, small_block) == (0.512, 0.032)
    assert default == small and sum(r.startswith("{'type': 'emotion'") for r in small) >= 8
    assert FileSource(jfk, speed=1).block_seconds == 0.032  # paced: a microphone's blocks


def test_waiting_windows_get_their_features_at_once_with_the_same_events(jfk, emotion_model):
    """A fast replay hands the emotion worker several windows at a time: their
    features are computed on feature threads, and the events are the ones a
    one-at-a-time worker emits, in the same order."""
    from stream_ser.emotion import EmotionOptions

    class Recording:
        def __init__(self, inner):
            self.inner, self.threads = inner, []

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def extract(self, window):
            self.threads.append(threading.current_thread().name)
            return self.inner.extract(window)

    def run(threads):
        model = Recording(emotion_model)
        options = PipelineOptions(transcript=False, emotion=EmotionOptions(feature_threads=threads))
        events = [e for e in Pipeline(FileSource(jfk, speed=0), options, emotion_model=model).events() if e.type == "emotion"]
        return [(e.start, e.end, e.utterance, e.window_probs, e.probs) for e in events], model.threads

    one, one_threads = run(1)
    two, two_threads = run(2)
    assert one == two and len(one) >= 8
    assert set(one_threads) == {"emotion"}
    assert any(t.startswith("emotion-features") for t in two_threads), two_threads


def test_with_the_transcript_the_emotion_stage_leaves_a_core_to_the_decodes(jfk, emotion_model, whisper_model):
    import os

    from stream_ser.emotion import EmotionOptions

    options = PipelineOptions(emotion=EmotionOptions(feature_threads=2))
    with Pipeline(FileSource(jfk, speed=0), options, emotion_model=emotion_model, whisper_model=whisper_model) as p:
        assert p.emotion.options.feature_threads == max(1, min(2, (os.cpu_count() or 1) - 1))
    with Pipeline(FileSource(jfk, speed=0), PipelineOptions(transcript=False, emotion=EmotionOptions(feature_threads=2)),
                  emotion_model=emotion_model) as p:
        assert p.emotion.options.feature_threads == 2
    assert options.emotion.feature_threads == 2  # the caller's options are left as they were


# ---------------------------------------------------------------- small pieces
def emo(start, end, probs):
    labels = ["angry", "neutral", "sad"]
    return EmotionEvent(type="emotion", start=start, end=end, emitted_at=0.0, latency_ms=0.0, label="",
                        window_probs=dict(zip(labels, probs)))


def test_tag_emotion_weighs_windows_by_overlap():
    a, b = emo(0.0, 2.5, [0.8, 0.2, 0.0]), emo(1.0, 3.5, [0.0, 0.2, 0.8])
    assert tag_emotion(0.0, 1.0, [a, b]) == {"label": "angry", "confidence": 0.8}
    # [2, 3.5): 0.5 s of a, 1.5 s of b -> angry 0.2, neutral 0.2, sad 0.6
    assert tag_emotion(2.0, 3.5, [a, b]) == {"label": "sad", "confidence": 0.6}
    assert tag_emotion(3.0, 3.0, [a, b]) == {"label": "sad", "confidence": 0.8}  # a point: the window containing it
    assert tag_emotion(4.0, 5.0, [a, b]) is None


def test_window_options_are_checked_against_the_model(caplog):
    trained = {"offset": 0.6, "lead": 0.4, "hop": 1.0}
    check_window_options(trained, WindowOptions())  # the same: silent
    with pytest.raises(ModelError, match="0.4 s before the speech onset"):
        check_window_options(trained, WindowOptions(lead=0.2))
    with caplog.at_level(logging.WARNING, logger="stream_ser"):
        check_window_options(trained, WindowOptions(hop=0.5))
    assert [r.getMessage() for r in caplog.records] == ["the emotion model was trained with windows every 1 s; this run cuts one every 0.5 s"]


def test_compute_ratio_counts_cpu_not_waiting(jfk, emotion_model):
    """A model that waits 40 ms a window (as on a busy machine) costs wall time, not CPU time."""

    class Waiting:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def predict(self, x):
            time.sleep(0.04)
            return self.inner.predict(x)

    p = Pipeline(FileSource(jfk, speed=0), PipelineOptions(transcript=False), emotion_model=Waiting(emotion_model))
    events = list(p.events())
    last = [e for e in events if e.type == "status"][-1]
    windows = sum(e.type == "emotion" for e in events)
    waited = windows * 0.04 / last.end
    assert last.wall_ratio["emotion"] >= waited * 0.95
    assert last.compute_ratio["emotion"] < last.wall_ratio["emotion"] - waited * 0.8, last


ENCODER_CPU = """
import json, threading
import numpy as np
from stream_ser import cpu
from stream_ser.emotion import DEFAULT_MODELS, EmotionModel

model = EmotionModel(DEFAULT_MODELS)  # the first load of the whisper encoder in this process
claimed = set(cpu._claimed)

x = np.random.default_rng(0).standard_normal(40000).astype(np.float32) * 0.1
u0, e0 = cpu.unclaimed_seconds(), cpu.threads_seconds(claimed)
worker = threading.Thread(target=lambda: [model.extract(x) for _ in range(60)])  # as the emotion worker does
worker.start()
worker.join()  # this thread waits: the decoder's count, taken here, must not grow
print(json.dumps({"features": model.features, "claimed": len(claimed),
                  "encoder": cpu.threads_seconds(claimed) - e0, "unclaimed": cpu.unclaimed_seconds() - u0}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_emotion_encoders_cpu_is_not_counted_as_the_decoders(emotion_model):
    """Both stages compute on CTranslate2 threads; the transcript's CPU ratio
    counts the unclaimed ones, so the emotion encoder's are claimed when it loads."""
    if emotion_model.features != "whisper":
        pytest.skip("the shipped model does not read the whisper encoder")
    out = subprocess.run([sys.executable, "-c", ENCODER_CPU], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["claimed"] >= 1, r
    assert r["encoder"] >= 0.1, r  # 60 windows of encoder work ran on the claimed threads
    assert r["unclaimed"] <= 0.4 * r["encoder"], r  # unclaimed, the encoder counted 1.0x here; claimed, 0.16x


def test_listen_without_portaudio_is_one_line(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    for args in (["listen", "--no-transcript"], ["listen", "-l"]):
        r = subprocess.run(CLI + args, cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={"PYTHONPATH": str(fake), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert r.stderr.strip().splitlines() == ["stream-ser: PortAudio is not installed (e.g. `apt-get install libportaudio2`)"]


# ---------------------------------------------------------------- LocalAgreement, with a scripted decoder
class Word:
    def __init__(self, start, end, word):
        self.start, self.end, self.word = start, end, word


class Segment:
    def __init__(self, words):
        self.words = words


class ScriptedDecoder:
    """Returns the next scripted hypothesis (word i spans 0.4 i .. 0.4 i + 0.3 s)."""

    def __init__(self, script):
        self.script, self.calls = script, []

    def transcribe(self, audio, **kw):
        self.calls.append(len(audio) / SR)
        text = self.script[min(len(self.calls), len(self.script)) - 1]
        return [Segment([Word(0.4 * i, 0.4 * i + 0.3, " " + w) for i, w in enumerate(text.split())])], None


def run_transcriber(script, seconds=4.0):
    from stream_ser.ring import RingBuffer
    from stream_ser.transcribe import TranscribeOptions, Transcriber

    ring = RingBuffer(30)
    out = []
    decoder = ScriptedDecoder(script)
    # one partial decode a second, committed by agreement only
    options = TranscribeOptions(cadence=1.0, first_decode=1.0, settle=None)
    t = Transcriber(decoder, ring, out.append, options, live=False)
    t.start()
    t.utterance(Utterance("start", 0, 0, index=0))
    block = np.zeros(SR // 10, np.float32)
    for _ in range(int(seconds * 10)):
        ring.write(block)
        deadline = time.monotonic() + 2
        while len(decoder.calls) < ring.written // SR and time.monotonic() < deadline:
            time.sleep(0.005)  # one decode per second of audio, in order, before more audio arrives
    # the speech ends after the last partial decode's audio, so the utterance gets its own final decode
    t.utterance(Utterance("end", int((seconds + 0.5) * SR), index=0))
    ring.write(np.zeros(SR, np.float32))
    t.finish()
    ring.close()
    t.join(10)
    assert not t.is_alive() and t.error is None
    return out, decoder


def test_local_agreement_commits_what_two_decodes_agree_on_and_never_rewrites():
    script = ["ask", "ask not", "ask not what", "ask not what your", "ask not what your country"]
    out, decoder = run_transcriber(script)
    finals = [e.text for e in out if e.final and e.text]
    # each word is committed once, in order, and the utterance's end commits the rest
    assert " ".join(finals).split() == "ask not what your country".split(), finals
    assert len(finals) >= 2  # words were committed before the end, not only at it
    partials = [e for e in out if not e.final]
    assert partials and all(e.text for e in partials[:1])
    # a final is never re-emitted: no word appears in two finals
    seen = " ".join(finals).split()
    assert len(seen) == len(set(seen))


def test_local_agreement_holds_back_words_the_decodes_disagree_on():
    # the second word flips between decodes: it is not committed until the final decode
    script = ["ask", "ask knot", "ask not", "ask knot", "ask not"]
    out, _ = run_transcriber(script)
    finals = [e.text for e in out if e.final and e.text]
    assert finals and finals[0] == "ask", finals
    assert "knot" not in " ".join(finals[:-1]) and " ".join(finals).split() == ["ask", "not"], finals


class TimedDecoder(ScriptedDecoder):
    """Returns the next scripted hypothesis, given as (word, start s, end s)."""

    def transcribe(self, audio, **kw):
        self.calls.append(len(audio) / SR)
        words = self.script[min(len(self.calls), len(self.script)) - 1]
        return [Segment([Word(a, b, " " + w) for w, a, b in words])], None


SAID = "ask not what your country"


@pytest.mark.parametrize("shifted,said", [
    # the re-decoded "what" ends 0.2 s early: "your"'s midpoint (1.05 s) falls before the committed
    # audio's end (1.1 s), so a cut by time alone drops it
    ([("ask", 0.0, 0.3), ("not", 0.4, 0.7), ("what", 0.7, 0.9), ("your", 0.9, 1.2), ("country", 1.3, 1.6)], SAID),
    # the re-decoded "what" ends 0.25 s late: its midpoint (1.15 s) falls after, so a cut by time repeats it
    ([("ask", 0.0, 0.3), ("not", 0.4, 0.7), ("what", 0.95, 1.35), ("your", 1.4, 1.6), ("country", 1.6, 1.9)], SAID),
    # the end's decode reads "what" as two words, the second just over the committed audio's end (its midpoint
    # 1.12 s): a cut by time keeps it ("And so my I fellow Americans" came so, from "my" and then "am I")
    ([("ask", 0.0, 0.3), ("not", 0.4, 0.7), ("wha", 0.8, 1.08), ("it", 1.08, 1.16), ("your", 1.3, 1.5), ("country", 1.6, 1.9)], SAID),
    # another reading of "what", then a new word that starts just inside the committed audio: the new word stays
    ([("ask", 0.0, 0.3), ("not", 0.4, 0.7), ("wot", 0.8, 1.0), ("your", 1.0, 1.3), ("country", 1.4, 1.7)], SAID),
    # a repeated word: the decode's copy of "what" that starts after the committed audio is new, not the anchor
    ([("ask", 0.0, 0.3), ("not", 0.4, 0.7), ("a", 0.8, 1.1), ("what", 1.2, 1.35), ("your", 1.4, 1.6), ("country", 1.6, 1.9)],
     "ask not what what your country"),
    # whisper squeezes the re-read "what" to zero length at the committed audio's end: it is the committed word
    # ("a confused confused complaint" came so)
    ([("ask", 0.0, 0.3), ("not", 0.4, 0.7), ("what", 1.1, 1.1), ("your", 1.1, 1.4), ("country", 1.5, 1.8)], SAID),
])
def test_a_decode_picks_up_after_the_last_committed_word_when_word_times_move(shifted, said):
    from stream_ser.ring import RingBuffer
    from stream_ser.transcribe import TranscribeOptions, Transcriber

    first = [("ask", 0.0, 0.3), ("not", 0.4, 0.7), ("what", 0.8, 1.1)]
    decoder = TimedDecoder([first, first, shifted])
    ring, out = RingBuffer(30), []
    t = Transcriber(decoder, ring, out.append, TranscribeOptions(cadence=1.0, first_decode=1.0, settle=None), live=False)
    t.start()
    t.utterance(Utterance("start", 0, 0, index=0))
    for k in range(1, 3):  # two partial decodes that agree on "ask not what"
        ring.write(np.zeros(SR, np.float32))
        deadline = time.monotonic() + 5
        while len(decoder.calls) < k and time.monotonic() < deadline:
            time.sleep(0.005)
    t.utterance(Utterance("end", int(2.5 * SR), index=0))  # the end's decode is the shifted one
    ring.write(np.zeros(2 * SR, np.float32))
    t.finish()
    ring.close()
    t.join(10)
    assert not t.is_alive() and t.error is None
    finals = [e.text for e in out if e.final and e.text]
    assert finals[0] == "ask not what", finals
    assert " ".join(finals).split() == said.split(), finals


def test_context_words_are_not_taken_for_the_committed_ones():
    # an utterance decoded with the previous one's audio as context: its committed "the" also occurs there
    from stream_ser.transcribe import Transcriber, Word as W, _Utterance

    u = _Utterance(1, int(0.8 * SR), onset=int(0.8 * SR), committed_until=int(1.2 * SR))
    u.committed_words = [W(int(0.9 * SR), int(1.2 * SR), " the")]
    decode = [W(int(a * SR), int(b * SR), " " + t) for t, a, b in
              [("to", 0.0, 0.2), ("the", 0.2, 0.4), ("end", 0.4, 0.7), ("the", 1.0, 1.45), ("cat", 1.5, 1.7)]]
    assert [w.text.strip() for w in Transcriber._fresh(u, decode)] == ["cat"]


def test_a_partial_that_was_committed_is_not_committed_again_at_stop():
    from stream_ser.ring import RingBuffer
    from stream_ser.transcribe import TranscribeOptions, Transcriber, _Utterance

    # decode 1 shows "your" as a partial; decode 2 commits "ask your" and leaves nothing open
    decoder = TimedDecoder([[("ask", 0, 0.3), ("your", 1.2, 1.5)], [("ask", 0, 0.3), ("your", 0.95, 1.15)]])
    ring, out = RingBuffer(30), []
    t = Transcriber(decoder, ring, out.append, TranscribeOptions(cadence=1.0, first_decode=1.0, settle=None), live=True)
    u = _Utterance(0, 0)
    t._utts.append(u)
    ring.write(np.zeros(2 * SR, np.float32))
    t._step_open(u)
    ring.write(np.zeros(SR, np.float32))
    t._step_open(u)
    t.commit_hypotheses()  # what a session stopped now does
    finals = " ".join(e.text for e in out if e.final).split()
    assert finals == ["ask", "your"], [(e.final, e.text) for e in out]


# ---------------------------------------------------------------- the code's layers
LAYERS = ["errors", "cpu", "quiet", "labels", "limits", "codec", "device", "whisper_states", "features", "events", "schema", "outputs", "ring", "vad", "windows", "sources",
          "push_source", "meter", "tagging", "emotion", "transcribe", "pipeline", "session", "plain", "keys", "dashboard", "virtual_mic", "training",
          "report", "atomic", "batch", "ray_engine", "serve", "cli",
          "__main__", "__init__"]


def test_no_module_imports_one_above_it():
    """Dependency direction: cli -> pipeline -> stages -> features/events ->
    errors; serving never imports training, nothing imports cli."""
    pkg = ROOT / "stream_ser"
    problems = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg).with_suffix("")
        me = rel.parts[0]
        assert me in LAYERS, f"{rel}: add it to LAYERS in its place"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = list(rel.parts[:-node.level]) if node.level <= len(rel.parts) else []
                target = (base + (node.module or "").split("."))[0] if node.module else None
                names = [target] if target else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stream_ser."):
                names = [node.module.split(".")[1]]
            else:
                continue
            for name in names:
                if name in LAYERS and name != me and LAYERS.index(name) > LAYERS.index(me) and me not in ("__init__", "__main__"):
                    problems.append(f"{rel} imports {name}")
    assert not problems, problems
