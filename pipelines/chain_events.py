"""What the chain runner (`make run`/`make chain`) hears from the tasks it runs in its own process.

`dag.test()` runs every task inside the runner's process, with no task log file and no live status. The
runner installs a `ChainObserver` here; then each task (`pipelines.airflow_wiring.run_stage`) reports
its start and end (with the error message when it fails), stages report counted work
(`progress_reporter`), and everything the task logs (INFO and up, `pipelines.*` loggers) is also written
to the task's log file where Airflow's UI looks for it (`<base_log_folder>/dag_id=.../run_id=.../
task_id=.../attempt=N.log`, one JSON object a line). Under the real scheduler no observer is installed
and all of this is a no-op: Airflow's supervisor keeps the task logs itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

EVENT_KEY = "alphatide_event"  # every event line is a JSON object with this key


@dataclass(frozen=True)
class TaskIdentity:
    dag_id: str
    task_id: str
    run_id: str
    try_number: int

    def log_path(self, root: Path) -> Path:
        return (
            root / f"dag_id={self.dag_id}" / f"run_id={self.run_id}" / f"task_id={self.task_id}"
            / f"attempt={self.try_number}.log"
        )


class _JsonLinesHandler(logging.Handler):
    """Airflow 3's task-log format: {"timestamp", "level", "event", "logger"} per line."""

    def __init__(self, path: Path):
        super().__init__(logging.INFO)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.stream = path.open("a", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        event = record.getMessage()
        if record.exc_info:
            event += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        line = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "event": event,
            "logger": record.name,
        }
        self.stream.write(json.dumps(line, default=str) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()
        super().close()


class ChainObserver:
    """Writes one JSON event a line to `out` (the runner's stdout, read by the parent process)."""

    def __init__(self, out: TextIO, log_root: Path):
        self.out = out
        self.log_root = log_root

    def emit(self, event: str, **fields: Any) -> None:
        self.out.write(json.dumps({EVENT_KEY: event, "at": time.time(), **fields}, default=str) + "\n")
        self.out.flush()


_observer: ChainObserver | None = None


def set_observer(observer: ChainObserver | None) -> None:
    global _observer
    _observer = observer


def current() -> ChainObserver | None:
    return _observer


def emit(event: str, **fields: Any) -> None:
    if _observer is not None:
        _observer.emit(event, **fields)


def progress_reporter(task: str) -> Callable[[int, int, str], None] | None:
    """A callback `(done, total, detail)` for counted work, or None when nobody listens."""
    if _observer is None:
        return None

    def report(done: int, total: int, detail: str) -> None:
        emit("progress", task=task, done=done, total=total, detail=detail)

    return report


@contextlib.contextmanager
def task_scope(task: TaskIdentity | None) -> Iterator[Path | None]:
    """Around one task: report start and end, and keep what `pipelines.*` logs in the task's log file."""
    observer = _observer
    if observer is None or task is None:
        yield None
        return
    path = task.log_path(observer.log_root)
    handler = _JsonLinesHandler(path)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    logger = logging.getLogger("pipelines")
    saved = (logger.level, logger.propagate)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # INFO goes to the file; the console keeps WARNING and up
    logger.addHandler(handler)
    logger.addHandler(console)
    observer.emit("task_started", dag_id=task.dag_id, task_id=task.task_id, try_number=task.try_number, log=str(path))
    started = time.monotonic()
    try:
        yield path
    except BaseException as exc:
        logger.error("task %s.%s failed: %s: %s", task.dag_id, task.task_id, type(exc).__name__, exc,
                     exc_info=not _is_operator_error(exc))
        observer.emit(
            "task_failed", dag_id=task.dag_id, task_id=task.task_id, try_number=task.try_number,
            error=f"{type(exc).__name__}: {exc}", retryable=not _is_final(exc), log=str(path),
            seconds=round(time.monotonic() - started, 1),
        )
        raise
    else:
        observer.emit("task_succeeded", dag_id=task.dag_id, task_id=task.task_id, log=str(path),
                      seconds=round(time.monotonic() - started, 1))
    finally:
        logger.removeHandler(handler)
        logger.removeHandler(console)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        handler.close()


def _is_operator_error(exc: BaseException) -> bool:
    from pipelines.errors import OperatorError

    return isinstance(exc, OperatorError) or isinstance(exc.__cause__, OperatorError)


def _is_final(exc: BaseException) -> bool:
    """True when Airflow will not retry (our fail-at-once exception)."""
    return type(exc).__name__ == "AirflowFailException"
