"""A live source whose audio is pushed in by its owner: the web page's
microphone, arriving over a WebSocket (:mod:`stream_ser.serve`).

The owner calls :meth:`PushSource.push` with 16-bit little-endian mono PCM at
the rate it declared; :meth:`PushSource.blocks` (the pipeline's capture
thread) resamples it to 16 kHz as :class:`~stream_ser.sources.MicSource` does
a device's audio (both are :class:`~stream_ser.sources.QueuedSource`).  Like a
microphone it is never slowed down: a block that finds the queue full is
dropped and counted.
"""

from __future__ import annotations

import time

import numpy as np

from .errors import SourceError
from .limits import check_number
from .sources import QueuedSource


class PushSource(QueuedSource):
    """Audio pushed by another thread (or an event loop).

    Threading: :meth:`push` and :meth:`request_stop` from any one thread (the
    socket's); :meth:`blocks` on the pipeline's capture thread.  :meth:`push`
    never blocks.  ``queue_seconds`` of audio (counted in samples, whatever
    the blocks' sizes) wait at most; a block beyond that is dropped and counted
    in :attr:`dropped_samples`.  After a stop, the audio already pushed is
    still read.  A sender that pushes nothing for ``lost_after`` seconds (a
    page that stopped sending but keeps its socket open) ends :meth:`blocks`
    with a :class:`SourceError`.
    """

    drain_at_stop = True

    def __init__(self, sample_rate: int, name: str = "browser microphone", queue_seconds: float = 10.0,
                 lost_after: float = 5.0):
        check_number("sample rate", sample_rate, 8000, 192000, " Hz", integer=True)
        self.name = name
        self.sample_rate = int(sample_rate)
        self.lost_after = lost_after
        self._start_queue(queue_seconds)

    def push(self, pcm: bytes, captured_at: float | None = None) -> None:
        """One block of int16 little-endian mono PCM (an odd byte count is a
        :class:`SourceError`: the sender is not speaking this format)."""
        if len(pcm) % 2:
            raise SourceError("audio block of an odd number of bytes: expected 16-bit PCM")
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        self._put(x, time.time() if captured_at is None else captured_at)

    def lost(self, silent_for: float) -> SourceError | None:
        if silent_for > self.lost_after:
            return SourceError(f"no audio from the page for {self.lost_after:g} s: the recording ended")
        return None

    def close(self) -> None:
        self._stop.set()
