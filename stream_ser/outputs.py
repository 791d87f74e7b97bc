"""Output files (``--jsonl``, ``--srt``, ``--vtt``): checked before any work,
created only once the session can run, and never at the cost of data the
user already has.

The policy, in the order a session meets it:

1. :func:`check_outputs` (pre-flight, touches nothing): every path is
   non-empty, not a directory, not the input recording (compared by
   ``os.path.samefile`` and by resolved symlinks), not another output of the
   run, and its directory exists and is writable.
2. :meth:`Outputs.open`, called after the models have loaded: a path that does
   not exist yet is created and written as events happen (``tail -f`` works).
   A file that exists is *replaced atomically*: events go, as they happen, into
   a hidden temporary file beside it (``.NAME.XXXX.partial``), renamed over the
   old file when the session ends, so until then readers see yesterday's file
   whole (``tail -F`` follows the rename).  ``--append`` instead adds to the
   existing JSONL as events happen.  Special files (``/dev/stdout``, a FIFO,
   ``/dev/full``) are written directly.
3. A second session writing the same file is refused (``fcntl.flock`` on the
   file, held until the end): one line, exit 2.
4. :meth:`Outputs.close`: the new file replaces the old one if the session ran
   to its end, or if it wrote at least one record into it; a session that
   failed (another output included: ``--jsonl /dev/full``) or was stopped
   before writing anything there leaves the old file as it was.  After ``kill -9`` the old file is intact and the
   partial one is the ``.partial`` file beside it.

Every record is written with one ``write`` to the file (no buffer), so a crash
loses at most the line being written; a failed write (disk full) cuts the file
back to its last complete record.  JSON refuses NaN and Infinity
(``allow_nan=False``): an event holding one is not written, and said so.

Threading: an :class:`Outputs` is used by one thread (the session's).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from typing import Iterable

from .errors import UsageError
from .events import Event, TranscriptEvent, emotion_tag, event_from_dict

KINDS = ("jsonl", "srt", "vtt")


@dataclass(frozen=True)
class Output:
    """One requested output: ``kind`` is "jsonl", "srt" or "vtt"; ``path`` as given."""

    kind: str
    path: str

    @property
    def option(self) -> str:
        return f"--{self.kind}"


def _stat(path: str) -> os.stat_result | None:
    """``os.stat`` following symlinks; None if nothing is there.  A symlink loop
    or a path through a non-directory is a usage error, said as such."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UsageError(f"{path}: symlink loop") from None
        if e.errno == errno.ENOTDIR:
            raise UsageError(f"{path}: a part of the path is not a directory") from None
        raise UsageError(f"{path}: {e.strerror}") from None


def _same(a: str, b: str) -> bool:
    """Same file: by identity where both exist (hard links, symlinks), else by resolved path."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(outputs: Iterable[Output], inputs: Iterable[str] = (), append: bool = False) -> list[Output]:
    """Pre-flight every output path (see the module docstring); returns the
    outputs to write.  Raises :class:`UsageError` naming the first problem.
    Touches no file."""
    outputs = [o for o in outputs if o.path is not None]
    inputs = [os.fspath(i) for i in inputs]
    for o in outputs:
        where = f"{o.option} {o.path!r}" if o.path else o.option
        if o.kind not in KINDS:
            raise ValueError(o.kind)
        if not o.path.strip():
            raise UsageError(f"{o.option}: empty path (name the file to write)")
        if append and o.kind != "jsonl":
            raise UsageError(f"--append applies to --jsonl only: subtitles of two sessions do not share a clock ({o.option})")
        try:
            st = _stat(o.path)
        except UsageError as e:
            raise UsageError(f"{o.option} {e}") from None
        for i in inputs:
            if _same(o.path, i):
                raise UsageError(f"{where} is the input recording: refusing to overwrite it")
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{where} is a directory")
        if st is not None and not stat.S_ISREG(st.st_mode):
            continue  # /dev/stdout, a FIFO, /dev/full: written directly, checked when opened
        if st is not None and not os.access(o.path, os.W_OK):
            raise UsageError(f"{where}: permission denied (the file is not writable)")
        parent = os.path.dirname(os.path.realpath(o.path)) or "."
        if not os.path.isdir(parent):
            raise UsageError(f"cannot write {where}: directory {parent} does not exist")
        try:  # a real probe: access() says yes to root on read-only file systems (/sys)
            with tempfile.TemporaryFile(dir=parent):  # O_TMPFILE: no name is ever seen
                pass
        except OSError as e:
            raise UsageError(f"cannot write {o.path}: cannot create files in {parent} ({e.strerror or e})") from None
    for k, a in enumerate(outputs):
        for b in outputs[k + 1:]:
            if _same(a.path, b.path):
                raise UsageError(f"{a.option} and {b.option} both name {a.path!r}: give each its own file")
    return outputs


class OutputFile:
    """One output file open for writing, locked, and how it ends (see the module
    docstring).  :meth:`write` writes one record with unbuffered writes and cuts
    the file back to its last complete record if that fails."""

    def __init__(self, output: Output, append: bool = False):
        self.output, self.path = output, output.path
        self.target = os.path.realpath(output.path)  # through symlinks: the link stays a link
        self.records = 0
        self._temp: str | None = None
        self._fds: list[int] = []  # every fd we hold (locks included), closed at the end
        try:
            self._open(append)
        except BaseException:
            self._release()
            raise

    def _fail(self, why: str) -> UsageError:
        return UsageError(f"cannot write {self.path} ({self.output.option}): {why}")

    def _lock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._fail("another stream-ser session is writing this file") from None
        except OSError:  # a file system without locks: write anyway
            pass

    def _open(self, append: bool) -> None:
        st = _stat(self.target)
        if st is not None and not stat.S_ISREG(st.st_mode):
            # a FIFO without a reader would block open(): refuse instead of hanging
            try:
                self.fd = self._hold(os.open(self.target, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as e:
                why = "a named pipe (FIFO) with no reader" if e.errno == errno.ENXIO else (e.strerror or str(e))
                raise self._fail(why) from None
            os.set_blocking(self.fd, True)
            self._size = None  # nothing to cut back
            return
        try:
            if st is None:
                self.fd = self._hold(os.open(self.target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
                self._lock(self.fd)
                if os.fstat(self.fd).st_size == 0 or append:
                    self._size = os.fstat(self.fd).st_size
                    return
                st = os.fstat(self.fd)  # another session made it meanwhile and is done: replace it
            else:
                self._lock(self._hold(os.open(self.target, os.O_RDONLY)))
            if append:
                self.fd = self._hold(os.open(self.target, os.O_WRONLY | os.O_APPEND))
                self._size = os.fstat(self.fd).st_size
                return
            fd, self._temp = tempfile.mkstemp(dir=os.path.dirname(self.target), prefix=f".{os.path.basename(self.target)}.",
                                              suffix=".partial")
            self.fd = self._hold(fd)
            self._lock(fd)  # also holds off a session that starts after the rename, before we close
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            self._size = 0
        except OSError as e:
            raise self._fail(e.strerror or str(e)) from None

    def _hold(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def write(self, data: bytes, record: bool = True) -> None:
        """Write ``data`` whole; on failure cut back to the last complete record and raise OSError."""
        try:
            done = 0
            while done < len(data):
                done += os.write(self.fd, data[done:])
        except OSError:
            if self._size is not None:
                try:
                    os.ftruncate(self.fd, self._size)
                except OSError:
                    pass
            raise
        if self._size is not None:
            self._size += len(data)
        self.records += record

    def close(self, keep: bool = True) -> None:
        """End the file: a temporary replaces the old file if ``keep`` or a record was
        written, else it is removed and the old file stays as it was."""
        if self._temp is not None:
            temp, self._temp = self._temp, None
            try:
                if keep or self.records:
                    os.replace(temp, self.target)
                else:
                    os.unlink(temp)
            except OSError:
                pass
        self._release()

    def _release(self) -> None:
        if self._temp is not None:  # opening failed half-way
            try:
                os.unlink(self._temp)
            except OSError:
                pass
            self._temp = None
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []


class JsonlWriter:
    """Every event as one strict JSON line (NaN and Infinity are refused with ValueError)."""

    def __init__(self, file: OutputFile):
        self.file, self.path = file, file.path

    def write(self, event: Event) -> None:
        line = json.dumps(event.to_dict(), separators=(",", ":"), allow_nan=False)
        self.file.write((line + "\n").encode())


def _timestamp(seconds: float, sep: str) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


SUBTITLES = ("emotion", "text")  # a cue's text: "(label conf) words", or the words alone


def subtitle_cue(event: TranscriptEvent, number: int, kind: str, subtitles: str = "emotion") -> str:
    """One SRT (``number`` counts from 1) or WebVTT cue of a final span: its
    emotion before the words (``subtitles="emotion"``) or the words alone ("text")."""
    sep = "," if kind == "srt" else "."
    head = f"{number}\n" if kind == "srt" else ""
    tag = emotion_tag(event.emotion) if subtitles == "emotion" else ""
    return (f"{head}{_timestamp(event.start, sep)} --> {_timestamp(event.end, sep)}\n"
            f"{tag}{event.text}\n\n")


def jsonl_text(events: Iterable[dict]) -> tuple[str, int]:
    """A whole JSONL file of ``events`` (dicts, as :meth:`Event.to_dict` gives
    them) at once, and how many were left out: those holding NaN or Infinity,
    refused as :class:`JsonlWriter` refuses them."""
    lines, refused = [], 0
    for e in events:
        try:
            lines.append(json.dumps(e, separators=(",", ":"), allow_nan=False) + "\n")
        except ValueError:
            refused += 1
    return "".join(lines), refused


def srt_text(events: Iterable[dict], subtitles: str = "emotion") -> str:
    """A whole SRT file of the final transcript spans among ``events`` (dicts)."""
    finals = [event_from_dict(e) for e in events if e.get("type") == "transcript" and e.get("final") and e.get("text")]
    return "".join(subtitle_cue(ev, k + 1, "srt", subtitles) for k, ev in enumerate(finals))


class SubtitleWriter:
    """SRT or WebVTT of the final transcript spans (``subtitles`` as in
    :func:`subtitle_cue`), written cue by cue (WebVTT's header with the first
    cue, or at the end if there is none: a failing file fails on a cue, as the
    JSONL does)."""

    def __init__(self, file: OutputFile, kind: str, subtitles: str = "emotion"):
        if kind not in ("srt", "vtt") or subtitles not in SUBTITLES:
            raise ValueError((kind, subtitles))
        self.file, self.path, self.kind, self._n = file, file.path, kind, 0
        self.subtitles = subtitles

    def _header(self) -> str:
        return "WEBVTT\n\n" if self.kind == "vtt" and self._n == 0 else ""

    def write(self, event: Event) -> None:
        if not isinstance(event, TranscriptEvent) or not event.final or not event.text:
            return
        self.file.write((self._header() + subtitle_cue(event, self._n + 1, self.kind, self.subtitles)).encode())
        self._n += 1

    def finish(self) -> None:
        if self._header():
            self.file.write(self._header().encode(), record=False)


class Outputs:
    """A session's output files: :meth:`open` once the session can run, :meth:`write`
    every event, :meth:`close` at the end (see the module docstring)."""

    def __init__(self, outputs: list[Output], append: bool = False, subtitles: str = "emotion"):
        self.outputs, self.append, self.subtitles = outputs, append, subtitles
        self.writers: list = []
        self.refused = 0  # events not written because they held NaN or Infinity
        self.failed = False  # a file failed: the session did not run to its end

    @property
    def paths(self) -> list[str]:
        return [o.path for o in self.outputs]

    def open(self) -> None:
        """Create (or lock and prepare to replace) every file; on any failure, undo
        what was opened (nothing existing is touched) and raise :class:`UsageError`."""
        for o in self.outputs:
            try:
                f = OutputFile(o, append=self.append)
            except BaseException:
                self.close(keep=False)
                raise
            self.writers.append(JsonlWriter(f) if o.kind == "jsonl" else SubtitleWriter(f, o.kind, self.subtitles))

    def write(self, event: Event) -> str | None:
        """Write ``event`` to every file.  Returns a one-line message when a file
        failed (it is closed, keeping what it holds, and written no more)."""
        problem = None
        for w in list(self.writers):
            try:
                w.write(event)
            except OSError as e:
                problem = f"cannot write {w.path}: {e.strerror or e}; stopping (what was written is kept)"
                self.failed = True
                self.writers.remove(w)
                w.file.close(keep=True)
            except ValueError:  # NaN or Infinity: never written as JSON
                self.refused += 1
        return problem

    def close(self, keep: bool = True) -> None:
        """Close every file; ``keep`` false: the session failed or was stopped, so
        files that would replace an existing one with nothing are dropped instead."""
        keep = keep and not self.failed
        for w in self.writers:
            try:
                if hasattr(w, "finish") and (keep or w.file.records):
                    w.finish()
            except OSError:
                pass
            w.file.close(keep=keep)
        self.writers = []
        if self.refused:
            try:
                print(f"stream-ser: {self.refused} events held NaN or Infinity and were not written as JSON", file=sys.stderr)
            except (OSError, ValueError):
                pass
            self.refused = 0


def ensure_std_streams() -> None:
    """Point a closed stdin, stdout or stderr (``>&-``, ``2>&-``) at /dev/null.

    Without this the first file the session opens takes the free descriptor 1
    or 2, and every print, every C library's notice and the fd-2 quieting would
    write into the user's JSONL; and Python's ``sys.stdout`` is None.  Call it
    once, first thing, on the main thread."""
    for fd, mode, name in ((0, os.O_RDONLY, "stdin"), (1, os.O_WRONLY, "stdout"), (2, os.O_WRONLY, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, mode)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False, errors="replace"))
            continue
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False, errors="replace"))
