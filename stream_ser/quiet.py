"""Process-level quieting: C++ libraries (TensorFlow, TFLite, libsndfile's
mpg123) write notices straight to file descriptor 2, before any Python log
level applies.  Nothing in the pipeline needs to know how this is done."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading

_fd2_lock = threading.RLock()  # re-entrant: a silenced block may load a model that silences again


@contextlib.contextmanager
def quiet_stderr(replay_on_error: bool = True):
    """Silence fd 2 for the block.  What was written is replayed if the block
    fails, unless ``replay_on_error`` is false (the caller's one-line error says
    it).  fd 2 belongs to the process: other threads' writes meanwhile are
    silenced too, and callers take turns (a lock) so that fd 2 is always
    restored.  With fd 2 closed (``2>&-``) there is nothing to silence."""
    with _fd2_lock:
        try:
            saved = os.dup(2)
        except OSError:  # stderr closed: nothing to quiet
            yield
            return
        with tempfile.TemporaryFile() as log:
            os.dup2(log.fileno(), 2)
            try:
                yield
            except BaseException:
                os.dup2(saved, 2)
                if replay_on_error:
                    log.seek(0)
                    try:
                        sys.stderr.write(log.read().decode(errors="replace"))
                    except (OSError, ValueError):
                        pass
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up notices (oneDNN, CUDA probes)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    if "tensorflow" not in sys.modules:
        with quiet_stderr():
            import tensorflow  # noqa: F401
