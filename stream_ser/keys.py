"""KeyReader: single key presses from a terminal (the dashboard's ``q``).

stdin goes into cbreak mode (keys arrive one at a time, unechoed; Ctrl-C still
raises SIGINT) and a daemon thread reads it; the terminal is restored on
:meth:`close`.  Does nothing when stdin is not a terminal.
"""

from __future__ import annotations

import os
import select
import sys
import threading
from typing import Callable


class KeyReader:
    """Calls ``on_key(key)`` (on its own thread; ``key`` is a one-character
    str) for every key pressed until :meth:`close`.  Use as a context manager."""

    def __init__(self, on_key: Callable[[str], None]):
        self.on_key = on_key
        self._tty = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def __enter__(self) -> "KeyReader":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> bool:
        """Start reading; False when stdin is not a terminal."""
        try:
            import termios
            import tty

            fd = sys.stdin.fileno()
            if not os.isatty(fd):
                return False
            self._tty = (fd, termios.tcgetattr(fd))
            tty.setcbreak(fd)
        except (OSError, ValueError, AttributeError, ImportError):
            self._tty = None
            return False
        self._thread = threading.Thread(target=self._read, args=(fd,), name="dashboard-keys", daemon=True)
        self._thread.start()
        return True

    def _read(self, fd: int) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.2)  # wakes up to notice close()
                key = os.read(fd, 1) if ready else b""
            except OSError:
                return
            if ready and not key:  # stdin closed
                return
            if key:
                self.on_key(key.decode(errors="replace"))

    def close(self) -> None:
        self._closed.set()
        if self._tty is not None:
            import termios

            fd, attrs = self._tty
            self._tty = None
            try:
                termios.tcsetattr(fd, termios.TCSADRAIN, attrs)
            except (OSError, termios.error):
                pass
        if self._thread is not None:
            self._thread.join(0.5)
