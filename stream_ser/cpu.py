"""CPU time of the process's native threads.

The transcript's decoder and the emotion features' whisper encoder compute on
CTranslate2's own threads while the Python thread that called them waits, so
that thread's CPU clock misses their work.  This module reads it from
``/proc`` (Linux; elsewhere every function returns None and callers count
wall time).  Native threads that belong to a known stage are *claimed* when
it loads (the emotion encoder's workers), so that the decoder's count leaves
them out.  Thread-safe.
"""

from __future__ import annotations

import os
import threading

_claimed: set[int] = set()
_lock = threading.Lock()


def native_threads() -> set[int] | None:
    """Ids of this process's threads that Python did not start (None off Linux)."""
    try:
        tasks = {int(t) for t in os.listdir("/proc/self/task")}
    except (OSError, ValueError):
        return None
    return tasks - {t.native_id for t in threading.enumerate()}


def claim(threads: set[int] | None) -> None:
    """Mark ``threads`` (from :func:`native_threads`) as another stage's: :func:`unclaimed_seconds` skips them."""
    with _lock:
        _claimed.update(threads or ())


def stat_seconds(path: str) -> float | None:
    """user + system CPU seconds in a ``/proc`` stat file (a process's or one
    of its threads'); None if it cannot be read (the thread ended, no /proc)."""
    try:
        with open(path) as f:
            stat = f.read()
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime (fields 14 and 15 of proc(5)), in clock ticks


def threads_seconds(threads) -> float:
    """CPU seconds of these threads of this process (ids from :func:`native_threads`
    or ``threading.get_native_id()``); threads that ended count 0."""
    return sum(stat_seconds(f"/proc/self/task/{t}/stat") or 0.0 for t in threads)


def unclaimed_seconds() -> float | None:
    """CPU seconds of the calling thread and of every unclaimed native thread
    (since each started).  None where ``/proc`` is missing."""
    threads = native_threads()
    if threads is None:
        return None
    with _lock:
        threads = (threads - _claimed) | {threading.get_native_id()}
    return threads_seconds(threads)
