"""Where the models run (``--compute auto|cpu|cuda``), for both models.

- The transcript model (CTranslate2) takes the device itself
  (:attr:`~stream_ser.transcribe.TranscribeOptions.device`).
- TensorFlow would take any GPU it finds for a Keras emotion model: on "cpu"
  :func:`tensorflow_cpu_only` hides the GPUs from it before the model loads.
  (A TFLite model, the bundled one, always runs on the CPU.)

:func:`resolve` checks a request for "cuda" once, before any model loads:
without a CUDA device it becomes "cpu", with one line to show the user (the
run goes on).  Functions here are safe from any thread.
"""

from __future__ import annotations

import logging

DEVICES = ("auto", "cpu", "cuda")

log = logging.getLogger("stream_ser")


def cuda_devices() -> int:
    """CUDA devices CTranslate2 can use (0 without a GPU, a driver or its CUDA build)."""
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count()
    except Exception:  # a broken CUDA install is no GPU to use
        return 0


def resolve(requested: str) -> tuple[str, str | None]:
    """``(device, note)`` for ``requested``: "auto" stays "auto" (each library
    takes a GPU it finds, and nothing is probed here); "cuda" is kept when
    CTranslate2 finds a CUDA device, else it is "cpu" with a one-line note."""
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {requested!r}")
    if requested == "cuda" and cuda_devices() == 0:
        return "cpu", "--compute cuda: no CUDA device found (none visible to CTranslate2); running both models on the CPU"
    return requested, None


def tensorflow_cpu_only() -> None:
    """Hide every GPU from TensorFlow in this process.  Call before any model or
    tensor is made: TensorFlow fixes its devices on first use (after that, a
    GPU it already took is kept, and said in one log line)."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # devices already initialised in this process
        if tf.config.get_visible_devices("GPU"):
            log.warning("TensorFlow had already started on the GPU in this process; the emotion model stays there")
