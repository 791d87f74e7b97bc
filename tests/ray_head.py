"""A Ray head on 127.0.0.1 for tests and benchmarks, stopped by its own
process id: `ray start --block` shuts down exactly the cluster it started
when it gets SIGTERM (`ray stop` would end every Ray cluster on the machine)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator


def ray_command() -> Path | None:
    ray = Path(sys.executable).with_name("ray")
    return ray if ray.exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ray_head(cpus: int, env: dict | None = None, timeout: float = 120.0) -> Iterator[str]:
    """Yields the head's address "127.0.0.1:PORT"; its workers run at nice 0
    like local processes (Ray's default is 15) and import what ``env``'s
    PYTHONPATH says."""
    port = _free_port()
    env = dict(os.environ if env is None else env, RAY_worker_niceness="0")
    p = subprocess.Popen([str(ray_command()), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
                          "--num-cpus", str(cpus), "--include-dashboard=false", "--disable-usage-stats"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if p.poll() is not None:
                raise RuntimeError(f"ray start exited {p.returncode}: {p.stderr.read()[-1500:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the Ray head did not answer")
            time.sleep(0.2)
        time.sleep(1.0)  # the GCS answers before the raylet has registered the node
        yield f"127.0.0.1:{port}"
    finally:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
