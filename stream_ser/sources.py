"""Audio sources: a microphone or a file, one interface.

A source yields ``(block, captured_at)``: 16 kHz mono float32 samples and the
wall time they were captured.  Both resample from their own rate with soxr's
streaming resampler, so the stream clock is 16 kHz whatever the device or file.
Files are read by libsndfile (WAV, FLAC, Ogg Vorbis, ...) or, for everything
else (MP3, m4a, Opus, video files), decoded in-process by :mod:`.codec`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import stat
import threading
import time
from typing import Iterator

import numpy as np
import soxr

from .errors import DeviceLost, SourceError
from .features import SAMPLE_RATE
from .limits import check_number
from .quiet import quiet_stderr


LOUD = 100.0  # |sample| beyond this (+40 dB over full scale) is no audio level: a file written at the wrong scale
CLIP = 1e6  # ... and beyond this it is clipped, so that no feature's square or FFT overflows float32
DC_POLE = 0.998  # one-pole DC blocker at 16 kHz: -3 dB at 5 Hz, below any speech


class Conditioner:
    """Audio cleaned once, at the source, for every stage (VAD, emotion and
    transcriber alike):

    - non-finite samples (NaN, Inf: float files carry them in the wild) are
      counted in :attr:`nonfinite` and replaced by 0, before resampling spreads them;
    - samples beyond ±``LOUD`` are counted in :attr:`loud` (the pipeline warns),
      and clipped at ±``CLIP``;
    - DC is removed by a one-pole high-pass whose state carries from block to
      block (whisper loses its words on a DC offset; the VAD and features had
      their own ways around it).

    Not thread-safe: one source's thread calls it.
    """

    def __init__(self):
        self.nonfinite = 0
        self.loud = 0
        self._zi: np.ndarray | None = None

    def clean(self, x: np.ndarray) -> np.ndarray:
        """Raw samples at the source's rate, any shape: finite and bounded, float32."""
        x = np.asarray(x, dtype=np.float32)
        bad = ~np.isfinite(x)
        if bad.any():
            self.nonfinite += int(bad.sum())
            x = np.where(bad, np.float32(0), x)
        big = np.abs(x) > LOUD
        if big.any():
            self.loud += int(big.sum())
            x = np.clip(x, -CLIP, CLIP)
        return x

    def remove_dc(self, y: np.ndarray) -> np.ndarray:
        """16 kHz mono samples, DC removed (the first sample sets the starting level, so
        a recording with an offset starts without a click)."""
        if len(y) == 0:
            return y
        from scipy.signal import lfilter

        if self._zi is None:
            self._zi = np.array([-float(y[0])])
        out, self._zi = lfilter([1.0, -1.0], [1.0, -DC_POLE], y.astype(np.float64), zi=self._zi)
        return out.astype(np.float32)


def condition(audio: np.ndarray) -> np.ndarray:
    """A whole 16 kHz mono recording conditioned as a source conditions its blocks
    (training cuts its windows from this, so that it sees what the stream sees)."""
    c = Conditioner()
    return c.remove_dc(c.clean(audio))


class Source:
    """What the pipeline reads.  ``live`` sources are never slowed down (audio that
    cannot be processed in time is dropped and counted); others apply back-pressure.
    Blocks are conditioned by a :class:`Conditioner` before they are yielded."""

    name: str = ""
    sample_rate: int = SAMPLE_RATE  # the source's own rate
    live: bool = False
    overflows: int = 0  # input overflows reported by the device
    dropped_samples: int = 0  # 16 kHz samples lost before the ring buffer
    conditioner: Conditioner | None = None

    @property
    def nonfinite_samples(self) -> int:
        """NaN or Inf samples found in the input (replaced by silence)."""
        return self.conditioner.nonfinite if self.conditioner else 0

    @property
    def loud_samples(self) -> int:
        """Samples beyond ±100 full scale found in the input."""
        return self.conditioner.loud if self.conditioner else 0

    def blocks(self) -> Iterator[tuple[np.ndarray, float]]:
        raise NotImplementedError

    def request_stop(self) -> None:
        """Ask :meth:`blocks` to end soon; safe from any thread or a signal handler."""

    def close(self) -> None:
        pass


PACED_BLOCK = 0.032  # seconds: a replay paced like a microphone reads what one delivers
FAST_BLOCK = 16 * PACED_BLOCK  # as fast as possible; a whole number of paced blocks, so a damaged
# file's paced re-read (FileSource._raw_blocks) starts on a paced block's boundary


def _mono(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=1, dtype=np.float32) if x.ndim == 2 else x.astype(np.float32, copy=False)


def _check_file(path: str) -> None:
    """A readable, non-empty regular file, or :class:`SourceError` naming the real problem."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise SourceError(f"{path}: a symlink to {os.readlink(path)}, which does not exist") from None
        raise SourceError(f"{path}: no such file") from None
    except OSError as e:
        why = {errno.ELOOP: "symlink loop (the link points back to itself)",
               errno.ENOTDIR: "a part of the path is not a directory",
               errno.EACCES: "permission denied (a directory on the path cannot be entered)"}
        raise SourceError(f"{path}: {why.get(e.errno, e.strerror)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{path}: is a directory, not an audio file")
    if stat.S_ISFIFO(st.st_mode):
        # a writer blocked until a reader opens the FIFO is let go (it sees a closed pipe)
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            pass
        raise SourceError(f"{path}: is a pipe (FIFO), not a file: replay reads a recording it can seek in; "
                          f"save the stream to a file first")
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        raise SourceError(f"{path}: is a device, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"{path}: is not a regular file")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path}: not readable (permission denied)")
    if st.st_size == 0:
        raise SourceError(f"{path}: file is empty")


def _wav_missing_bytes(path: str) -> int:
    """Bytes of a RIFF/WAVE file's ``data`` chunk that its header declares but
    the file does not hold (0 if complete, or if the size is a streaming
    writer's placeholder).  libsndfile reads such a cut-off file without a word."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if f.read(4) != b"RIFF" or len(f.read(4)) < 4 or f.read(4) != b"WAVE":
            return 0
        while True:
            head = f.read(8)
            if len(head) < 8:
                return 0
            chunk, length = head[:4], int.from_bytes(head[4:], "little")
            if chunk == b"data":
                if length in (0, 0xFFFFFFFF):
                    return 0
                return max(0, length - (size - f.tell()))
            f.seek(length + (length & 1), os.SEEK_CUR)  # chunks are padded to even length


# libsndfile reads these itself but not well: MP3 block reads print mpg123
# chatter on fd 2, and PyAV's decoders are the reference ones for both
_CODEC_SUBTYPES = {"MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III", "OPUS"}


class FileSource(Source):
    """A recording at any rate and channel count: what libsndfile reads well
    (WAV, FLAC, Ogg Vorbis, AIFF, ...) through it, anything else with an audio
    track (MP3, m4a/AAC, Opus, WebM, a video file's sound, ...) through
    :class:`~stream_ser.codec.Decoder`, frame by frame (a long file is never
    loaded whole).

    ``speed`` 1 paces blocks by the wall clock like a microphone (the same code
    path as ``listen``); 2 is twice as fast; 0 runs as fast as the consumers allow.
    The file is opened and checked in the constructor, so a bad file fails
    before any model loads.
    """

    def __init__(self, path: str | os.PathLike, speed: float = 1.0, block_seconds: float | None = None):
        self.path = os.fspath(path)
        self.name = os.path.basename(self.path)
        check_number("speed", speed, 0.01, 1000.0, zero=True)  # 0: as fast as possible; 1: real time
        self.speed = speed
        self.live = False
        self._stop = threading.Event()
        # paced, a block is what a microphone would deliver; as fast as possible,
        # 32 ms reads spent most of the capture thread's time on per-call overhead
        self.block_seconds = block_seconds if block_seconds is not None else (PACED_BLOCK if speed > 0 else FAST_BLOCK)
        self._file = self._decoder = None
        self.conditioner = Conditioner()
        _check_file(self.path)
        import soundfile as sf

        try:
            # libsndfile's MP3 decoder writes notes ("Illegal Audio-MPEG-Header")
            # on fd 2 for a damaged or mislabelled file: the error below says it in one line
            with quiet_stderr(replay_on_error=False):
                self._file = sf.SoundFile(self.path)
            if self._file.subtype in _CODEC_SUBTYPES:
                self._file.close()
                self._file = None
        except sf.LibsndfileError:
            self._file = None
        if self._file is None:
            from .codec import Decoder

            self._decoder = Decoder(self.path)
            self.sample_rate, self.channels, self.frames = self._decoder.sample_rate, self._decoder.channels, self._decoder.frames
        else:
            self.sample_rate, self.channels = self._file.samplerate, self._file.channels
            self.frames = self._file.frames
            if self.frames <= 0:
                self._file.close()
                raise SourceError(f"{self.path}: no audio frames in the file")
        wav = self._file is not None and self._file.format in ("WAV", "WAVEX")
        self._missing_bytes = _wav_missing_bytes(self.path) if wav else 0

    @property
    def duration(self) -> float | None:
        return self.frames / self.sample_rate if self.frames > 0 else None

    def _raw_blocks(self, n: int) -> Iterator[np.ndarray]:
        if self._decoder is not None:
            for x in self._decoder.blocks(n):
                yield _mono(self.conditioner.clean(x))
            d = self._decoder
            if d.damaged:  # said at the end, as for a truncated WAV: the rest was analysed
                t, why = d.first_damage
                raise SourceError(f"{self.path}: {d.damaged} damaged packet{'s' if d.damaged > 1 else ''} skipped "
                                  f"(the first at {t:.1f} s: {why}); the rest of the audio was analysed")
            return
        fine = max(1, int(PACED_BLOCK * self.sample_rate))
        decoded = 0
        while True:
            at = self._file.tell()
            try:
                x = self._file.read(n, dtype="float32", always_2d=True)
            except Exception as e:  # truncated or corrupt data mid-file
                if n > fine:  # keep what lies before the damage: read the failed block again in paced blocks
                    import soundfile as sf

                    with contextlib.suppress(Exception):  # (a decoder that failed may refuse to seek: reopen)
                        self._file.close()
                        self._file = sf.SoundFile(self.path)
                        self._file.seek(at)
                        n = fine
                        continue
                raise SourceError(f"{self.path}: decoding failed mid-file ({e})") from None
            if len(x) == 0:
                if self._missing_bytes:  # libsndfile reads a cut-off WAV without a word
                    raise SourceError(f"{self.path}: file is truncated ({self._missing_bytes} bytes missing from "
                                      f"its end); the audio before the cut was analysed")
                if decoded < self.frames:  # libsndfile skips a damaged Ogg page, or stops at one, without a word
                    lost, declared = (self.frames - decoded) / self.sample_rate, self.frames / self.sample_rate
                    raise SourceError(f"{self.path}: damaged data: {lost:.1f} s of the {declared:.1f} s the file declares could "
                                      f"not be decoded; the rest was analysed (times after the damage run early by as much)")
                return
            decoded += len(x)
            yield _mono(self.conditioner.clean(x))  # before the mix-down: inf - inf is NaN

    def blocks(self) -> Iterator[tuple[np.ndarray, float]]:
        resampler = soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32") if self.sample_rate != SAMPLE_RATE else None
        n = max(1, int(self.block_seconds * self.sample_rate))
        t0 = time.monotonic()
        read = 0
        raw = self._raw_blocks(n)
        while True:
            x = next(raw, None)
            last = x is None
            if last:
                x = np.zeros(0, dtype=np.float32)
            read += len(x)
            y = self.conditioner.remove_dc(resampler.resample_chunk(x, last=last) if resampler else x)
            if self.speed > 0:  # pace like a microphone: a block exists once its audio has played
                due = t0 + read / self.sample_rate / self.speed
                while (delay := due - time.monotonic()) > 0:  # in pieces: Event.wait refuses huge timeouts
                    if self._stop.wait(min(delay, 3600.0)):  # a stop ends the wait, however slow the pace
                        return
            if len(y):
                yield y, time.time()
            if last:
                return

    def request_stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._decoder is not None:
            self._decoder.close()


def _sounddevice():
    try:
        import sounddevice
    except OSError:  # the PortAudio library itself is missing
        raise SourceError("PortAudio is not installed (e.g. `apt-get install libportaudio2`)") from None
    return sounddevice


def find_device(device: str | int | None):
    """Resolve ``-d/--device``: an index, or a substring of an input device's name."""
    sd = _sounddevice()

    if device is None or device == "":
        try:
            return sd.default.device[0] if sd.default.device[0] >= 0 else sd.query_devices(kind="input")["index"]
        except Exception:
            raise SourceError("no default input device; list devices with `stream-ser listen -l`") from None
    devices = sd.query_devices()
    if isinstance(device, int) or str(device).isdigit():
        i = int(device)
        if 0 <= i < len(devices) and devices[i]["max_input_channels"] > 0:
            return i
        raise SourceError(f"no input device with index {i}; list devices with `stream-ser listen -l`")
    matches = [d["index"] for d in devices if d["max_input_channels"] > 0 and str(device).lower() in d["name"].lower()]
    if not matches:
        raise SourceError(f"no input device matching {device!r}; list devices with `stream-ser listen -l`")
    return matches[0]


def list_devices() -> str:
    sd = _sounddevice()

    lines = []
    default = sd.default.device[0]
    for d in sd.query_devices():
        if d["max_input_channels"] > 0:
            mark = "*" if d["index"] == default else " "
            lines.append(f"{mark} {d['index']:>3} {d['name']}  ({d['max_input_channels']} in, {d['default_samplerate']:.0f} Hz)")
    return "\n".join(lines) if lines else "no input devices"


class QueuedSource(Source):
    """A live source whose audio another thread hands over (a device's
    callback, a socket) through a queue holding at most ``queue_seconds`` of
    audio: a block that does not fit is dropped and counted.  :meth:`blocks`
    (the pipeline's capture thread) cleans, resamples to 16 kHz and removes DC;
    when no audio came for a while, :meth:`lost` says whether that ends it.

    Threading: :meth:`_put` from the one delivering thread (never blocks);
    :meth:`blocks` on the capture thread; :meth:`request_stop` from any.
    A subclass sets ``sample_rate`` and calls :meth:`_start_queue`.
    """

    live = True
    drain_at_stop = False  # True: after a stop, blocks() still yields the audio already queued

    def _start_queue(self, queue_seconds: float) -> None:
        self.conditioner = Conditioner()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._room = max(1, int(queue_seconds * self.sample_rate))  # samples at the source's rate
        self._queued = 0
        self._queued_lock = threading.Lock()
        self._stop = threading.Event()

    def _put(self, x: np.ndarray, captured_at: float) -> None:
        with self._queued_lock:
            fits = self._queued + len(x) <= self._room
            if fits:
                self._queued += len(x)
            else:
                self.dropped_samples += len(x) * SAMPLE_RATE // self.sample_rate
        if fits:
            self._queue.put((x, captured_at))

    def lost(self, silent_for: float) -> SourceError | None:
        """The error that ends a source silent for ``silent_for`` s, or None to wait on."""
        return None

    def blocks(self) -> Iterator[tuple[np.ndarray, float]]:
        resampler = soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32") if self.sample_rate != SAMPLE_RATE else None
        last_audio = time.monotonic()
        while self.drain_at_stop or not self._stop.is_set():
            try:
                x, t = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    break
                error = self.lost(time.monotonic() - last_audio)
                if error is not None:
                    raise error
                continue
            with self._queued_lock:
                self._queued -= len(x)
            last_audio = time.monotonic()
            x = self.conditioner.clean(x)
            y = self.conditioner.remove_dc(resampler.resample_chunk(x) if resampler else x)
            if len(y):
                yield y, t
        if self.drain_at_stop and resampler is not None:  # the resampler's last few ms
            y = self.conditioner.remove_dc(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
            if len(y):
                yield y, time.time()

    def request_stop(self) -> None:
        self._stop.set()


class MicSource(QueuedSource):
    """A live input device through sounddevice, at the device's own rate.

    The PortAudio callback runs on PortAudio's thread and only copies the block
    into the bounded queue (never blocks).  :meth:`blocks` runs on the
    pipeline's capture thread (:class:`QueuedSource`); it ends at once when
    stopped.  A device that delivers nothing for ``lost_after`` seconds raises
    :class:`DeviceLost`.
    """

    def __init__(self, device: str | int | None = None, sample_rate: int | None = None,
                 block_seconds: float = 0.032, queue_seconds: float = 10.0, lost_after: float = 2.0):
        if sample_rate is not None:
            check_number("samplerate", sample_rate, 1000, 384000, " Hz", integer=True)
        sd = _sounddevice()

        self.device = find_device(device)
        info = sd.query_devices(self.device)
        self.name = info["name"]
        self.sample_rate = int(sample_rate or info["default_samplerate"])
        self.channels = 1
        self.block_seconds = block_seconds
        self.lost_after = lost_after
        self._start_queue(queue_seconds)
        try:
            sd.check_input_settings(self.device, channels=1, samplerate=self.sample_rate, dtype="float32")
        except Exception as e:
            raise SourceError(f"input device {self.name!r} refuses {self.sample_rate} Hz mono: {e}") from None
        self._stream = None

    def _callback(self, indata, frames, time_info, status):
        if status.input_overflow:
            self.overflows += 1
        self._put(indata[:, 0].copy(), time.time())

    def open(self) -> None:
        """Start capturing (call after the models are loaded)."""
        sd = _sounddevice()

        try:
            self._stream = sd.InputStream(device=self.device, channels=1, samplerate=self.sample_rate, dtype="float32",
                                          blocksize=int(self.block_seconds * self.sample_rate), callback=self._callback)
            self._stream.start()
        except Exception as e:
            raise SourceError(f"cannot open input device {self.name!r}: {e}") from None

    def blocks(self) -> Iterator[tuple[np.ndarray, float]]:
        if self._stream is None:
            self.open()
        yield from super().blocks()  # returns within 0.1 s of a stop; the stream is closed on its thread

    def lost(self, silent_for: float) -> SourceError | None:
        if silent_for > self.lost_after or (self._stream is not None and not self._stream.active):
            return DeviceLost(f"input device {self.name!r} stopped delivering audio")
        return None

    def close(self) -> None:
        self._stop.set()
        if self._stream is not None:
            try:
                self._stream.abort()
                self._stream.close()
            except Exception:
                pass
