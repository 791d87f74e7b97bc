"""``stream-ser batch --ray``: the batch engine on an existing Ray cluster.

One actor per worker loads the models once and holds them; each recording is
a task on an idle actor.  An actor that sees the driver's file (the same
machine, or a shared file system: same path, size and modification time)
reads it in place; for any other the audio travels as bytes, so the workers
need not see the driver's files.  The result (events, the report page) comes
back to the driver, which writes every output.  The cluster's nodes need stream-ser
installed (``pip install 'stream-ser[ray]'``) with its models.

Same interface as :class:`stream_ser.batch.LocalEngine`; used from the
driver's thread only.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time

from .batch import BatchOptions, Job, analyse, load_models, local_engine
from .errors import ModelError, UsageError
from .quiet import quiet_stderr


class RayWorker:
    """The actor: the models, loaded once; :meth:`run` analyses one recording,
    in place when this node sees the driver's file, else from its bytes
    (written to a private temporary folder under the recording's own file
    name, so that its format is recognised and its events name it as a local
    run would)."""

    def __init__(self, options, threads: int = 1):
        t0 = time.perf_counter()
        options.transcribe.cpu_threads = threads
        options.emotion.feature_threads = 1  # the cluster's parallelism is its actors: one window at a time each
        self.options = options
        self.models = load_models(options)
        self.load_seconds = time.perf_counter() - t0

    def ready(self) -> float:
        return self.load_seconds

    def run(self, name: str, filename: str, data: bytes | None, shown_path: str, seen: tuple | None = None) -> dict:
        """``data`` None: analyse ``shown_path`` if this node's file there has
        ``seen`` = (size, mtime_ns) as the driver's does, else return
        ``{"need_bytes": True}`` (the driver sends them)."""
        if data is None:
            try:
                st = os.stat(shown_path)
            except OSError:
                return {"need_bytes": True}
            if (st.st_size, st.st_mtime_ns) != tuple(seen or ()):
                return {"need_bytes": True}
            return analyse(shown_path, self.options, self.models, title=name)
        with tempfile.TemporaryDirectory(prefix="stream-ser-") as d:
            path = os.path.join(d, filename)
            with open(path, "wb") as f:
                f.write(data)
            result = analyse(path, self.options, self.models, title=name)
        if result["error"]:  # say the driver's path, not this worker's copy
            result["error"] = result["error"].replace(path, shown_path)
            result["html"] = result["html"].replace(path, shown_path)
        return result


def _reachable(address: str, timeout: float = 5.0) -> None:
    """A host:port that nothing answers on is one line now, not minutes of
    Ray's connection retries ("auto" and ray:// addresses are left to Ray)."""
    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        raise UsageError(f"cannot connect to the Ray cluster at {address}: {why}") from None


def _first_line(e: BaseException) -> str:
    lines = [x for x in str(e).splitlines() if x.strip()]
    return lines[-1].strip() if lines else type(e).__name__


class RayEngine:
    """``workers`` RayWorker actors (default: one per CPU of the cluster),
    one CPU each, one recording at a time each."""

    name = "ray"

    def __init__(self, address: str, workers: int | None, options):
        try:
            import ray
        except ImportError:
            raise UsageError("--ray needs Ray: pip install 'stream-ser[ray]'") from None
        self.ray = ray
        _reachable(address)
        try:
            with quiet_stderr(replay_on_error=False):  # Ray's C++ client logs its retries on fd 2
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except Exception as e:  # ConnectionError, or a malformed address (ValueError, RuntimeError)
            raise UsageError(f"cannot connect to the Ray cluster at {address}: {_first_line(e)}") from None
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(RayWorker)
        self.startup: list[float] = []
        self.ready_at: list[float] = []
        t0 = time.perf_counter()
        self._actors = [actor.remote(options, 1) for _ in range(n)]
        self._ready = {a.ready.remote(): t0 for a in self._actors}
        self._free = list(self._actors)
        self._running: dict = {}  # object ref -> (actor, job)
        self._local: list = []  # results made here (a file the driver cannot read)
        self._actor = actor
        self._options = options

    def wait_ready(self) -> None:
        """Block until every actor has loaded its models (benchmarks)."""
        while self._ready:
            self.poll(0.2)

    def idle(self) -> int:
        return len(self._free)

    def busy(self) -> int:
        return len(self._running)

    def submit(self, job: Job) -> None:
        try:  # the actor reads the file itself if it sees this one; else it asks for the bytes (poll)
            st = os.stat(job.path)
            with open(job.path, "rb"):
                pass
        except OSError as e:
            self._local.append((job, {"events": [], "error": f"{job.path}: {e.strerror or e}", "seconds": 0.0, "html": None}))
            return
        a = self._free.pop(0)
        seen = (st.st_size, st.st_mtime_ns)
        self._running[a.run.remote(job.name, os.path.basename(job.path), None, job.path, seen)] = (a, job)

    def _send_bytes(self, a, job: Job) -> dict | None:
        """Run ``job`` on actor ``a`` from the driver's bytes; the error result if they cannot be read."""
        try:
            with open(job.path, "rb") as f:
                data = f.read()
        except OSError as e:
            return {"events": [], "error": f"{job.path}: {e.strerror or e}", "seconds": 0.0, "html": None}
        self._running[a.run.remote(job.name, os.path.basename(job.path), data, job.path)] = (a, job)
        return None

    def poll(self, timeout: float) -> list[tuple[Job, dict]]:
        ray = self.ray
        done, self._local = self._local, []
        refs = list(self._running) + list(self._ready)
        if not refs:
            time.sleep(timeout)
            return done
        ready, _ = ray.wait(refs, num_returns=1, timeout=0 if done else timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)  # and any others already there
        for ref in ready:
            if ref in self._ready:
                t0 = self._ready.pop(ref)
                try:
                    ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    raise ModelError(f"a Ray worker cannot load the models: {_first_line(e)}") from None
                self.ready_at.append(time.perf_counter())
                self.startup.append(self.ready_at[-1] - t0)
                continue
            a, job = self._running.pop(ref)
            try:
                result = ray.get(ref)
                if result.get("need_bytes"):  # that node does not see the driver's file
                    result = self._send_bytes(a, job)
                    if result is None:
                        continue
                self._free.append(a)
            except ray.exceptions.RayActorError as e:  # the actor died (its node, a native crash): replace it
                result = {"events": [], "error": f"Ray worker died on this recording ({_first_line(e)})",
                          "seconds": 0.0, "html": None, "retry": True}
                self._free.append(self._actor.remote(self._options, 1))
            except ray.exceptions.RayError as e:
                result = {"events": [], "error": f"Ray task failed: {_first_line(e)}", "seconds": 0.0, "html": None, "retry": True}
                self._free.append(a)
            done.append((job, result))
        return done

    def close(self, abandon: bool = False) -> None:
        for a in self._actors + self._free:
            try:
                self.ray.kill(a)
            except Exception:
                pass
        self.ray.shutdown()


def make_engine(opts: BatchOptions, options, log_dir: str):
    """The engine ``opts`` asks for: a Ray cluster with ``--ray``, else local worker processes."""
    if opts.ray is not None:
        return RayEngine(opts.ray, opts.workers, options)
    return local_engine(opts, options, log_dir)
