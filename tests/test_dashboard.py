"""The live dashboard: rendered from hand-made events (fast), and the real CLI
in tmux on a replay and on the virtual microphone, read back with capture-pane."""

from __future__ import annotations

import io
import math
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from stream_ser.dashboard import Dashboard
from stream_ser.plain import summary_lines
from stream_ser.session import SessionState
from stream_ser.events import EmotionEvent, SpeechEvent, StatusEvent, TranscriptEvent

from .conftest import ROOT, need
from stream_ser.virtual_mic import VirtualMic
from stream_ser.labels import EMOTIONS

LABELS = list(EMOTIONS)
CELLS = "ADFHNSU?·░ "  # what a timeline cell can show


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def emotion(start, label="sad", conf=0.4, latency=120.0, utt=0):
    rest = (1 - conf) / (len(LABELS) - 1)
    probs = {k: (conf if k == label else rest) for k in LABELS}
    return EmotionEvent("emotion", start, start + 2.5, 0, latency, label=label, confidence=conf, probs=probs,
                        window_probs=probs, utterance=utt)


def status(end, in_speech=True, level=-18.0, **kw):
    return StatusEvent("status", end - 1, end, 0, 0, source="test mic", sample_rate=48000, level_dbfs=level, peak=0.3,
                       compute_ratio={"emotion": 0.08, "transcript": 0.75}, in_speech=in_speech, **kw)


def speech(t, state, utt=0):
    return SpeechEvent("speech", t, t, 0, 0.5, state=state, utterance=utt)


def transcript(start, end, text, final=True, emo=("sad", 0.4), latency=1500.0, utt=0):
    tag = {"label": emo[0], "confidence": emo[1]} if emo and final else None
    return TranscriptEvent("transcript", start, end, 0, latency, text=text, final=final, emotion=tag, utterance=utt)


def session(dash: Dashboard) -> None:
    """A 12 s call: one utterance 0.5-9 s (sad, then angry), a pause, a second one."""
    for ev in [status(1, False, -math.inf), speech(0.5, "start"), status(2), status(3), emotion(0.5), emotion(1.5),
               transcript(0.5, 2.0, "ask not what your country can do for you"), status(4), emotion(2.5),
               emotion(3.5, "angry", 0.5), status(5), emotion(4.5, "angry", 0.5), status(6), emotion(5.5, "angry", 0.5),
               transcript(2.0, 6.0, "ask what you can do", emo=("angry", 0.5)), status(7), emotion(6.5, "angry", 0.5),
               speech(9.0, "end"), status(9, False), status(10, False), speech(10.5, "start", 1), status(11),
               transcript(10.5, 11.0, "for your coun", final=False, utt=1), status(12)]:
        dash.update(ev)


def render(dash: Dashboard, width=80, height=24) -> list[str]:
    console = Console(record=True, width=width, height=height, file=io.StringIO(), color_system="truecolor")
    dash.console = console
    console.print(dash)
    return console.export_text().rstrip("\n").split("\n")


def timeline_strip(lines: list[str]) -> str:
    """The cells of the timeline: the row under the timeline panel's title."""
    k = next(i for i, line in enumerate(lines) if "emotion timeline" in line)
    return lines[k + 1].strip().strip("│").strip()


# ---------------------------------------------------------------- fast: rendering hand-made events
def test_renders_every_region_in_80x24():
    clock = Clock()
    dash = Dashboard("test mic", 48000, clock=clock, whole_session=False)
    session(dash)
    lines = render(dash)
    text = "\n".join(lines)
    assert len(lines) == 24 and max(len(line) for line in lines) <= 80, text
    assert "test mic · 48 kHz" in lines[0] and "q quit" in lines[0]
    assert "A   A N G R Y   0.50" in text  # utterance 2 has no window yet: still the last one, within its hold
    assert "now · utterance 0 · 6.5-9.0 s" in text  # the JSONL's utterance number and span
    assert "ask not what your country can do for you" in text and "ask what you can do" in text
    assert re.search(r"S sad\s+ask not", text) and re.search(r"A angry\s+ask what", text)  # emotion tags
    assert "for your coun" in text  # the partial
    assert re.search(r"emotion\s+120\s+120\s+120\s+0\.08×", text), text  # latency last/p50/p95 and compute/audio
    assert re.search(r"transcript\s+1500\s+1500\s+1500\s+0\.75×", text), text
    assert "-18 dBFS" in text and "● speech" in text
    assert all(f"{k[0].upper() if k != 'surprised' else 'U'} {k}" in text for k in LABELS)  # the legend
    strip = timeline_strip(lines)
    assert set(strip) <= set(CELLS), strip
    # a cell a second, the last minute ending now (12 s): nothing before 0 s, speech 0.5-9 s (windows centred
    # on 1.75-3.75 s sad, 4.75-7.75 s angry), silence 9-10.5 s, then speech whose first window is not done
    assert strip == "SSSSAAAAA·░░", strip
    assert "|0:00" in lines[lines.index(next(x for x in lines if "emotion timeline" in x)) + 2]


def test_narrow_terminal_keeps_the_latency_table_readable():
    dash = Dashboard("test mic", 48000, clock=Clock(), whole_session=False)
    session(dash)
    text = "\n".join(render(dash, 60, 16))
    # too narrow for last/p50/p95: the median and the compute ratio, whole
    assert re.search(r"latency ms\s+p50\s+compute", text) and re.search(r"transcript\s+1500\s+0\.75×", text), text


def test_now_shows_emotion_uncertain_and_listening():
    clock = Clock()
    dash = Dashboard(clock=clock, min_confidence=0.2, hold=2.0)
    dash.update(speech(0.0, "start"))
    dash.update(emotion(0.0, "happy", 0.45))
    text = "\n".join(render(dash))
    assert "H A P P Y" in text and "0.45" in text
    dash.update(emotion(1.0, "fearful", 0.15))
    text = "\n".join(render(dash))
    assert "UNCERTAIN   fearful? 0.15" in text
    dash.update(speech(3.0, "end"))
    clock.t += 1.0  # within hold: the last emotion stays
    assert "UNCERTAIN" in "\n".join(render(dash))
    clock.t += 5.0
    text = "\n".join(render(dash))
    assert "LISTENING   last: fearful 0.15" in text


def test_a_new_utterance_does_not_inherit_the_old_emotion():
    clock = Clock()
    dash = Dashboard(clock=clock)
    for ev in (speech(0.0, "start", 0), emotion(0.0, "happy", 0.45, utt=0), speech(3.0, "end", 0)):
        dash.update(ev)
    clock.t += 10
    dash.update(speech(13.0, "start", 1))
    assert "SPEECH   last: happy 0.45" in "\n".join(render(dash))  # no window of this utterance yet
    dash.update(emotion(13.0, "sad", 0.45, utt=1))
    clock.t += 5
    assert "S A D   0.45" in "\n".join(render(dash))  # still talking: stays "now" past the hold


def test_timeline_tells_an_utterance_by_its_own_windows():
    """JFK's "ask not" (3.3-4.4 s) follows a pause; the last window of the
    sentence before it (1.66-4.16 s, happy) runs on into it and is nearer the
    cell's middle than the new utterance's first window (neutral)."""
    dash = Dashboard(clock=Clock(), whole_session=False)
    events = [status(1, False, -math.inf), speech(0.06, "start", 0), speech(2.28, "end", 0), speech(3.27, "start", 1),
              speech(4.41, "end", 1)]
    windows = [(0.0, "happy", 0), (0.66, "happy", 0), (1.66, "happy", 0), (2.87, "neutral", 1), (3.87, "neutral", 1)]
    events += [emotion(t, label, 0.5, utt=u) for t, label, u in windows] + [status(6, False)]
    for ev in events:
        dash.update(ev)
    assert timeline_strip(render(dash))[:5] == "HH·N·"


def test_listening_before_any_event():
    text = "\n".join(render(Dashboard("mic", 16000)))
    assert "LISTENING" in text and "no speech yet" in text and "waiting for speech" in text
    assert "silent" in text


@pytest.mark.parametrize("name", ["librispeech_1089-134686-0000.flac", "顧客との通話録音_二〇二六年十一月.wav"])
@pytest.mark.parametrize("width", [80, 60, 50])
def test_header_keeps_the_key_hint_and_shortens_a_long_name(width, name):
    from rich.cells import cell_len

    dash = Dashboard(name, 16000, clock=Clock(), whole_session=False)
    first = render(dash, width=width)[0]
    assert cell_len(first) <= width and first.rstrip().endswith("q quit"), first
    assert "stream-ser" in first and name[:4] in first
    if width >= 80:  # the name gives way before the clocks do
        assert "elapsed 0:00" in first and "audio 0:00" in first, first


def test_transcript_off_is_said_not_awaited():
    text = "\n".join(render(Dashboard("mic", 16000, transcript=False)))
    assert "transcript off" in text and "waiting for speech" not in text


def test_partial_is_replaced_and_survives_a_late_final():
    dash = Dashboard()
    dash.update(transcript(0.0, 1.0, "hello wor", final=False))
    dash.update(transcript(0.0, 1.5, "hello world", final=False))
    text = "\n".join(render(dash))
    assert "hello world" in text and "hello wor\n" not in text
    # a final held back for its tag arrives after a newer partial of later audio: the partial stays
    dash.update(transcript(1.6, 2.5, "how are you", final=False))
    dash.update(transcript(0.0, 1.5, "hello world"))
    text = "\n".join(render(dash))
    assert "hello world" in text and "how are you" in text
    dash.update(transcript(1.6, 2.6, "how are you today"))
    text = "\n".join(render(dash))
    assert "how are you today" in text and text.count("how are you") == 1
    # the same across utterances: the next one's partial outlives the previous one's late final
    dash.update(transcript(4.0, 4.5, "fine thanks", final=False, utt=1))
    dash.update(transcript(2.6, 3.0, "my friend"))
    assert "fine thanks" in "\n".join(render(dash))


def test_transcript_scrolls_and_wraps_under_itself():
    dash = Dashboard()
    for k in range(30):
        dash.update(transcript(k, k + 1, f"line {k} " + "word " * (25 if k == 29 else 1)))
    lines = render(dash)
    text = "\n".join(lines)
    assert "line 29" in text and "line 3 " not in text  # the newest at the end, the oldest scrolled away
    wrapped = [line for line in lines if re.match(r"│\s{19}word", line)]
    assert wrapped, text  # the long line continues under its text column


def test_warnings_clipping_and_losses_are_shown():
    dash = Dashboard()
    dash.update(status(5, level=-1.0, clipped_samples=37, overflows=2, dropped_samples=480, dropped_windows=1,
                       warnings=["clipping (37 samples)", "audio is being dropped"]))
    lines = render(dash)
    text = "\n".join(lines)
    assert "! clipping (37 samples); audio is being dropped" in lines[1]
    assert "CLIP 37" in text and re.search(r"overflows\s+2 ", text) and "480 samples · 1 windows" in text
    assert len(lines) == 24


def test_whole_session_is_compressed():
    dash = Dashboard(whole_session=True)
    dash.update(speech(0.0, "start"))
    for k in range(0, 598, 1):
        dash.update(emotion(float(k), LABELS[(k // 60) % 7], 0.5))
    dash.update(speech(600.0, "end"))
    dash.update(status(700, False))
    lines = render(dash)
    head = next(line for line in lines if "emotion timeline" in line)
    assert "whole session · 10 s a cell" in head, head  # 700 s in 76 cells
    strip = timeline_strip(lines)
    assert strip.startswith("AAAAAADDDDDDFFFFFF") and strip.rstrip().endswith("··········"), strip


def test_scales_to_a_big_terminal():
    dash = Dashboard("test mic", 48000, whole_session=False)
    session(dash)
    lines = render(dash, 120, 35)
    assert len(lines) == 35 and max(len(line) for line in lines) <= 120
    k = next(i for i, line in enumerate(lines) if "A N G R Y" in line or "SPEECH" in line)
    assert lines[k - 1].startswith("╭─ now") is False and lines[k - 2].startswith("╭─ now")  # a three-row badge


def test_unknown_labels_get_a_letter_and_the_legend():
    dash = Dashboard()
    probs = {"calm": 0.5, "neutral": 0.3, "bored": 0.2}
    dash.update(speech(0, "start"))
    dash.update(EmotionEvent("emotion", 0, 2.5, 0, 50, label="bored", confidence=0.5, probs=probs, utterance=0))
    text = "\n".join(render(dash))
    assert "B O R E D" in text and "C calm" in text and "B bored" in text


def test_update_and_drawing_on_two_threads():
    """update() on this thread while another draws as Live would: no errors."""
    dash = Dashboard(whole_session=False)
    console = Console(file=io.StringIO(), width=100, height=30, force_terminal=True)
    dash.console = console
    stop, errors = threading.Event(), []

    def draw():
        while not stop.is_set():
            console.print(dash)
            out = console.file.getvalue()
            if "dashboard error" in out:
                errors.append(out[out.index("dashboard error"):][:300])
            console.file.seek(0)
            console.file.truncate()

    t = threading.Thread(target=draw)
    t.start()
    for k in range(3000):
        dash.update([speech(k * 0.1, "start"), emotion(k * 0.1, LABELS[k % 7]), transcript(k * 0.1, k * 0.1 + 1, f"w{k}", final=k % 2 == 0),
                     status(k * 0.1 + 1), speech(k * 0.1 + 0.05, "end")][k % 5])
    stop.set()
    t.join()
    assert not errors, errors[0]


def test_a_slow_frame_does_not_hold_up_update():
    """The lock is held only to copy state, never while a region is drawn."""
    dash = Dashboard()
    inside, release = threading.Event(), threading.Event()
    health = dash._health

    def slow_health(*a):
        inside.set()
        release.wait(5)
        return health(*a)

    dash._health = slow_health
    t = threading.Thread(target=render, args=(dash,))
    t.start()
    try:
        assert inside.wait(5)
        t0 = time.monotonic()
        for k in range(10):
            dash.update(emotion(float(k)))
            dash.update(status(k + 1.0))
        assert time.monotonic() - t0 < 1.0  # would be 5 s if drawing held the lock
    finally:
        release.set()
        t.join()


def test_context_manager_outside_a_terminal_ends_with_a_newline():
    out = io.StringIO()
    dash = Dashboard("file", 16000, on_quit=lambda: None, console=Console(file=out, width=80, height=24))
    with dash:
        session(dash)
    text = out.getvalue()
    assert text.endswith("\n") and "ask what you can do" in text  # the last frame, then a newline


def test_summary_covers_the_session():
    """The summary is a view of the same SessionState the dashboard renders."""
    dash = Dashboard("test mic")  # the name status events carry
    for ev in [status(1, False, -math.inf), speech(0.5, "start"), emotion(0.5), emotion(1.5, "happy"), emotion(2.5, "happy"),
               transcript(0.5, 2, "hello there"), speech(3.0, "end"), status(4, False)]:
        dash.update(ev)
    text = "\n".join(summary_lines(dash.state, ["out.jsonl"]))
    assert "session: test mic, 4.0 s of audio (2.5 s speech)" in text
    assert "emotion windows: 3 (happy 67%, sad 33%)" in text
    assert "transcript: 2 words in 1 span\n" in text and "emotion latency: p50 120 ms" in text
    assert "events written to: out.jsonl" in text
    # without a transcriber there is no transcript line to report
    quiet = SessionState("call.wav", transcript=False)
    for ev in [status(1, False, -math.inf), emotion(0.5)]:
        quiet.update(ev)
    assert not any(line.startswith("transcript") for line in summary_lines(quiet))


# ---------------------------------------------------------------- slow: the real CLI in tmux
class Tmux:
    """A private tmux server (its own socket under tmp_path) running one command."""

    def __init__(self, tmp_path: Path, command: str, env: dict[str, str], width: int, height: int):
        self.sock = str(tmp_path / "tmux.sock")
        # after the command: its exit code and whether the terminal is back in canonical (line) mode
        script = (f"cd {shlex.quote(str(ROOT))} && {command}; echo EXIT=$?; "
                  "stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon; sleep 60")
        # a new server on a private socket inherits `env`: the command sees it (e.g. the virtual mic)
        subprocess.run(["tmux", "-S", self.sock, "-f", "/dev/null", "new-session", "-d", "-x", str(width), "-y", str(height), script],
                       env=env, check=True, timeout=20)

    def screen(self) -> str:
        r = subprocess.run(["tmux", "-S", self.sock, "capture-pane", "-p", "-J", "-S", "-200"], capture_output=True, text=True, timeout=10)
        return r.stdout

    def wait(self, pred, timeout: float) -> str:
        end = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if pred(screen) or time.monotonic() > end:
                return screen
            time.sleep(0.25)

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "-S", self.sock, "send-keys", *keys], check=True, timeout=10)

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True, timeout=10)


def stream_ser() -> str:
    exe = Path(sys.executable).parent / "stream-ser"
    return shlex.quote(str(exe)) if exe.exists() else f"{shlex.quote(sys.executable)} -m stream_ser"


def check_dashboard(screen: str) -> None:
    """What every live dashboard must show once speech went through it."""
    lines = screen.splitlines()
    assert re.search(r"\b(" + "|".join(LABELS) + r")\b", screen), screen  # an emotion label (transcript tags, bars)
    # the badge: the emotion heard (letter-spaced) or UNCERTAIN, or, once its hold ran out, "last: <label>"
    badge = re.search("|".join([" ".join(k.upper()) for k in LABELS] + ["UNCERTAIN"]), screen) or \
        re.search(r"(LISTENING|SPEECH)\s+last: (" + "|".join(LABELS) + r") \d\.\d\d", screen)
    assert badge, screen
    assert re.search(r"now · utterance \d+ · \d+\.\d-\d+\.\d s", screen), screen  # an emotion event reached the view
    assert re.search(r"latency ms\s+last\s+p50\s+p95", screen), screen
    assert re.search(r"emotion\s+\d+\s+\d+\s+\d+\s+\d\.\d\d×", screen), screen  # a latency figure in ms
    strip = timeline_strip(lines)
    assert set(strip) <= set(CELLS) and len(re.findall(r"[ADFHNSU]", strip)) >= 3, strip


def tmux_env_vars() -> dict[str, str]:
    return {"LANG": "C.UTF-8", "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture
def tmux_env():
    need("tmux")
    import os

    # the pane's shell runs the test's script (sh syntax) whatever the user's login shell is
    return dict(os.environ, SHELL=shutil.which("bash") or "/bin/sh", **tmux_env_vars())


@pytest.mark.parametrize("size,ctrl_c", [((80, 24), False), ((120, 35), True)], ids=["80x24-to-the-end", "120x35-ctrl-c"])
def test_replay_dashboard_in_tmux(tmp_path, jfk, tmux_env, size, ctrl_c):
    tmux = Tmux(tmp_path, f"{stream_ser()} replay {shlex.quote(str(jfk))} --speed 1", tmux_env, *size)
    try:
        screen = tmux.wait(lambda s: "country" in s and "EXIT=" not in s, 45)
        assert "country" in screen, screen
        check_dashboard(screen)
        assert "jfk.flac · 16 kHz" in screen
        if ctrl_c:
            tmux.keys("C-c")
        screen = tmux.wait(lambda s: "icanon" in s, 25)
    finally:
        tmux.kill()
    assert f"EXIT={130 if ctrl_c else 0}" in screen, screen
    assert re.search(r"^session: jfk\.flac, \d+\.\d s of audio", screen, re.M), screen  # the summary under the last frame
    assert re.search(r"^emotion latency: p50 \d+ ms", screen, re.M), screen
    assert re.search(r"^icanon$", screen, re.M), screen  # cbreak mode (for q) undone on the way out


def test_listen_dashboard_on_the_virtual_mic_and_q_quits(tmp_path, jfk, tmux_env):
    need("pulseaudio", "pactl", "paplay")
    with VirtualMic() as mic:
        tmux = Tmux(tmp_path, f"{stream_ser()} listen", dict(mic.env, SHELL=tmux_env["SHELL"], **tmux_env_vars()), 100, 32)
        try:
            screen = tmux.wait(lambda s: "health" in s and "audio 0:0" in s, 45)
            assert "LISTENING" in screen, screen  # stream open, nothing said yet
            mic.play(jfk)
            screen = tmux.wait(lambda s: "country" in s, 30)
            assert "country" in screen, screen
            check_dashboard(screen)
            tmux.keys("q")
            screen = tmux.wait(lambda s: "icanon" in s, 15)
        finally:
            tmux.kill()
    assert "EXIT=0" in screen, screen  # q stops the session like the end of a file
    assert "session: " in screen and "emotion latency" in screen, screen
    assert re.search(r"^icanon$", screen, re.M), screen  # cbreak mode undone on the way out
