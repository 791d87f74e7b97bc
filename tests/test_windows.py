"""The windower against hand-computed sample indices."""

import numpy as np

from stream_ser.features import WINDOW_SAMPLES
from stream_ser.windows import EmotionWindow, Windower, WindowOptions, clip_windows, cut

SR = 16000


def test_windows_follow_onset_lead_and_hop():
    w = Windower(WindowOptions(lead=0.4, hop=1.0))
    w.utterance_started(32000)  # onset at 2.0 s
    assert w.ready(available=60000, speech_until=50000) == []  # first window ends at 1.6 + 2.5 = 4.1 s
    first = w.ready(available=65600, speech_until=60000)
    assert first == [EmotionWindow(25600, 65600, 0)]  # 2.0 - 0.4 = 1.6 s -> sample 25600
    w.utterance_ended(56000)  # speech ended at 3.5 s: anchors 2.0 and 3.0 s are in speech, 4.0 is not
    rest = w.flush(available=200000)
    assert rest == [EmotionWindow(41600, 81600, 0)]
    assert all(x.end - x.start == WINDOW_SAMPLES for x in first + rest)


def test_window_never_starts_before_the_stream():
    w = Windower(WindowOptions(lead=0.4, hop=1.0))
    w.utterance_started(1600)  # onset at 0.1 s
    w.utterance_ended(8000)
    assert w.flush(50000) == [EmotionWindow(0, WINDOW_SAMPLES, 0)]


def test_anchor_not_yet_confirmed_is_not_scheduled():
    # inside an utterance, a window is only created once speech is confirmed past its anchor
    w = Windower(WindowOptions(lead=0.4, hop=1.0))
    w.utterance_started(16000)
    assert w.ready(available=100000, speech_until=16000) == []  # speech not confirmed past the onset yet
    assert [x.start for x in w.ready(available=100000, speech_until=33000)] == [9600, 25600]  # anchors 1.0, 2.0 s


def test_back_to_back_utterances_keep_their_own_windows():
    w = Windower(WindowOptions(lead=0.4, hop=1.0))
    w.utterance_started(16000)
    w.utterance_ended(40000)  # anchors 1.0, 2.0 s
    w.utterance_started(48000)  # anchor 3.0 s
    w.utterance_ended(52000)
    got = w.flush(200000)
    assert [(x.start, x.utterance) for x in got] == [(9600, 0), (25600, 0), (41600, 1)]


def test_cut_zero_pads_past_the_end():
    audio = np.ones(50000, np.float32)
    x = cut(audio, EmotionWindow(30000, 70000, 0))
    assert x.shape == (WINDOW_SAMPLES,) and x[:20000].min() == 1 and x[20000:].max() == 0


def test_clip_windows_on_a_tone_burst_in_silence():
    # a voiced-like harmonic burst from 1.0 to 3.0 s; the gate finds it and the windower anchors on it
    t = np.arange(4 * SR) / SR
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((150, 300, 450, 600, 750), 1))
    am = 0.5 * (1 + np.sin(2 * np.pi * 4 * t))  # syllable-rate modulation
    audio = np.where((t >= 1.0) & (t < 3.0), 0.1 * tone * am, 0).astype(np.float32)
    windows = clip_windows(audio)
    assert windows, "no window found"
    onset = windows[0].start + int(0.4 * SR)
    assert abs(onset - SR) <= 0.1 * SR  # onset found within 0.1 s of 1.0 s


def test_a_blip_whose_start_and_end_share_a_block_gets_the_windows_of_small_blocks():
    # fast replay pushes 0.512 s blocks: a short sound's start and end can come
    # out of one push, and its windows must be those that 32 ms pushes cut
    t = np.arange(3 * SR) / SR
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((150, 300, 450, 600, 750), 1))
    opts = WindowOptions(hop=0.25)
    for length in (0.07, 0.09, 0.12):
        audio = np.where((t >= 1.0) & (t < 1.0 + length), 0.1 * tone, 0).astype(np.float32)
        small = clip_windows(audio, window_options=opts, block=512)
        assert len(small) >= 1, length  # the gate takes the blip for speech: the case under test
        assert clip_windows(audio, window_options=opts, block=8192) == small, length
