"""The engine's persistence component: write-ahead order records, counters, strategy state, error count.

Every write goes through here so that a store failure is counted once (the store-errors kill switch
reads `error_count`) and never crashes the event loop. Orders are written *before* they are sent
(`save_order` returns False when the write failed, and the caller must not send). Strategy state lives
under `strategy:<id>` keys; account counters under their own keys (see `TradingEngine`).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pipelines.trading.orders import Order
from serving.engine.persistence.schema import StoreError
from serving.engine.persistence.store import TradingStore

log = logging.getLogger("alphatide.engine.persistence")


@dataclass
class TrackedOrder:
    """An order we know, with the strategy and intent it belongs to."""

    order: Order
    work_id: str  # the working order's id, or the order's own id for a LIMIT intent
    purpose: str  # "entry" or "exit"
    strategy_id: str
    venue: str = ""
    tag: str = ""

    @property
    def order_id(self) -> str:
        return self.work_id


class Persistence:
    """See the module docstring. `store` may be replaced at runtime (tests swap it)."""

    def __init__(self, store: TradingStore, error_window_s: float) -> None:
        self.store = store
        self._window = timedelta(seconds=error_window_s)
        self._errors: deque[datetime] = deque()
        self._saved: dict[str, str] = {}

    # ---- errors -------------------------------------------------------------------------------
    def error(self, now: datetime, exc: Exception) -> None:
        log.error("trading store error: %s", exc)
        self._errors.append(now)

    def error_count(self, now: datetime) -> int:
        while self._errors and self._errors[0] < now - self._window:
            self._errors.popleft()
        return len(self._errors)

    def attempt(self, fn: Callable[[], Any], now: datetime) -> bool:
        try:
            fn()
            return True
        except StoreError as exc:
            self.error(now, exc)
            return False

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self.store.batch():
            yield

    # ---- orders -------------------------------------------------------------------------------
    def save_order(self, tracked: TrackedOrder, now: datetime, *, raise_errors: bool = False) -> bool:
        try:
            self.store.save_order(
                tracked.order,
                tracked.work_id,
                tracked.purpose,
                now,
                strategy_id=tracked.strategy_id,
                venue=tracked.venue,
                tag=tracked.tag,
            )
            return True
        except StoreError as exc:
            if raise_errors:
                raise
            self.error(now, exc)
            return False

    # ---- key/value state ------------------------------------------------------------------------
    def put(self, key: str, value: Any, now: datetime, *, only_if_changed: bool = False) -> None:
        text = json.dumps(value, sort_keys=True)
        if only_if_changed and self._saved.get(key) == text:
            return
        if self.attempt(lambda: self.store.put_state(key, value, now), now):
            self._saved[key] = text

    def put_many(self, values: Mapping[str, Any], now: datetime, *, raise_errors: bool = False) -> None:
        try:
            with self.store.batch():
                for key, value in values.items():
                    self.store.put_state(key, value, now)
        except StoreError as exc:
            if raise_errors:
                raise
            self.error(now, exc)

    def get(self, key: str, default: Any = None) -> Any:
        return self.store.get_state(key, default)

    def strategy_state(self, strategy_id: str) -> dict[str, str]:
        value = self.store.get_state(f"strategy:{strategy_id}", {})
        return {str(k): str(v) for k, v in value.items()}

    def save_strategy_state(self, strategy_id: str, values: Mapping[str, str], now: datetime) -> None:
        merged = self.strategy_state(strategy_id) | {str(k): str(v) for k, v in values.items()}
        self.put(f"strategy:{strategy_id}", merged, now)

    def realized_by_strategy(self) -> dict[str, Decimal]:
        """Cumulative realized PnL per strategy, from every closed trade in the store."""
        totals: dict[str, Decimal] = {}
        for trade in self.store.closed_trades(limit=1_000_000):
            totals[trade.strategy_id] = totals.get(trade.strategy_id, Decimal(0)) + trade.net_pnl
        return totals

    def alert(self, now: datetime, kind: str, message: str) -> None:
        self.attempt(lambda: self.store.add_alert(now, kind, message), now)
