"""What the stream's child processes (the replayed venue, the market feed) share: dying with their parent
and being stopped."""

from __future__ import annotations

import subprocess
import sys
from typing import Any


def die_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM when the thread that started it ends, so no child
    outlives the serving process (PR_SET_PDEATHSIG; elsewhere nothing is done)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def terminate(process: subprocess.Popen[Any] | None, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`; waits until it is gone. Nothing for a finished process."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
