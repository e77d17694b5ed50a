"""The champion model in memory, swapped atomically when the registry's alias moves.

A new champion is loaded completely (MLflow download, CatBoost deserialization: hundreds of ms) before it
replaces the old one in a single reference assignment, so a request sees either the old model or the new
one, never half of one, and never waits for the load: requests keep scoring with the old model meanwhile.

Two ways to keep it fresh:
- `start()` runs a daemon thread that reads the alias every `check_every_s` seconds (the serving tier does
  this in its lifespan); `current()` then only returns the reference.
- Without it (tests that build the app without running its lifespan), `current()` checks lazily at most
  every `check_every_s` seconds; only the one request that takes the check pays for it, the others
  return the model in service at once (the lock is tried, never waited for, once a model is loaded).

The served model only needs `predict_proba(np.ndarray of shape (1, n)) -> (1, 2)` (a native CatBoost model
or a calibrated wrapper registered by the training code); `ref.feature_columns` gives the column order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.registry import ChampionSource, ModelRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    ref: ModelRef
    model: Any  # anything with predict_proba((1, n) float64) -> (1, 2)

    def predict_up(self, values: list[float | None]) -> float:
        """P(close[t+h] >= close[t]) for one feature row in `ref.feature_columns` order (None = missing)."""
        row = np.array([[np.nan if v is None else v for v in values]], dtype=np.float64)
        return float(self.model.predict_proba(row)[0, 1])


class ChampionScorer:
    def __init__(
        self,
        registry: ChampionSource,
        check_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._registry = registry
        self._check_every_s = check_every_s
        self._clock = clock
        self._current: LoadedModel | None = None
        self._checked_at: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.swaps = 0

    def current(self) -> LoadedModel | None:
        """The champion in service (loads it on first use; see the module docstring for freshness)."""
        if self._thread is not None and self._current is not None:
            return self._current
        now = self._clock()
        due = self._checked_at is None or now - self._checked_at >= self._check_every_s
        # With a model in service nobody waits: whoever gets the lock checks, the rest score on.
        if due and self._lock.acquire(blocking=self._current is None):
            try:
                if self._checked_at is None or now - self._checked_at >= self._check_every_s:
                    self._refresh_locked()
                    self._checked_at = now
            finally:
                self._lock.release()
        return self._current

    def refresh(self) -> bool:
        """Read the alias now and swap in a new champion if it moved. True when the model changed."""
        with self._lock:
            before = self._current
            self._refresh_locked()
            self._checked_at = self._clock()
            return self._current is not before

    def _refresh_locked(self) -> None:
        try:
            ref = self._registry.champion()
            if ref is None:
                self._current = None
                return
            if self._current is not None and self._current.ref.version == ref.version:
                return
            loaded = LoadedModel(ref=ref, model=self._registry.load_native(ref))
        except Exception as exc:  # registry down or a broken artifact: keep serving the model we have
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("champion check failed, keeping version %s: %s",
                        self._current.ref.version if self._current else None, self.last_error)
            return
        self.last_error = None
        previous = self._current
        self._current = loaded  # the atomic swap
        self.swaps += 1
        log.info("champion %s -> %s", previous.ref.version if previous else None, ref.version)

    def start(self) -> None:
        """Poll the registry on a daemon thread every `check_every_s` seconds (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self.refresh()

        def loop() -> None:
            while not self._stop.wait(self._check_every_s):
                self.refresh()

        self._thread = threading.Thread(target=loop, name="champion-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
