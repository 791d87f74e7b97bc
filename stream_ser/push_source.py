"""A live source whose audio is pushed in by its owner: the web page's
microphone, arriving over a WebSocket (:mod:`stream_ser.serve`).

The owner calls :meth:`PushSource.push` with 16-bit little-endian mono PCM at
the rate it declared; :meth:`PushSource.blocks` (the pipeline's capture
thread) resamples it to 16 kHz as :class:`~stream_ser.sources.MicSource` does
a device's audio.  Like a microphone it is never slowed down: a block that
finds the queue full is dropped and counted.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Iterator

import numpy as np
import soxr

from .errors import SourceError
from .features import SAMPLE_RATE
from .limits import check_number
from .sources import Conditioner, Source


class PushSource(Source):
    """Audio pushed by another thread (or an event loop).

    Threading: :meth:`push` and :meth:`request_stop` from any one thread (the
    socket's); :meth:`blocks` on the pipeline's capture thread.  :meth:`push`
    never blocks.  ``queue_seconds`` of audio wait at most; beyond that the
    block is dropped and counted in :attr:`dropped_samples`.
    """

    def __init__(self, sample_rate: int, name: str = "browser microphone", queue_seconds: float = 10.0,
                 block_seconds: float = 0.05):
        check_number("sample rate", sample_rate, 8000, 192000, " Hz", integer=True)
        self.name = name
        self.sample_rate = int(sample_rate)
        self.live = True
        self.conditioner = Conditioner()
        self._queue: queue.Queue = queue.Queue(maxsize=max(4, int(queue_seconds / block_seconds)))
        self._stop = threading.Event()
        self.pushed_samples = 0  # at the source's rate

    def push(self, pcm: bytes, captured_at: float | None = None) -> None:
        """One block of int16 little-endian mono PCM (an odd byte count is a
        :class:`SourceError`: the sender is not speaking this format)."""
        if len(pcm) % 2:
            raise SourceError("audio block of an odd number of bytes: expected 16-bit PCM")
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        self.pushed_samples += len(x)
        try:
            self._queue.put_nowait((x, time.time() if captured_at is None else captured_at))
        except queue.Full:
            self.dropped_samples += len(x) * SAMPLE_RATE // self.sample_rate

    def blocks(self) -> Iterator[tuple[np.ndarray, float]]:
        resampler = soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32") if self.sample_rate != SAMPLE_RATE else None
        while True:
            try:
                x, t = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    if resampler:  # the resampler's last few ms
                        y = self.conditioner.remove_dc(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
                        if len(y):
                            yield y, time.time()
                    return
                continue
            x = self.conditioner.clean(x)
            y = self.conditioner.remove_dc(resampler.resample_chunk(x) if resampler else x)
            if len(y):
                yield y, t

    def request_stop(self) -> None:
        """End :meth:`blocks` once the audio already pushed is read."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
