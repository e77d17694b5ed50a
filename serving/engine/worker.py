"""The trading engine's worker thread (`TradingEngine.start()`): a bounded event queue that the stream
fills without ever blocking (`submit`), and one thread that takes events off it and calls the engine's
`handle`, plus its `tick` every `tick_interval_s` (wall-clock seconds, monotonic), all under the
engine's lock. Without the worker (tests, replays) the caller drives `handle`/`tick` itself.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from serving.engine.events import EngineEvent

log = logging.getLogger("alphatide.engine")


class EngineWorker:
    """Queue + thread for one engine; `dropped` counts events refused because the queue was full."""

    def __init__(
        self,
        lock: AbstractContextManager[object],
        handle: Callable[[EngineEvent], None],
        tick: Callable[[], None],
        *,
        tick_interval_s: float,
        max_queue: int,
    ) -> None:
        self._lock, self._handle, self._tick, self.tick_interval_s = lock, handle, tick, tick_interval_s
        self._queue: queue.Queue[EngineEvent] = queue.Queue(maxsize=max_queue)
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def submit(self, event: EngineEvent) -> bool:
        """Queue an event (never blocks the stream); False when the queue was full."""
        try:
            self._queue.put_nowait(event)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def start(self) -> None:
        """Start the thread (no-op while it runs)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="alphatide-engine", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Ask the thread to stop and wait up to `timeout_s` seconds for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        next_tick = 0.0
        while not self._stop.is_set():
            try:
                event = self._queue.get(timeout=self.tick_interval_s)
            except queue.Empty:
                event = None
            try:
                with self._lock:
                    if event is not None:
                        self._handle(event)
                    if time.monotonic() >= next_tick:
                        self._tick()
                        next_tick = time.monotonic() + self.tick_interval_s
            except Exception:  # keep trading on the next event; the error is in the log
                log.exception("engine worker: event handling failed")
