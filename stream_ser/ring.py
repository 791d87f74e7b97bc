"""RingBuffer: the stream's 16 kHz audio and its one clock.

Every sample has an absolute index since the stream started; every block
written carries the wall time at which it was captured, so an event's latency
is a subtraction (:meth:`RingBuffer.capture_time`), not a guess.
"""

from __future__ import annotations

import bisect
import threading
import time

import numpy as np

from .features import SAMPLE_RATE


class RingBuffer:
    """Bounded float32 ring with an absolute sample clock.

    One writer thread (the pipeline's capture thread) and any number of reader
    threads.  The lock is held only to copy samples and update indices.

    Live sources never wait: when a reader falls more than ``seconds`` behind,
    the samples it asks for are gone; they come back as zeros and are counted
    in :attr:`overrun_samples`.  Replay at full speed passes ``wait=True`` to
    :meth:`write` instead, which blocks until every reader that declared what
    it still needs (:meth:`hold`) has moved on: back-pressure, nothing lost.
    """

    def __init__(self, seconds: float = 120.0, sample_rate: int = SAMPLE_RATE):
        self.sample_rate = sample_rate
        self.capacity = int(seconds * sample_rate)
        self._buf = np.zeros(self.capacity, dtype=np.float32)
        self._written = 0
        self._cond = threading.Condition()
        self._ends: list[int] = []  # end sample of each block written ...
        self._times: list[float] = []  # ... and the wall time it was captured
        self._holds: dict[str, int] = {}
        self._closed = False
        self.overrun_samples = 0

    @property
    def written(self) -> int:
        """Samples written since the stream started (the clock's now)."""
        return self._written

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, block: np.ndarray, captured_at: float | None = None, wait: bool = False) -> int:
        """Append ``block`` and return the sample index of its first sample."""
        block = np.asarray(block, dtype=np.float32)
        n = len(block)
        if n > self.capacity:
            raise ValueError("block larger than the ring")
        with self._cond:
            if wait:
                while self._holds and min(self._holds.values()) < self._written + n - self.capacity and not self._closed:
                    self._cond.wait(0.1)
            start = self._written
            i = start % self.capacity
            first = min(n, self.capacity - i)
            self._buf[i : i + first] = block[:first]
            self._buf[: n - first] = block[first:]
            self._written += n
            self._ends.append(self._written)
            self._times.append(time.time() if captured_at is None else captured_at)
            if len(self._ends) > 4096 and self._ends[2048] < self._written - self.capacity:
                del self._ends[:2048], self._times[:2048]  # stamps of overwritten audio
            self._cond.notify_all()
        return start

    def read(self, start: int, end: int) -> np.ndarray:
        """Samples ``[start, end)``.  Not yet written -> zeros (end of stream
        padding); already overwritten -> zeros, counted as overrun."""
        out = np.zeros(max(0, end - start), dtype=np.float32)
        with self._cond:
            oldest = max(0, self._written - self.capacity)
            self.overrun_samples += max(0, min(end, oldest) - max(start, 0))
            lo, hi = max(start, oldest), min(end, self._written)
            if hi > lo:
                i, n = lo % self.capacity, hi - lo
                first = min(n, self.capacity - i)
                out[lo - start : lo - start + first] = self._buf[i : i + first]
                out[lo - start + first : hi - start] = self._buf[: n - first]
        return out

    def capture_time(self, sample: int) -> float:
        """Wall time at which sample index ``sample`` was captured (its block's arrival)."""
        with self._cond:
            if not self._ends:
                return time.time()
            k = bisect.bisect_right(self._ends, sample)
            return self._times[min(k, len(self._times) - 1)]

    def wait_for(self, sample: int, timeout: float | None = None) -> bool:
        """Block until ``sample`` samples are written or the ring is closed."""
        with self._cond:
            return self._cond.wait_for(lambda: self._written >= sample or self._closed, timeout)

    def hold(self, reader: str, sample: int | None) -> None:
        """Declare the oldest sample ``reader`` still needs (None: nothing)."""
        with self._cond:
            if sample is None:
                self._holds.pop(reader, None)
            else:
                self._holds[reader] = sample
            self._cond.notify_all()

    def close(self) -> None:
        """End of stream: wake every waiter."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
