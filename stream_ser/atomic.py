"""Files that appear whole or not at all: write to a temporary name beside
the target, then rename it into place (atomic on one file system).  A reader,
or a rerun after ``kill -9``, sees the old file or the complete new one, and
at worst a stray ``*.~tmp<pid>`` file, never half a file under the real name."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path to write; on success it replaces ``path``, on
    an error it is removed and ``path`` is left as it was."""
    tmp = f"{os.fspath(path)}.~tmp{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
