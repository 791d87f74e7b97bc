"""InputMeter: the input's level, peak and clipping, and the warnings a user
needs about the microphone (too quiet, nothing heard), from the blocks the
capture thread sees.  Not thread-safe: fed and read by the capture thread."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from .features import SAMPLE_RATE

UNHEARD_SECONDS, UNHEARD_PEAK = 10.0, 0.01  # no speech for 10 s and no sample above -40 dBFS: warn
QUIET_SPEECH_DBFS = -45.0  # speech this quiet is a microphone problem
# the input counts as heard once the VAD has called this much of it speech: a
# blip (0.09 s of a sentence at -50 dBFS peak) is no voice heard, and must not
# silence the warning below
HEARD_SECONDS = 1.0


class InputMeter:
    """Accumulates one status interval; :meth:`take` returns its figures and starts the next."""

    def __init__(self, live: bool):
        self.live = live
        self._sq, self._n, self._peak, self._clipped = 0.0, 0, 0.0, 0
        self._speech_sq, self._speech_n = 0.0, 0  # level of the blocks the VAD calls speech
        self._speech_recent: deque = deque(maxlen=3)  # ... in the last three status intervals
        self.heard_any = False  # has the VAD heard HEARD_SECONDS of speech in this session?
        self._heard = 0  # speech samples the VAD has called so far (until heard_any)
        self._unheard, self._unheard_peak = 0, 0.0  # samples before it was heard, and their peak

    def add(self, block: np.ndarray, in_speech: bool) -> None:
        energy = float(np.dot(block, block))
        peak = float(np.abs(block).max(initial=0.0))
        self._sq += energy
        self._n += len(block)
        self._peak = max(self._peak, peak)
        self._clipped += int(np.count_nonzero(np.abs(block) >= 0.999))
        if in_speech:
            self._speech_sq += energy
            self._speech_n += len(block)
        if not self.heard_any:
            self._heard += len(block) if in_speech else 0
            self.heard_any = self._heard >= HEARD_SECONDS * SAMPLE_RATE
            self._unheard += len(block)
            self._unheard_peak = max(self._unheard_peak, peak)

    def take(self) -> dict:
        """``level_dbfs`` (None when silent), ``peak``, ``clipped_samples`` and
        ``warnings`` of the interval since the last call."""
        level = 10 * math.log10(self._sq / self._n) if self._n and self._sq > 0 else None
        warnings = []
        if self._clipped:
            warnings.append(f"clipping ({self._clipped} samples)")
        # judged on speech only (room noise in a pause is quiet and that is fine),
        # over the last few intervals: the soft tail of a sentence alone is not a quiet microphone
        self._speech_recent.append((self._speech_sq, self._speech_n))
        speech_sq, speech_n = map(sum, zip(*self._speech_recent))
        if speech_n >= SAMPLE_RATE // 2 and 10 * math.log10(speech_sq / speech_n + 1e-20) < QUIET_SPEECH_DBFS:
            warnings.append("input very quiet")
        # speech too quiet for the VAD is never "speech" (or only in blips), so the
        # check above never runs: say so when a session has heard (almost) no speech
        # for a while and even its loudest sample is faint; a pause after speech is
        # not a microphone problem
        if not self.heard_any and self._unheard >= UNHEARD_SECONDS * SAMPLE_RATE and self._unheard_peak < UNHEARD_PEAK:
            faint = "silent" if self._unheard_peak == 0 else f"very quiet (peak {20 * math.log10(self._unheard_peak):.0f} dBFS)"
            advice = ": check the microphone gain" if self.live else ""
            heard = "almost no speech" if self._heard else "no speech"
            warnings.append(f"{heard} in the first {self._unheard / SAMPLE_RATE:.0f} s, input {faint}{advice}")
        out = {"level_dbfs": None if level is None else round(level, 1), "peak": round(self._peak, 4),
               "clipped_samples": self._clipped, "warnings": warnings}
        self._sq, self._n, self._peak, self._clipped = 0.0, 0, 0.0, 0
        self._speech_sq, self._speech_n = 0.0, 0
        return out
