"""The replayed venue in a process of its own (`python -m serving.stream.replay`), as a real venue is.

`serving.stream.runner` starts this for ``stream.source=replay`` unless ``stream.replay_in_process``:
run in the serving process, the replay server's own work (reading and decompressing the capture, keeping
its books, sending every message) held the serving process's GIL beside the stream's - measured at
10x replay about a sixth of the stream thread's CPU time - work a live venue does on its own machines.
Same surface as `ReplayServer` for the app: `start()`, `stop()`, `port`, `ccxt_urls()`.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from serving.stream.child_process import die_with_parent, terminate

STAY_UP_S = 10**9  # after the capture ends, keep serving (like the in-process server) until stopped


class ReplayProcess:
    def __init__(self, capture_dir: Path, *, speed: float = 1.0, start_timeout_s: float = 60.0):
        if speed < 0:
            raise ValueError(f"replay speed must be >= 0, got {speed}")
        self.capture_dir, self.speed, self.start_timeout_s = capture_dir, speed, start_timeout_s
        self.process: subprocess.Popen[str] | None = None
        self._port: int | None = None

    async def start(self) -> ReplayProcess:
        await asyncio.to_thread(self._start)
        return self

    def _start(self) -> None:
        command = [sys.executable, "-m", "serving.stream.replay", str(self.capture_dir),
                   "--speed", str(self.speed), "--linger", str(STAY_UP_S)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # "PORT <n>" once listening
        if not line.startswith("PORT "):
            self._stop()
            raise RuntimeError(f"the replay process did not start (said {line!r}): {' '.join(command)}")
        self._port = int(line.split()[1])

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        terminate(self.process)

    @property
    def port(self) -> int:
        assert self._port is not None, "start() the replay process first"
        return self._port

    def ccxt_urls(self) -> dict[str, Any]:
        """Overrides for a ccxt(.pro) binance client's ``urls['api']`` (as `ReplayServer.ccxt_urls`)."""
        rest = f"http://127.0.0.1:{self.port}/api/v3"
        return {"public": rest, "private": rest, "ws": {"spot": f"ws://127.0.0.1:{self.port}/stream"}}
