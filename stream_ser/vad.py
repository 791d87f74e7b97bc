"""VadGate: finds utterances in a 16 kHz stream and emits their start and end.

webrtcvad alone calls white noise speech 100% of the time, so a frame counts as
speech only when webrtcvad says so *and* its spectrum is not flat (spectral
flatness below ``max_flatness``) *and* it is above an energy floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import webrtcvad

from .features import SAMPLE_RATE
from .limits import OptionError, check_number


@dataclass
class VadOptions:
    """Options of :class:`VadGate`.

    Attributes:
        mode: webrtcvad aggressiveness, 0 (least) to 3 (most).
        frame_ms: webrtcvad frame length: 10, 20 or 30 ms.
        preroll: seconds of audio kept before the detected onset, so that the
            first word is not clipped.
        hangover: seconds of non-speech that end an utterance.
        min_speech: seconds of consecutive speech frames that start one.
        max_flatness: frames whose spectral flatness is above this are noise
            (white noise is ~0.56, voiced speech < 0.1).
        min_level_dbfs: frames quieter than this (RMS) are silence.
    """

    mode: int = 2
    frame_ms: int = 30
    preroll: float = 0.3
    hangover: float = 0.45
    min_speech: float = 0.09
    max_flatness: float = 0.3
    min_level_dbfs: float = -70.0

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise :class:`~stream_ser.limits.OptionError` for a value out of range
        (``mode`` 0-3, ``frame_ms`` 10/20/30, seconds 0-10, flatness 0-1, level -200-0 dBFS)."""
        check_number("vad_mode", self.mode, 0, 3, integer=True)
        if self.frame_ms not in (10, 20, 30):
            raise OptionError("frame_ms", f"must be 10, 20 or 30, not {self.frame_ms!r}")
        for name in ("preroll", "hangover", "min_speech"):
            check_number(name, getattr(self, name), 0.0, 10.0, " seconds")
        check_number("max_flatness", self.max_flatness, 0.0, 1.0)
        check_number("min_level_dbfs", self.min_level_dbfs, -200.0, 0.0, " dBFS")


@dataclass(frozen=True)
class Utterance:
    """A VAD decision on the sample clock.

    ``kind`` is ``"start"`` or ``"end"``.  For a start, ``sample`` is the onset
    (first speech frame) and ``preroll_start`` the onset less the pre-roll; for
    an end, ``sample`` is the end of the last speech frame.  ``index`` numbers
    the utterances of a stream from 0 (set by the
    :class:`~stream_ser.windows.Segmenter`; -1 from a bare gate).
    """

    kind: str
    sample: int
    preroll_start: int = 0
    index: int = -1


class VadGate:
    """Stateful streaming VAD.  Feed it consecutive blocks with :meth:`push`;
    it returns the :class:`Utterance` start/end events they complete.

    Not thread-safe: one thread feeds it (the pipeline's capture thread).
    """

    def __init__(self, options: VadOptions | None = None):
        self.options = options or VadOptions()
        self.options.check()
        o = self.options
        self._vad = webrtcvad.Vad(o.mode)
        self._frame = SAMPLE_RATE * o.frame_ms // 1000
        self._hann = np.hanning(self._frame)
        self._onset_frames = max(1, round(o.min_speech * 1000 / o.frame_ms))
        self._hangover_frames = max(1, round(o.hangover * 1000 / o.frame_ms))
        self._preroll = int(o.preroll * SAMPLE_RATE)
        self._floor = 10 ** (o.min_level_dbfs / 20)
        self._pending = np.zeros(0, dtype=np.float32)
        self._position = 0  # sample index of _pending[0]
        self._run = 0  # consecutive speech frames before an onset
        self._silence = 0  # consecutive non-speech frames inside an utterance
        self._last_speech_end = 0
        self.in_speech = False
        self.frames = 0
        self.speech_frames = 0

    def is_speech(self, frame: np.ndarray) -> bool:
        """Decide one frame of ``frame_ms`` float samples."""
        frame = frame - frame.mean()  # a DC offset is neither level nor speech
        level = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
        if level < self._floor:
            return False
        pcm = (np.clip(frame, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()
        if not self._vad.is_speech(pcm, SAMPLE_RATE):
            return False
        power = np.abs(np.fft.rfft(frame * self._hann)) ** 2 + 1e-12
        flatness = float(np.exp(np.mean(np.log(power))) / np.mean(power))
        return flatness <= self.options.max_flatness

    def push(self, block: np.ndarray) -> list[Utterance]:
        """Consume the next block of 16 kHz mono float32 samples."""
        out: list[Utterance] = []
        data = np.concatenate([self._pending, np.asarray(block, dtype=np.float32)])
        n = len(data) // self._frame
        for i in range(n):
            frame = data[i * self._frame : (i + 1) * self._frame]
            start = self._position + i * self._frame
            speech = self.is_speech(frame)
            self.frames += 1
            self.speech_frames += speech
            if not self.in_speech:
                self._run = self._run + 1 if speech else 0
                if self._run >= self._onset_frames:
                    onset = start - (self._run - 1) * self._frame
                    self.in_speech = True
                    self._silence = 0
                    self._last_speech_end = start + self._frame
                    out.append(Utterance("start", onset, max(0, onset - self._preroll)))
            elif speech:
                self._silence = 0
                self._last_speech_end = start + self._frame
            else:
                self._silence += 1
                if self._silence >= self._hangover_frames:
                    self.in_speech = False
                    self._run = 0
                    out.append(Utterance("end", self._last_speech_end))
        self._pending = data[n * self._frame :]
        self._position += n * self._frame
        return out

    @property
    def speech_until(self) -> int | None:
        """Inside an utterance, the sample up to which speech is confirmed."""
        return self._last_speech_end if self.in_speech else None

    def flush(self) -> list[Utterance]:
        """End of stream: close an open utterance."""
        if self.in_speech:
            self.in_speech = False
            return [Utterance("end", self._last_speech_end)]
        return []
