"""Compressed audio in-process, through PyAV (FFmpeg's libraries in a wheel):
no ffmpeg binary is needed, and FFmpeg's own log stays off, so nothing is
written on stderr.

- :class:`Decoder` reads the first audio track of a file libsndfile does not
  read well (MP3, m4a/AAC, Opus, a video file's sound ...), frame by frame, at
  the file's own rate and channels.  Damaged packets are skipped (the decoder
  resyncs, as ffmpeg does) and counted.
- :func:`round_trip` encodes 16 kHz audio in memory and decodes it back (the
  evaluation conditions and training augmentations that model a codec).

Errors are :class:`~stream_ser.errors.SourceError` with one line.  A decoder
is used by one thread at a time.
"""

from __future__ import annotations

import io
import os
from typing import Iterator

import numpy as np

from .errors import SourceError


def _av():
    import av
    import av.logging

    av.logging.set_level(None)  # FFmpeg's log off (PyAV's default; another library may have turned it on)
    return av


def _why(e: BaseException) -> str:
    """The useful part of an FFmpeg error, on one line ("Invalid data found when processing input")."""
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return str(text).splitlines()[0]


class Decoder:
    """The first audio track of ``path``, opened and its first frame decoded in
    the constructor (a file that is no audio fails here, in one line).

    Attributes: ``sample_rate`` and ``channels`` as decoded; ``frames``, the
    container's duration in samples (an estimate; -1 when it does not say);
    ``damaged``, packets skipped so far, and ``first_damage`` (seconds, why)."""

    def __init__(self, path: str | os.PathLike | io.BufferedIOBase):
        av = _av()
        self.path = path if hasattr(path, "read") else os.fspath(path)  # a file object: audio in memory
        self.damaged, self.first_damage = 0, None
        # a local file reads local files only: a playlist (HLS, concat) naming URLs opens no connection
        options = {} if hasattr(path, "read") else {"protocol_whitelist": "file"}
        try:
            self._container = av.open(self.path, "r", options=options)
        except av.error.FFmpegError as e:
            raise SourceError(f"{self.path}: cannot decode audio: not a supported audio format, or corrupt ({_why(e)})") from None
        try:
            if not self._container.streams.audio:
                raise SourceError(f"{self.path}: no audio track in the file")
            self._stream = self._container.streams.audio[0]
            self._frames = self._decode(av)
            self._pending = next(self._frames, None)
            if self._pending is None:
                why = f" ({self.damaged} damaged packets: {self.first_damage[1]})" if self.damaged else ""
                raise SourceError(f"{self.path}: no audio could be decoded{why}")
        except BaseException:
            self._container.close()
            raise
        self.sample_rate, self.channels = self._rate, self._pending.shape[1]
        seconds = None
        if self._stream.duration and self._stream.time_base:
            seconds = float(self._stream.duration * self._stream.time_base)
        elif self._container.duration:
            seconds = self._container.duration / 1e6  # av.time_base: microseconds
        self.frames = int(round(seconds * self.sample_rate)) if seconds else -1

    def _decode(self, av) -> Iterator[np.ndarray]:
        """float32 ``(samples, channels)`` arrays at the rate and layout of the first frame."""
        resampler = None  # planar float, rate and layout as they come (FileSource resamples the stream itself)
        at = None  # where the next sample lies in the track, in samples (from the frames' timestamps)
        try:
            for packet in self._container.demux(self._stream):
                try:
                    frames = packet.decode()
                except (av.error.InvalidDataError, av.error.PatchWelcomeError) as e:
                    self.damaged += 1
                    if self.first_damage is None:
                        t = float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else 0.0
                        self.first_damage = (t, _why(e))
                    continue
                for frame in frames:
                    if resampler is None:
                        resampler = av.AudioResampler(format="fltp")
                        self._rate = frame.sample_rate
                    try:
                        converted = resampler.resample(frame)
                    except ValueError:  # PyAV refuses a frame whose rate or layout differs from the first
                        raise SourceError(f"{self.path}: the audio's rate or channels change mid-file "
                                          f"(from {self._rate} Hz); convert it to one format first") from None
                    # audio lost to skipped packets comes back as silence: what follows keeps its time
                    start = round(frame.pts * frame.time_base * self._rate) if frame.pts is not None and frame.time_base else None
                    if start is not None and at is not None and start - at > self._rate // 20:
                        yield np.zeros((start - at, frame.layout.nb_channels), dtype=np.float32)
                        at = start
                    elif at is None:
                        at = start
                    for out in converted:
                        x = out.to_ndarray().T
                        at = None if at is None else at + len(x)
                        yield x
        except av.error.FFmpegError as e:  # the container itself breaks off (demuxing, not one packet)
            raise SourceError(f"{self.path}: decoding failed mid-file ({_why(e)})") from None

    def blocks(self, n: int) -> Iterator[np.ndarray]:
        """float32 ``(samples, channels)`` blocks of ``n`` samples (the last one
        shorter), to the end of the track: codec frames (1152 samples for MP3)
        are joined, so that a caller's block size, not the codec's, sets the
        number of blocks."""
        parts, have = [], 0
        while self._pending is not None:
            parts.append(self._pending)
            have += len(self._pending)
            self._pending = next(self._frames, None)
            if have >= n:
                x = np.concatenate(parts) if len(parts) > 1 else parts[0]
                whole = have - have % n
                for i in range(0, whole, n):
                    yield x[i : i + n]
                parts, have = ([x[whole:]], have - whole) if have > whole else ([], 0)
        if have:
            yield np.concatenate(parts)

    def close(self) -> None:
        self._container.close()


def read(path: str | os.PathLike | io.BufferedIOBase) -> tuple[np.ndarray, int]:
    """A whole file decoded: float32 ``(samples, channels)`` and its rate."""
    d = Decoder(path)
    try:
        parts = list(d.blocks(1 << 20))
    finally:
        d.close()
    return np.concatenate(parts), d.sample_rate


CODECS = {"mp3": ("mp3", "libmp3lame"), "opus": ("ogg", "libopus"), "m4a": ("mp4", "aac")}  # name: (container, encoder)


def encode(audio: np.ndarray, rate: int, codec: str, kbps: int) -> bytes:
    """float32 ``audio`` (mono, or ``(samples, 2)`` stereo) encoded in memory as
    ``codec`` ("mp3", "opus" in Ogg, or "m4a": AAC in MP4) at ``kbps`` kbit/s."""
    av = _av()
    container_format, encoder = CODECS[codec]
    planes = np.ascontiguousarray(np.atleast_2d(np.asarray(audio, dtype=np.float32).T))  # (channels, samples)
    layout = {1: "mono", 2: "stereo"}[len(planes)]
    buf = io.BytesIO()
    try:
        with av.open(buf, "w", format=container_format) as out:
            stream = out.add_stream(encoder, rate=rate, layout=layout)
            stream.bit_rate = int(kbps) * 1000
            frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
            frame.sample_rate = rate
            for frame_in in (frame, None):  # None: flush the encoder's last frames
                for packet in stream.encode(frame_in):
                    out.mux(packet)
    except av.codec.codec.UnknownCodecError:
        raise SourceError(f"cannot encode {codec} in-process ({encoder}: not in this PyAV build)") from None
    except (ValueError, av.error.FFmpegError) as e:
        raise SourceError(f"cannot encode {codec} in-process ({encoder}: {_why(e)})") from None
    return buf.getvalue()


def round_trip(audio: np.ndarray, rate: int, codec: str, kbps: int) -> np.ndarray:
    """``audio`` through ``codec`` and back: mono float32 at ``rate`` (the
    decoder's own rate resampled with soxr), not yet realigned."""
    import soxr

    y, got = read(io.BytesIO(encode(audio, rate, codec, kbps)))
    y = y.mean(axis=1, dtype=np.float32)
    return soxr.resample(y, got, rate).astype(np.float32) if got != rate else y
