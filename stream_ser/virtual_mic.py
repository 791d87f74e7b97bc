"""A real microphone without a sound card: a PulseAudio null sink whose monitor
is the default input.  What is played into the sink is what
``stream-ser listen`` records: tests and benchmarks (bench/live.py) use it,
and so can anyone without a sound card (needs pulseaudio and pulseaudio-utils).

    with VirtualMic() as mic:          # before sounddevice is imported
        env = mic.env                  # pass to subprocesses
        mic.play("call.wav")           # paplay into the sink
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


class VirtualMic:
    def __init__(self, rate: int = 16000):
        self.rate = rate
        self.dir = Path(tempfile.mkdtemp(prefix="stream-ser-pulse-"))
        self.env = dict(os.environ)
        self.env.update({
            "PULSE_RUNTIME_PATH": str(self.dir / "run"), "PULSE_STATE_PATH": str(self.dir / "state"),
            "PULSE_COOKIE": str(self.dir / "cookie"), "PULSE_SERVER": f"unix:{self.dir / 'run' / 'native'}",
            "HOME": str(self.dir),
        })
        self._players: list[subprocess.Popen] = []

    @staticmethod
    def available() -> bool:
        return all(shutil.which(t) for t in ("pulseaudio", "pactl", "paplay"))

    def start(self) -> "VirtualMic":
        (self.dir / "run").mkdir(mode=0o700)
        (self.dir / "state").mkdir()
        subprocess.run(
            ["pulseaudio", "--daemonize=yes", "-n", "--exit-idle-time=-1", "--use-pid-file=yes",
             f"--load=module-native-protocol-unix auth-anonymous=1 socket={self.dir / 'run' / 'native'}",
             f"--load=module-null-sink sink_name=v rate={self.rate} channels=1 format=s16le norewinds=1"],
            env=self.env, check=True, capture_output=True, timeout=20)
        for _ in range(100):
            if subprocess.run(["pactl", "info"], env=self.env, capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        subprocess.run(["pactl", "set-default-sink", "v"], env=self.env, check=True, capture_output=True)
        subprocess.run(["pactl", "set-default-source", "v.monitor"], env=self.env, check=True, capture_output=True)
        return self

    def play(self, path: str | os.PathLike) -> subprocess.Popen:
        p = subprocess.Popen(["paplay", str(path)], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._players.append(p)
        return p

    def kill_sink(self) -> None:
        """Make the device vanish: stop the daemon."""
        self._kill()

    def _kill(self) -> None:
        pid_file = self.dir / "run" / "pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().split()[0]), 9)
            except (ProcessLookupError, ValueError):
                pass

    def stop(self) -> None:
        for p in self._players:
            if p.poll() is None:
                p.kill()
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "VirtualMic":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
