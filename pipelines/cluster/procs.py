"""Cluster processes: each component in its own process group, a pid file per component, every process
marked by an environment variable so that `down` finds even a child that left its group.

A pid file holds `pid create_time`: a pid reused by an unrelated process after a reboot is not killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

MARKER = "CLUSTER_RUN_DIR_OF_ALPHATIDE"  # not ALPHATIDE_*: the settings reject unknown ones


@dataclass(frozen=True)
class Started:
    name: str
    pid: int
    log: Path


def start(name: str, argv: list[str], env: dict[str, str], run_dir: Path) -> Started:
    """Start `argv` in a new session (its own process group), output to logs/<name>.log."""
    (run_dir / "pids").mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    log = run_dir / "logs" / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env={**env, MARKER: str(run_dir)}, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=run_dir,
        )
    created = psutil.Process(proc.pid).create_time()
    (run_dir / "pids" / f"{name}.pid").write_text(f"{proc.pid} {created}\n")
    return Started(name, proc.pid, log)


def _recorded(run_dir: Path) -> dict[str, psutil.Process | None]:
    found: dict[str, psutil.Process | None] = {}
    for pid_file in sorted((run_dir / "pids").glob("*.pid")):
        try:
            pid_s, created_s = pid_file.read_text().split()
            proc = psutil.Process(int(pid_s))
            found[pid_file.stem] = proc if abs(proc.create_time() - float(created_s)) < 1 else None
        except (ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
            found[pid_file.stem] = None
    return found


def status(run_dir: Path) -> dict[str, int | None]:
    """Component name -> pid while it runs, None when it is gone."""
    return {name: (p.pid if p is not None and p.is_running() and p.status() != psutil.STATUS_ZOMBIE else None)
            for name, p in _recorded(run_dir).items()}


def marked(run_dir: Path) -> list[psutil.Process]:
    """Every live process started for this run directory (by the environment marker)."""
    out = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != os.getpid() and proc.environ().get(MARKER) == str(run_dir):
                out.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def _signal_groups(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(proc.pid), sig)
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)


def stop_all(run_dir: Path, names: Iterable[str] | None = None, timeout_s: float = 30.0) -> list[str]:
    """SIGTERM each component's process group (in the order given), SIGKILL what is left after
    `timeout_s`, then any straggler carrying this run's marker. Returns the names stopped."""
    recorded = _recorded(run_dir)
    order = list(names) if names is not None else list(recorded)
    stopped = []
    for name in order:
        proc = recorded.get(name)
        if proc is not None:
            _signal_groups([proc], signal.SIGTERM)
            stopped.append(name)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and marked(run_dir):
        time.sleep(0.3)
    left = marked(run_dir)
    if left:
        _signal_groups(left, signal.SIGKILL)
        psutil.wait_procs(left, timeout=10)
    for name in order:
        (run_dir / "pids" / f"{name}.pid").unlink(missing_ok=True)
    return stopped


def kill_now(run_dir: Path, name: str) -> int | None:
    """`kill -9` one component's whole group (the takeover test and benchmark); returns its pid."""
    proc = _recorded(run_dir).get(name)
    if proc is None:
        return None
    _signal_groups([proc], signal.SIGKILL)
    psutil.wait_procs([proc], timeout=10)
    (run_dir / "pids" / f"{name}.pid").unlink(missing_ok=True)
    return proc.pid
