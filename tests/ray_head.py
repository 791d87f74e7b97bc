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


LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


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
    PYTHONPATH says.

    Every Ray process of this head, and the driver, must see
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (set before ``import ray``): otherwise
    Ray turns "127.0.0.1" into the machine's own interface address and its
    components talk over that, despite ``--node-ip-address``."""
    port = _free_port()
    env = dict(os.environ if env is None else env, RAY_worker_niceness="0", **LOOPBACK_ONLY)
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


def head_pids(address: str) -> set[int]:
    """The process ids of the head serving ``address`` ("127.0.0.1:PORT"):
    its ``ray start`` and every process below it (GCS, raylet, workers, agents)."""
    port = address.rsplit(":", 1)[1]
    parents: dict[int, int] = {}
    roots = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            pid = int(stat.parent.name)
            parents[pid] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
            if b"start" in argv and b"--head" in argv and port.encode() in argv:
                roots.add(pid)
    found, grew = set(roots), True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found

