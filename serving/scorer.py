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

The fused two-tower model (`pipelines.modeling.fused.FusedModel`) also needs the last 200 bars of the
symbol for its sequence tower. `score(symbol, values, bar_close_ts_us=...)` keeps them here: a call with
`bar_close_ts_us` (a closed bar) appends the bar's features to the symbol's buffer (`BAR_BUFFER` bars);
every call scores the row with the tabular tower and, when the buffer holds a full window and the
degrade switch (`use_tabular_only`) is off, fuses it with the context of the symbol's last closed bar
(computed once per bar, in numpy). The returned `Score` says which tower answered, why, and whether the
model may be traded (`ModelRef.tradeable`: passed the full promotion gate). `LoadedModel.predict_up` is
the older row-only call: the tabular tower.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from pipelines.registry import ChampionSource, ModelRef

log = logging.getLogger(__name__)


Tower = Literal["tabular", "fused"]
BAR_BUFFER = 200  # closed bars kept per symbol (SPEC 7: the sequence tower reads the last 200)


@dataclass(frozen=True)
class LoadedModel:
    ref: ModelRef
    model: Any  # anything with predict_proba((1, n) float64) -> (1, 2); a FusedModel also fuses

    @property
    def fused(self) -> bool:
        return getattr(self.model, "tower_name", "tabular") == "fused"

    @property
    def tradeable(self) -> bool:
        return self.ref.tradeable

    def predict_up(self, values: list[float | None]) -> float:
        """P(up) for one feature row in `ref.feature_columns` order (None = missing): the tabular tower."""
        row = np.array([[np.nan if v is None else v for v in values]], dtype=np.float64)
        return float(self.model.predict_proba(row)[0, 1])


@dataclass(frozen=True)
class Score:
    """One scored row: the probability, the tower that produced it and whether it may be traded."""

    p_up: float
    tower: Tower
    tradeable: bool
    model_version: str
    reason: str  # why this tower ("fused", "degraded to the tabular tower", "sequence warming up: 12/200 bars")


@dataclass
class _Bars:
    values: deque[dict[str, float | None]] = field(default_factory=lambda: deque(maxlen=BAR_BUFFER))
    # each bar's scaled model inputs, computed once per (bar, model version); aligned with `values`
    scaled: deque[tuple[str, np.ndarray] | None] = field(default_factory=lambda: deque(maxlen=BAR_BUFFER))
    last_ts_us: int | None = None
    context: tuple[str, int, np.ndarray] | None = None  # (model version, bar ts, context) memo


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
        self._tabular_only = False
        self._bars: dict[str, _Bars] = {}

    # ---- towers ------------------------------------------------------------------------------------
    def use_tabular_only(self, flag: bool) -> None:
        """The degrade switch (SPEC 10: inference slower than 10 ms p99): True serves the tabular tower only."""
        if flag != self._tabular_only:
            log.warning("scorer: %s", "degraded to the tabular tower" if flag else "fused tower restored")
        self._tabular_only = flag

    @property
    def tabular_only(self) -> bool:
        return self._tabular_only

    @property
    def tower(self) -> Tower | None:
        """The tower the champion answers with now (None without a champion); a fused champion whose
        symbols are still warming up answers with the tabular tower per row (see `Score.tower`)."""
        champion = self._current
        if champion is None:
            return None
        return "fused" if champion.fused and not self._tabular_only else "tabular"

    @property
    def tradeable(self) -> bool:
        """Whether the champion passed the full promotion gate (False without a champion)."""
        champion = self._current
        return champion is not None and champion.tradeable

    def observe_bar(self, symbol: str, bar_ts_us: int, values: dict[str, float | None]) -> None:
        """Append a closed bar's features to the symbol's buffer (a repeated bar time replaces the last)."""
        bars = self._bars.setdefault(symbol, _Bars())
        if bars.last_ts_us is not None and bar_ts_us <= bars.last_ts_us:
            if bar_ts_us == bars.last_ts_us and bars.values:
                bars.values[-1] = dict(values)
                bars.scaled[-1] = None
                bars.context = None
            return
        bars.values.append(dict(values))
        bars.scaled.append(None)
        bars.last_ts_us = bar_ts_us
        bars.context = None

    def buffered(self, symbol: str) -> int:
        bars = self._bars.get(symbol)
        return len(bars.values) if bars is not None else 0

    def score(
        self, symbol: str, values: dict[str, float | None], *, bar_close_ts_us: int | None = None
    ) -> Score | None:
        """Score one symbol's feature row (None without a champion); see the module docstring."""
        champion = self.current()
        if champion is None:
            return None
        if bar_close_ts_us is not None:
            self.observe_bar(symbol, bar_close_ts_us, values)
        p_tab = champion.predict_up([values.get(c) for c in champion.ref.feature_columns])
        version = champion.ref.version
        if not champion.fused:
            return Score(p_tab, "tabular", champion.tradeable, version, "tabular model")
        if self._tabular_only:
            return Score(p_tab, "tabular", champion.tradeable, version, "degraded to the tabular tower")
        context, have = self._context(symbol, champion)
        if context is None:
            reason = f"sequence warming up: {have}/{champion.model.window} bars"
            return Score(p_tab, "tabular", champion.tradeable, version, reason)
        p = champion.model.fuse_one(p_tab, context, values.get("vol_regime"), values.get("trend_regime"), symbol)
        return Score(p, "fused", champion.tradeable, version, "fused")

    def _context(self, symbol: str, champion: LoadedModel) -> tuple[np.ndarray | None, int]:
        bars = self._bars.get(symbol)
        window = int(champion.model.window)
        have = len(bars.values) if bars is not None else 0
        if bars is None or have < window or bars.last_ts_us is None:
            return None, have
        memo = bars.context
        if memo is not None and memo[0] == champion.ref.version and memo[1] == bars.last_ts_us:
            return memo[2], have
        sequence, version = champion.model.sequence, champion.ref.version
        start = len(bars.values) - window
        for i in range(start, len(bars.values)):  # only bars not yet scaled for this model
            done = bars.scaled[i]
            if done is None or done[0] != version:
                bars.scaled[i] = (version, sequence.scale(bars.values[i]))
        inputs = np.stack([bars.scaled[i][1] for i in range(start, len(bars.values))])  # type: ignore[index]
        context = champion.model.context_one(inputs)
        bars.context = (champion.ref.version, bars.last_ts_us, context)
        return context, have

    # ---- champion ------------------------------------------------------------------------------------
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
