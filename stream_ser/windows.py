"""Windower: the 0.6 s offset logic of the source paper, defined once.

The paper reads each training clip from 0.6 s for 2.5 s.  RAVDESS speech starts
about 1.0 s into a clip, so the paper's windows begin ~0.4 s before the speech
onset.  The stream reproduces that alignment: the first window of an utterance
starts ``lead`` seconds before the VAD onset, later windows follow every
``hop`` while the utterance lasts, and each is exactly 2.5 s of audio (audio
after the utterance's end is included, as in the training clips).

``lead`` = median VadGate onset over the RAVDESS training clips (0.99 s,
measured by ``python bench/window_lead.py``) - the paper's 0.6 s offset = 0.39 ≈ 0.4 s.

The stream and training both cut through one :class:`Segmenter` (gate +
windower + utterance numbering): training's :func:`clip_windows` runs it over a
clip, so training and serving see identical windows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .errors import StageError
from .features import SAMPLE_RATE, WINDOW_SAMPLES
from .limits import check_number
from .vad import Utterance, VadGate, VadOptions


@dataclass
class WindowOptions:
    """Options of :class:`Windower`.

    Attributes:
        offset: the source paper's clip offset (documentation of where ``lead``
            comes from; not used directly).
        lead: seconds the first window of an utterance starts before its onset.
        hop: seconds between consecutive windows of one utterance.
    """

    offset: float = 0.6
    lead: float = 0.4
    hop: float = 1.0

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise :class:`~stream_ser.limits.OptionError` for a value out of range:
        ``hop`` 0.01-60 s (at least 160 samples: a hop that rounds to nothing
        would make windows without end), ``lead`` 0-2.5 s."""
        check_number("hop", self.hop, 0.01, 60.0, " seconds")
        check_number("lead", self.lead, 0.0, 2.5, " seconds")
        check_number("offset", self.offset, 0.0, 60.0, " seconds")


@dataclass(frozen=True)
class EmotionWindow:
    """2.5 s of audio to classify: samples ``[start, end)`` on the stream clock."""

    start: int
    end: int
    utterance: int  # index of the utterance it belongs to (0-based)

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end / SAMPLE_RATE


class Windower:
    """Turns utterance starts and ends into :class:`EmotionWindow` s.

    Window k of an utterance with onset ``t0`` starts at ``t0 - lead + k*hop``
    (never before sample 0) and exists while ``t0 + k*hop`` is before the
    utterance's end.  :meth:`ready` hands out windows once their last sample
    has been captured.  Not thread-safe: driven by the capture thread.
    """

    def __init__(self, options: WindowOptions | None = None):
        self.options = options or WindowOptions()
        self.options.check()  # fields may have been set after construction
        self._lead = int(round(self.options.lead * SAMPLE_RATE))
        self._hop = int(round(self.options.hop * SAMPLE_RATE))
        self._onset: int | None = None
        self._end: int | None = None
        self._next_k = 0
        self._utterances = -1
        self._pending: list[EmotionWindow] = []

    def utterance_started(self, onset: int) -> None:
        if self._onset is not None and self._end is not None:
            self._schedule(self._end)  # finish the previous utterance first
        self._onset, self._end, self._next_k = onset, None, 0
        self._utterances += 1

    def utterance_ended(self, end: int) -> None:
        self._end = end

    def _schedule(self, speech_until: int) -> None:
        # Create windows whose anchor (onset + k*hop) is known to lie in speech.
        while self._onset is not None:
            anchor = self._onset + self._next_k * self._hop
            limit = self._end if self._end is not None else speech_until
            if anchor >= limit:
                if self._end is not None:
                    self._onset = None
                break
            start = max(0, anchor - self._lead)
            self._pending.append(EmotionWindow(start, start + WINDOW_SAMPLES, self._utterances))
            self._next_k += 1

    def ready(self, available: int, speech_until: int | None = None) -> list[EmotionWindow]:
        """Windows whose audio is complete, given ``available`` samples captured
        and, inside an utterance, speech confirmed up to ``speech_until``
        (:attr:`VadGate.speech_until`)."""
        self._schedule(available if speech_until is None else speech_until)
        done = [w for w in self._pending if w.end <= available]
        self._pending = [w for w in self._pending if w.end > available]
        return done

    def flush(self, available: int) -> list[EmotionWindow]:
        """End of stream: every scheduled window (the caller zero-pads)."""
        self._schedule(available)
        done, self._pending = self._pending, []
        return done


def cut(audio: np.ndarray, window: EmotionWindow) -> np.ndarray:
    """The window's samples from a whole recording, zero-padded past its end."""
    out = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    piece = audio[window.start : window.end]
    out[: len(piece)] = piece
    return out


class Segmenter:
    """The stream's segmentation, in one place: :class:`VadGate` +
    :class:`Windower` + utterance numbering.  Feed consecutive 16 kHz blocks
    to :meth:`push`; it returns the utterance starts and ends they complete
    (:class:`~stream_ser.vad.Utterance`, numbered from 0 in ``index``) and the
    :class:`EmotionWindow` s whose audio is now complete.  The pipeline and
    training's :func:`clip_windows` both cut through it, so training and
    serving cut identical windows.  Not thread-safe: one thread feeds it."""

    def __init__(self, vad_options: VadOptions | None = None, window_options: WindowOptions | None = None):
        self.gate = VadGate(vad_options)
        self.windower = Windower(window_options)
        self.samples = 0  # pushed so far: the stream clock's now
        self._utterances = -1

    @property
    def in_speech(self) -> bool:
        return self.gate.in_speech

    @property
    def decided_until(self) -> int:
        """A sample no later than any utterance end still to come: every end
        before it has been returned (an open utterance ends no earlier than its
        confirmed speech)."""
        return self.gate.speech_until if self.gate.in_speech else self.samples

    def push(self, block: np.ndarray) -> tuple[list[Utterance], list[EmotionWindow]]:
        """Raises :class:`~stream_ser.errors.StageError` naming "vad" or "windower"."""
        self.samples += len(block)
        try:
            events = self.gate.push(block)
        except Exception as e:
            raise StageError("vad", e) from e
        return self._route(events, final=False)

    def flush(self) -> tuple[list[Utterance], list[EmotionWindow]]:
        """End of stream: close an open utterance and hand out every scheduled window."""
        try:
            events = self.gate.flush()
        except Exception as e:
            raise StageError("vad", e) from e
        return self._route(events, final=True)

    def _route(self, events: list[Utterance], final: bool) -> tuple[list[Utterance], list[EmotionWindow]]:
        try:
            return self._schedule(events, final)
        except Exception as e:
            raise StageError("windower", e) from e

    def _schedule(self, events: list[Utterance], final: bool) -> tuple[list[Utterance], list[EmotionWindow]]:
        utterances, windows = [], []
        for i, u in enumerate(events):
            if u.kind == "start":
                self._utterances += 1
                self.windower.utterance_started(u.sample)
            else:
                self.windower.utterance_ended(u.sample)
            utterances.append(replace(u, index=self._utterances))
            if u.kind == "start" and i + 1 < len(events):
                continue  # its end is in this block too: the gate's speech_until is no longer this utterance's
            windows += self.windower.ready(self.samples, self.gate.speech_until)
        windows += self.windower.flush(self.samples) if final else self.windower.ready(self.samples, self.gate.speech_until)
        return utterances, windows


def clip_windows(
    audio: np.ndarray,
    vad_options: VadOptions | None = None,
    window_options: WindowOptions | None = None,
    block: int = 1024,
) -> list[EmotionWindow]:
    """The windows the stream would cut from ``audio`` (16 kHz mono), fed in blocks."""
    segmenter = Segmenter(vad_options, window_options)
    windows: list[EmotionWindow] = []
    for i in range(0, len(audio), block):
        windows += segmenter.push(audio[i : i + block])[1]
    return windows + segmenter.flush()[1]
