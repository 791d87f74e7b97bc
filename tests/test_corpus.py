"""A corpus of malformed recordings: truncated, lying headers, extra chunks,
wrong extensions.  Each either replays (exit 0, or 1 for a file cut short
mid-way, with its events kept) or is refused in one line (exit 2); never a
traceback, never a changed input, always strict JSONL."""

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from .fuzzing import JFK, judge, run_in_process, shared_models, _digest


def _wav(seconds=3.0, subtype="PCM_16", rate=16000) -> bytes:
    y, sr = sf.read(JFK, dtype="float32")
    b = io.BytesIO()
    sf.write(b, y[: int(seconds * sr)], sr, format="WAV", subtype=subtype)
    return b.getvalue()


def _encoded(fmt: str, subtype: str) -> bytes:
    y, sr = sf.read(JFK, dtype="float32")
    b = io.BytesIO()
    sf.write(b, y[: 3 * sr], sr, format=fmt, subtype=subtype)
    return b.getvalue()


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, i = [], 12
    while i + 8 <= len(data):
        cid, n = data[i:i + 4], struct.unpack("<I", data[i + 4:i + 8])[0]
        out.append((cid, data[i + 8:i + 8 + n]))
        i += 8 + n + (n & 1)
    return out


def _riff(chunks, riff_size=None) -> bytes:
    body = b"WAVE" + b"".join(cid + struct.pack("<I", len(p)) + p + (b"\0" if len(p) & 1 else b"") for cid, p in chunks)
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def _fmt(rate=16000, channels=1, bits=16, tag=1) -> bytes:
    block = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)


def corpus() -> dict[str, tuple[str, bytes]]:
    wav = _wav()
    fmt, data = dict(_chunks(wav))[b"fmt "], dict(_chunks(wav))[b"data"]
    flac, ogg = _encoded("FLAC", "PCM_16"), _encoded("OGG", "VORBIS")
    return {
        "truncated-mid-data": (".wav", wav[: len(wav) // 2]),
        "truncated-in-header": (".wav", wav[:40]),
        "header-only": (".wav", _riff([(b"fmt ", fmt), (b"data", b"")])),
        "odd-byte-data": (".wav", _riff([(b"fmt ", fmt), (b"data", data[:-1])])),
        "data-size-lies-big": (".wav", wav[:40] + struct.pack("<I", len(data) * 4) + data),
        "data-size-streaming": (".wav", wav[:40] + struct.pack("<I", 0xFFFFFFFF) + data),
        "riff-size-lies": (".wav", _riff([(b"fmt ", fmt), (b"data", data)], riff_size=7)),
        "rate-zero": (".wav", _riff([(b"fmt ", _fmt(rate=0)), (b"data", data)])),
        "rate-huge": (".wav", _riff([(b"fmt ", _fmt(rate=4_000_000_000 // 2)), (b"data", data)])),
        "channels-zero": (".wav", _riff([(b"fmt ", _fmt(channels=0)), (b"data", data)])),
        "channels-many": (".wav", _riff([(b"fmt ", _fmt(channels=1000)), (b"data", data)])),
        "bits-zero": (".wav", _riff([(b"fmt ", _fmt(bits=0)), (b"data", data)])),
        "unknown-format-tag": (".wav", _riff([(b"fmt ", _fmt(tag=0x1234)), (b"data", data)])),
        "float-tag-on-int-data": (".wav", _riff([(b"fmt ", _fmt(tag=3, bits=32)), (b"data", data)])),
        "no-fmt-chunk": (".wav", _riff([(b"data", data)])),
        "list-chunk-first": (".wav", _riff([(b"LIST", b"INFOISFT\x05\0\0\0test\0"), (b"fmt ", fmt), (b"data", data)])),
        "odd-unknown-chunk": (".wav", _riff([(b"fmt ", fmt), (b"junk", b"abc"), (b"data", data)])),
        "chunk-after-data": (".wav", _riff([(b"fmt ", fmt), (b"data", data), (b"zzzz", b"\xff" * 1001)])),
        "two-data-chunks": (".wav", _riff([(b"fmt ", fmt), (b"data", data), (b"data", data)])),
        "garbage-after-riff": (".wav", wav + b"\x00\x01garbage" * 500),
        "flac-named-wav": (".wav", flac),
        "ogg-named-flac": (".flac", ogg),
        "wav-named-mp3": (".mp3", wav),
        "wav-without-extension": ("", wav),
        "text-named-wav": (".wav", b"RIFF this is not audio\n" * 100),
        "truncated-flac": (".flac", flac[: len(flac) // 3]),
        "truncated-ogg": (".ogg", ogg[: len(ogg) // 3]),
        "flac-header-only": (".flac", flac[:42]),
        "zeros": (".wav", bytes(100_000)),
        "ones": (".wav", b"\xff" * 100_000),
    }


CORPUS = corpus()


@pytest.fixture(scope="module")
def models():
    with shared_models():
        yield


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_malformed_file(models, tmp_path, name):
    ext, blob = CORPUS[name]
    src = tmp_path / f"in{ext}"
    src.write_bytes(blob)
    out = tmp_path / "e.jsonl"
    out.write_text('{"type":"old"}\n')
    before = {src: (_digest(src), src.stat().st_size), out: (_digest(out), out.stat().st_size)}
    code, _, err = run_in_process(["replay", str(src), "--speed", "0", "--no-transcript", "--jsonl", str(out)])
    problems = judge(code, err, 0.0, 1.0, tmp_path, before, [out], [src])
    assert not problems, (problems, err[-1500:])
    if code == 2:
        lines = [l for l in err.splitlines() if l.startswith("stream-ser:")]
        assert len(lines) == 1 and str(src) in lines[0], err
