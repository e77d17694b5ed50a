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
window's PnL goes into the daily figure that caps later stakes. Persisted through `ctx.save_state`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipelines.domain.window_market import Outcome, outcome_handle, seconds_left, window_start_s
from pipelines.trading.instruments import Side
from pipelines.trading.window import WindowTradingConfig, decide_entry, resolve, settle
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


@dataclass
class WindowPosition:
    shares: dict[Outcome, Decimal] = field(default_factory=dict)
    cost: Decimal = Decimal(0)
    entries: int = 0


class WindowDirectionalStrategy:
    def __init__(self, strategy_id: str, cfg: WindowDirectionalConfig) -> None:
        self.strategy_id = strategy_id
        self.cfg = cfg
        self.signal: SignalEvent | None = None
        self.positions: dict[int, WindowPosition] = {}
        self.last_price: tuple[datetime, Decimal] | None = None
        self.window_open: dict[int, Decimal] = {}
        self.pnl_day = ""
        self.pnl_today = Decimal(0)
        self.refused_at: dict[int, datetime] = {}

    # ---- lifecycle -----------------------------------------------------------------------------
    def on_start(self, ctx: StrategyContext) -> None:
        state = ctx.state()
        self.pnl_day, self.pnl_today = state.get("pnl_day", ""), Decimal(state.get("pnl_today", "0"))
        for start, raw in json.loads(state.get("positions", "{}")).items():
            self.positions[int(start)] = WindowPosition(
                {Outcome(k): Decimal(v) for k, v in raw["shares"].items()}, Decimal(raw["cost"]), int(raw["entries"])
            )

    def on_stop(self, ctx: StrategyContext) -> None:
        self._save(ctx)

    def _save(self, ctx: StrategyContext) -> None:
        positions = {
            str(s): {
                "shares": {k.value: str(v) for k, v in p.shares.items()},
                "cost": str(p.cost),
                "entries": p.entries,
            }
            for s, p in self.positions.items()
        }
        ctx.save_state({"pnl_day": self.pnl_day, "pnl_today": str(self.pnl_today), "positions": json.dumps(positions)})

    # ---- events ----------------------------------------------------------------------------------
    def on_signal(self, ctx: StrategyContext, event: SignalEvent) -> None:
        if event.symbol == self.cfg.signal_symbol:
            self.signal = event
            self._maybe_enter(ctx)

    def on_book(self, ctx: StrategyContext, event: BookEvent) -> None:
        if event.venue == self.cfg.venue:
            self._maybe_enter(ctx)

    def on_trade(self, ctx: StrategyContext, event: TradeEvent) -> None:
        if event.symbol != self.cfg.reference_symbol:
            return
        if self.cfg.reference_venue is not None and event.venue != self.cfg.reference_venue:
            return
        window_s = self.cfg.trading.window_s
        start = window_start_s(event.ts, window_s)
        last = self.last_price
        if start not in self.window_open and last is not None and last[0].timestamp() < start:
            # the first print of a window: the window's open is the last price before its start
            self.window_open[start] = last[1]
        self._settle_due(ctx, event.ts)
        self.last_price = (event.ts, event.price)

    def on_timer(self, ctx: StrategyContext, now: datetime) -> None:
        self._maybe_enter(ctx)

    def on_order_update(self, ctx: StrategyContext, update: OrderUpdate) -> None:
        if update.tag == TAG and update.reason:
            ctx.record("order", f"{update.symbol} {update.state}: {update.reason}", update.symbol)

    def on_fill(self, ctx: StrategyContext, fill: FillEvent) -> None:
        if fill.tag != TAG:
            return
        start, outcome = _parse_handle(fill.symbol)
        position = self.positions.setdefault(start, WindowPosition())
        # a taker buy's fee is withheld in tokens: fee (quote) / price tokens fewer are credited
        credited = fill.fill.size - (fill.fill.fee / fill.fill.price if fill.fill.price > 0 else Decimal(0))
        position.shares[outcome] = position.shares.get(outcome, Decimal(0)) + credited
        position.cost += fill.fill.size * fill.fill.price
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

    def _settle_due(self, ctx: StrategyContext, now: datetime) -> None:
        window_s = self.cfg.trading.window_s
        for start in sorted(s for s in self.positions if s + window_s <= now.timestamp()):
            opened, last = self.window_open.get(start), self.last_price
            position = self.positions.pop(start)
            if opened is None or last is None or not start <= last[0].timestamp() < start + window_s:
                # the venue still settles it; without reference prints around it we do not guess the side
                ctx.alert("window_unsettled", f"window {start}: no reference prints around it; pnl not booked")
                ctx.record("unsettled", f"window {start}: cost {position.cost}, shares {position.shares}")
                continue
            winner = resolve(float(opened), float(last[1]))
            payout, pnl = settle(position.shares, position.cost, winner)
            self._roll_day(now)
            self.pnl_today += pnl
            ctx.record("settle", f"window {start} resolved {winner.value}: payout {payout}, pnl {pnl}")
        for start in [s for s in self.window_open if s + 2 * window_s < now.timestamp()]:
            del self.window_open[start]
        self._save(ctx)


def _parse_handle(handle: str) -> tuple[int, Outcome]:
    market, _, label = handle.partition(":")
    return int(market.rsplit("_", 1)[1]), Outcome(label.capitalize())


def build_window_directional(
    strategy_id: str, cfg: WindowDirectionalConfig | Mapping[str, Any] | None = None
) -> WindowDirectionalStrategy:
    """The factory the engine's strategy registry calls."""
    config = cfg if isinstance(cfg, WindowDirectionalConfig) else WindowDirectionalConfig.model_validate(cfg or {})
    return WindowDirectionalStrategy(strategy_id, config)
