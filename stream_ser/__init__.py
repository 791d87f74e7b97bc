"""stream-ser: live speech emotion recognition and transcription.

    import stream_ser
    for event in stream_ser.replay("call.wav"):
        print(event.to_json())

Heavy modules (TensorFlow, faster-whisper, librosa) load on first use, so that
``import stream_ser`` and ``stream-ser --help`` stay fast.
"""

from .errors import DeviceLost, ModelError, SourceError, StageError, StreamSerError, UsageError  # noqa: E402,F401  (light)


def replay(path, speed=0.0, options=None):
    """Events of a recording; see :func:`stream_ser.pipeline.replay`."""
    from .pipeline import replay as _replay

    return _replay(path, speed, options)


def listen(device=None, options=None):
    """Events of a live input device; see :func:`stream_ser.pipeline.listen`."""
    from .pipeline import listen as _listen

    return _listen(device, options)


def __getattr__(name):
    if name == "__version__":  # the installed package's metadata (pyproject.toml's version), read on first use
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("stream-ser")
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "unknown (not installed)"
    # Pipeline and its options on first use: importing them loads numpy, librosa's wrappers and the stages
    if name in ("Pipeline", "PipelineOptions"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
