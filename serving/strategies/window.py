"""Directional quarter-Kelly trading of the 5-minute BTC window markets (SPEC 9 / 13b), a `Strategy`.

Inputs (through the engine): the window model's probability as a `SignalEvent` whose `symbol` is
`signal_symbol` (default `btc-updown-5m`; `p_up` = P(window closes >= its open)); the books of the
current window's outcome tokens (symbols = ccxt outcome handles, `outcome_handle(start, Up|Down)`, on
venue `venue`); the reference BTC prints (`TradeEvent`s of `reference_symbol`) that settle the windows.

Decision: `pipelines.trading.window.decide_entry` (edge = p - ask, quarter Kelly capped, seed phase 1
bankroll / per-trade / daily-loss caps, no entry in the last `min_seconds_left`), at most
`entries_per_window` entries. The order is an IOC limit at the ask (a taker that never pays beyond it),
sent through `ctx.submit`: risk can shrink or refuse it (kill switches, phases); a refusal is recorded
and the window is not retried until `retry_after_s` has passed.

Settlement: positions are held to resolution. When the first reference print at or after a window's end
arrives, the window resolves with the venue's rule (close >= open is Up; open = the last print before
the start, close = the last print before the end), the winning side is credited 1 per token and the
window's PnL goes into the daily figure that caps later stakes and is reported through
`ctx.window_settled` (store row, Prometheus; `serving.strategies.window_settle`). Persisted through
`ctx.save_state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipelines.domain.window_market import Outcome, outcome_handle, seconds_left, window_start_s
from pipelines.trading.instruments import Side
from pipelines.trading.window import WindowTradingConfig, decide_entry
from pipelines.trading.window_fees import peak_fee_rate
from serving.engine.events import BookEvent, SignalEvent, TradeEvent
from serving.engine.strategy import (
    ExecutionStyle,
    FillEvent,
    OrderIntent,
    OrderUpdate,
    StrategyContext,
    TimeInForce,
)
from serving.strategies.window_settle import WindowBook, WindowPosition

__all__ = ["WindowDirectionalConfig", "WindowDirectionalStrategy", "WindowPosition", "build_window_directional"]

TAG = "window-entry"


class WindowDirectionalConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    trading: WindowTradingConfig = WindowTradingConfig()
    venue: str = "polymarket"
    signal_symbol: str = "btc-updown-5m"
    reference_symbol: str = "BTC/USDT"
    reference_venue: str | None = None  # None: prints of any venue
    max_signal_age_s: float = Field(default=15.0, gt=0)
    max_book_age_s: float = Field(default=5.0, gt=0)
    retry_after_s: float = Field(default=5.0, ge=0)


class WindowDirectionalStrategy:
    def __init__(self, strategy_id: str, cfg: WindowDirectionalConfig) -> None:
        self.strategy_id = strategy_id
        self.cfg = cfg
        self.signal: SignalEvent | None = None
        self.book = WindowBook(cfg.trading.window_s, cfg.reference_symbol, cfg.reference_venue, cfg.venue)
        self.positions = self.book.positions
        self.pnl_day = ""
        self.pnl_today = Decimal(0)
        self.refused_at: dict[int, datetime] = {}

    # ---- lifecycle -----------------------------------------------------------------------------
    def on_start(self, ctx: StrategyContext) -> None:
        state = ctx.state()
        self.pnl_day, self.pnl_today = state.get("pnl_day", ""), Decimal(state.get("pnl_today", "0"))
        self.book.load(state.get("positions", "{}"))

    def on_stop(self, ctx: StrategyContext) -> None:
        self._save(ctx)

    def _save(self, ctx: StrategyContext) -> None:
        ctx.save_state({"pnl_day": self.pnl_day, "pnl_today": str(self.pnl_today), "positions": self.book.dump()})

    # ---- events ----------------------------------------------------------------------------------
    def on_signal(self, ctx: StrategyContext, event: SignalEvent) -> None:
        if event.symbol == self.cfg.signal_symbol:
            self.signal = event
            self._maybe_enter(ctx)

    def on_book(self, ctx: StrategyContext, event: BookEvent) -> None:
        if event.venue == self.cfg.venue:
            self._maybe_enter(ctx)

    def on_trade(self, ctx: StrategyContext, event: TradeEvent) -> None:
        if not self.book.is_reference(event):
            return
        due = any(s + self.cfg.trading.window_s <= event.ts.timestamp() for s in self.positions)
        for result in self.book.on_print(ctx, event):
            self._roll_day(event.ts)
            self.pnl_today += result.pnl
        if due:
            self._save(ctx)

    def on_timer(self, ctx: StrategyContext, now: datetime) -> None:
        self._maybe_enter(ctx)

    def on_order_update(self, ctx: StrategyContext, update: OrderUpdate) -> None:
        if update.tag == TAG and update.reason:
            ctx.record("order", f"{update.symbol} {update.state}: {update.reason}", update.symbol)

    def on_fill(self, ctx: StrategyContext, fill: FillEvent) -> None:
        if fill.tag != TAG:
            return
        self.book.book_fill(fill.symbol, fill.fill)
        self._save(ctx)

    # ---- decisions -------------------------------------------------------------------------------
    def _fresh(self, ctx: StrategyContext, book: BookEvent | None) -> Decimal | None:
        if book is None or (ctx.now() - book.ts).total_seconds() > self.cfg.max_book_age_s:
            return None
        return book.ask if book.ask_size > 0 else None

    def _maybe_enter(self, ctx: StrategyContext) -> None:
        now, cfg = ctx.now(), self.cfg.trading
        start = window_start_s(now, cfg.window_s)
        signal = self.signal
        if signal is None or not signal.tradeable or (now - signal.ts).total_seconds() > self.cfg.max_signal_age_s:
            return
        if self.book.ended(start):  # settled already (the reference printed past its end)
            return
        position = self.positions.get(start)
        if position is not None and position.entries >= cfg.entries_per_window:
            return
        refused = self.refused_at.get(start)
        if refused is not None and (now - refused).total_seconds() < self.cfg.retry_after_s:
            return
        up, down = outcome_handle(start, Outcome.UP), outcome_handle(start, Outcome.DOWN)
        asks = {o: self._fresh(ctx, ctx.book(h, self.cfg.venue)) for o, h in ((Outcome.UP, up), (Outcome.DOWN, down))}
        if asks[Outcome.UP] is None and asks[Outcome.DOWN] is None:
            return
        market = ctx.instrument(up, self.cfg.venue)
        self._roll_day(now)
        decision = decide_entry(
            signal.p_up,
            asks[Outcome.UP],
            asks[Outcome.DOWN],
            seconds_left(now, start, cfg.window_s),
            cfg,
            pnl_today=self.pnl_today,
            min_size=market.min_size,
            fee_rate=peak_fee_rate(market.taker_fee, cfg.fee_exponent),
        )
        if decision.entry is None:
            return
        self._submit(ctx, start, decision.entry.outcome, decision.entry.price, decision.entry.size, decision.reason)

    def _submit(
        self, ctx: StrategyContext, start: int, outcome: Outcome, price: Decimal, size: Decimal, why: str
    ) -> None:
        symbol = outcome_handle(start, outcome)
        intent = OrderIntent(
            symbol=symbol,
            side=Side.BUY,
            size=size,
            price=price,
            style=ExecutionStyle.LIMIT,
            post_only=False,
            time_in_force=TimeInForce.IOC,
            venue=self.cfg.venue,
            tag=TAG,
        )
        result = ctx.submit(intent)
        if not result.accepted:
            self.refused_at[start] = ctx.now()
            ctx.record("refused", f"{why}; risk refused: {result.reason}", symbol)
            return
        self.positions.setdefault(start, WindowPosition()).entries += 1
        ctx.record("enter", why, symbol)
        self._save(ctx)

    # ---- settlement ----------------------------------------------------------------------------
    def _roll_day(self, now: datetime) -> None:
        day = now.date().isoformat()
        if day != self.pnl_day:
            self.pnl_day, self.pnl_today = day, Decimal(0)


def build_window_directional(
    strategy_id: str, cfg: WindowDirectionalConfig | Mapping[str, Any] | None = None
) -> WindowDirectionalStrategy:
    """The factory the engine's strategy registry calls."""
    config = cfg if isinstance(cfg, WindowDirectionalConfig) else WindowDirectionalConfig.model_validate(cfg or {})
    return WindowDirectionalStrategy(strategy_id, config)
