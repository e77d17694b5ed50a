"""The engine's strategies on /ws/signals: market-maker quotes (`quote`) and window signals (`window`).

`StrategyFeed` is a listener of the engine the serving lifespan wires to the signal hub: on its own
thread it looks at the strategies every `interval_s` (under the engine's lock, a few attribute reads:
nothing runs on the engine's thread) and publishes a message when something changed:

- a market maker (a strategy whose `snapshot()` has `quotes` and `spread`): its live quotes, inventory,
  reservation price and spread changed -> `QuoteMessage`;
- a window-market strategy (a `signal` attribute and a `cfg.signal_symbol`): a new window signal
  arrived -> `WindowMessage` (the window, p_up, seconds left, the position in that window, PnL today).

`publish` is `SignalHub.publish` (thread-safe); `check()` does one pass (tests call it directly).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from pipelines.domain.window_market import DEFAULT_WINDOW_S, seconds_left, window_start_s
from serving.messages import QuoteMessage, WindowMessage

log = logging.getLogger("alphatide.serving")


class StrategyFeed:
    def __init__(
        self,
        engine: Any,
        publish: Callable[[BaseModel], None],
        *,
        interval_s: float = 0.25,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine, self.publish, self.interval_s = engine, publish, interval_s
        self.clock = clock or (lambda: datetime.now(UTC))
        self._last: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reset(self) -> None:
        """Publish every strategy's current state on the next pass, changed or not."""
        self._last.clear()

    def check(self) -> list[BaseModel]:
        """One pass: the messages of what changed since the last pass (also published)."""
        with getattr(self.engine, "_lock", contextlib.nullcontext()):
            messages = [m for sid, s in list(self.engine.strategies.items()) if (m := self._message(sid, s))]
        for message in messages:
            self.publish(message)
        return messages

    def _message(self, sid: str, strategy: Any) -> BaseModel | None:
        snapshot = strategy.snapshot() if hasattr(strategy, "snapshot") else None
        if isinstance(snapshot, dict) and "quotes" in snapshot and "spread" in snapshot:
            return self._quote(sid, snapshot)
        cfg = getattr(strategy, "cfg", None)
        if hasattr(strategy, "signal") and hasattr(cfg, "signal_symbol"):
            return self._window(sid, strategy)
        return None

    def _quote(self, sid: str, snap: dict[str, Any]) -> QuoteMessage | None:
        key = (snap["quotes"], snap.get("q_clips"), snap.get("reservation"), snap.get("spread"), snap.get("quoting"))
        if self._last.get(sid) == key:
            return None
        self._last[sid] = key
        bid, ask = snap["quotes"].get("buy", {}), snap["quotes"].get("sell", {})
        return QuoteMessage(
            strategy_id=sid,
            symbol=str(snap.get("symbol", "")),
            bid=bid.get("price"),
            bid_size=bid.get("size"),
            ask=ask.get("price"),
            ask_size=ask.get("size"),
            inventory_clips=_float(snap.get("q_clips")),
            reservation_price=_float(snap.get("reservation")),
            spread=_float(snap.get("spread")),
            quoting=bool(snap.get("quoting")),
            pulled_reason=snap.get("pulled_reason"),
            at=self.clock(),
        )

    def _window(self, sid: str, strategy: Any) -> WindowMessage | None:
        signal = strategy.signal
        if signal is None or self._last.get(sid) is signal:
            return None
        self._last[sid] = signal
        window_s = _window_s(strategy.cfg)
        start = window_start_s(signal.ts, window_s)
        position = getattr(strategy, "positions", {}).get(start)
        pnl = getattr(strategy, "pnl_today", None)
        return WindowMessage(
            strategy_id=sid,
            symbol=signal.symbol,
            window_start=datetime.fromtimestamp(start, UTC),
            window_s=window_s,
            seconds_left=seconds_left(signal.ts, start, window_s),
            p_up=signal.p_up,
            tradeable=signal.tradeable,
            position_cost=str(position.cost) if position is not None else None,
            position_shares={str(o.value if hasattr(o, "value") else o): str(n) for o, n in position.shares.items()}
            if position is not None
            else {},
            pnl_today=str(pnl) if pnl is not None else None,
            signal_time=signal.ts,
            published_at=self.clock(),
        )

    def start(self) -> StrategyFeed:
        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                try:
                    self.check()
                except Exception:  # a strategy's odd state must not end the feed
                    log.exception("strategy feed pass failed")

        self._thread = threading.Thread(target=loop, name="alphatide-strategy-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _window_s(cfg: Any) -> int:
    for holder in (cfg, getattr(cfg, "trading", None), getattr(cfg, "mm", None)):
        value = getattr(holder, "window_s", None)
        if isinstance(value, int):
            return value
    return DEFAULT_WINDOW_S
