"""Avellaneda-Stoikov market making (SPEC 12) on the engine's strategy interface.

One symbol per strategy object. Every order goes through `ctx.submit` as a post-only LIMIT intent, so
the risk component's kill switches and deployment phases apply to each quote; a refusal leaves that
side unquoted until the next refresh (recorded with the reason), never retried in a loop.

- Market data: each book updates the rolling sigma (mid changes) and is the "mid before" for the next
  trades, which feed the (A, k) intensity fit (refitted every `refit_seconds`). The nightly table
  (`cfg.params_path`) seeds both as priors, so quoting starts sane and never stalls without trades.
- Quoting: `pipelines.trading.market_making.model.plan_quotes` (closed forms, tick rounding, never
  crossing, lot/min-notional sizes, inventory cap, rebalancing above 60% of the cap). A refresh
  happens when the mid moved past `refresh_mid_move`, every `refresh_seconds`, and after a fill; a
  quote whose price and size did not change is left resting (no churn).
- Inventory (`serving.strategies.mm_inventory`): q = base held - a target holding. On spot the base held
  is the venue's base balance (re-read every `balance_refresh_seconds`, own fills in between), not only
  the fills since start, and the target defaults to half the strategy's capital in base, so both sides
  quote from the first book; an ask is never larger than the base held. On a perpetual q is the position.
- The cap holds whatever fills: a new bid's headroom counts q AND every resting buy (a replaced quote
  stays counted until its cancel is confirmed), and the same for asks.
- A stale book (older than `max_book_age_seconds`: a dropped stream) or a crossed one pulls both
  quotes; the next fresh book resumes quoting at once.
- A quote that reduces the inventory (and is no larger than it) is marked `is_exit`, so a kill switch
  that stops new entries still lets the strategy work its inventory down; the other side is only
  sent while `ctx.entries_allowed` says yes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipelines.trading.instruments import Side
from pipelines.trading.market_making.calibration import params_for, read_mm_params
from pipelines.trading.market_making.config import MarketMakingConfig
from pipelines.trading.market_making.estimators import IntensityEstimator, VolatilityEstimator
from pipelines.trading.market_making.model import (
    Inventory,
    QuotePlan,
    Touch,
    needs_refresh,
    plan_quotes,
    time_to_horizon,
)
from pipelines.trading.orders import TERMINAL_STATES, OrderState
from serving.engine.events import BookEvent, SignalEvent, TradeEvent
from serving.engine.strategy import (
    ExecutionStyle,
    FillEvent,
    OrderIntent,
    OrderUpdate,
    StrategyContext,
)
from serving.strategies.mm_inventory import HeldInventory

log = logging.getLogger(__name__)

KIND = "market_making"


@dataclass(frozen=True)
class _Quote:
    order_id: str
    side: Side
    price: Decimal
    size: Decimal


class MarketMakingStrategy:
    """The Avellaneda-Stoikov quoter for `cfg.symbol` on `cfg.venue`."""

    def __init__(self, strategy_id: str, cfg: MarketMakingConfig, allocation: Decimal | None = None) -> None:
        self.strategy_id = strategy_id
        self.cfg = cfg
        self.inventory = HeldInventory(cfg, allocation)
        self.vol = VolatilityEstimator(cfg.estimator)
        self.intensity = IntensityEstimator(cfg.estimator)
        self.quotes: dict[Side, _Quote] = {}
        self.last_plan: QuotePlan | None = None
        self._book: BookEvent | None = None
        self._last_mid: float | None = None
        self._last_at: datetime | None = None
        self._force = True
        self._q = Decimal(0)  # base held - target at the last plan
        self.pulled_reason = "no book yet"

    # ---- engine callbacks ----------------------------------------------------------------------
    def on_start(self, ctx: StrategyContext) -> None:
        if self.cfg.params_path is not None:
            table = read_mm_params(self.cfg.params_path)
            fit, sigma = params_for(table, self.cfg.symbol, self.cfg.calibration_venue)
            if fit is not None:
                self.intensity.set_prior(fit)
            if sigma is not None:
                self.vol.set_prior(sigma)
        for order in ctx.open_orders(self.cfg.symbol, self.cfg.venue or None):
            ctx.cancel(order.order_id, "market making start: clean slate")
        ctx.record("start", f"A-S quoting {self.cfg.symbol}, gamma {self.cfg.gamma}, {self.cfg.horizon_mode} horizon")

    def on_book(self, ctx: StrategyContext, event: BookEvent) -> None:
        if not self._mine(event.symbol, event.venue):
            return
        self._book = event
        if event.ask > event.bid > 0:
            self.vol.observe(event.ts.timestamp(), float((event.bid + event.ask) / 2))
        self._quote(ctx, ctx.now())

    def on_trade(self, ctx: StrategyContext, event: TradeEvent) -> None:
        if not self._mine(event.symbol, event.venue) or event.aggressor is None or self._book is None:
            return
        mid = float((self._book.bid + self._book.ask) / 2)
        side = 1 if event.aggressor is Side.BUY else -1
        self.intensity.observe(event.ts.timestamp(), side, float(event.price), mid)

    def on_signal(self, ctx: StrategyContext, event: SignalEvent) -> None:
        return None  # the directional model's signals do not move these quotes

    def on_order_update(self, ctx: StrategyContext, update: OrderUpdate) -> None:
        quote = self.quotes.get(update.side)
        if quote is None or quote.order_id != update.order_id:
            return
        if update.state in TERMINAL_STATES:
            del self.quotes[update.side]
            if update.reason:
                ctx.record(f"quote {update.state}", update.reason, self.cfg.symbol)
            # Filled or cancelled by the venue: quote again now. Rejected: wait for the next refresh,
            # so a persistent rejection is retried every refresh_seconds, not on every book.
            self._force = self._force or update.state is not OrderState.REJECTED
        elif update.remaining < quote.size:
            self.quotes[update.side] = replace(quote, size=update.remaining)

    def on_fill(self, ctx: StrategyContext, fill: FillEvent) -> None:
        if self._mine(fill.symbol, fill.venue):
            self.inventory.on_fill(fill.side, fill.fill.size, fill.fill.ts)
            self._force = True  # the inventory moved: re-centre on the new reservation price
            self._quote(ctx, ctx.now())

    def on_timer(self, ctx: StrategyContext, now: datetime) -> None:
        self._quote(ctx, now)

    def on_stop(self, ctx: StrategyContext) -> None:
        self._pull(ctx, "strategy stopping")

    def snapshot(self) -> dict[str, Any]:
        """What a status endpoint or Prometheus gauge shows: the last plan and the live quotes."""
        plan = self.last_plan
        return {
            "symbol": self.cfg.symbol,
            "quoting": bool(self.quotes),
            "pulled_reason": self.pulled_reason,
            "q_clips": plan.q if plan else None,
            "reservation": plan.reservation if plan else None,
            "spread": plan.spread if plan else None,
            "rebalancing": plan.rebalancing if plan else False,
            "quotes": {side.value: {"price": str(q.price), "size": str(q.size)} for side, q in self.quotes.items()},
            "k": self.intensity.current_fit.k,
            "A": self.intensity.current_fit.A,
            "k_source": self.intensity.current_fit.source,
            **self.inventory.snapshot(),
        }

    # ---- quoting -------------------------------------------------------------------------------
    def _mine(self, symbol: str, venue: str) -> bool:
        return symbol == self.cfg.symbol and venue == self.cfg.venue

    def _book_problem(self, now: datetime) -> str | None:
        book = self._book
        if book is None:
            return "no book yet"
        age = (now - book.ts).total_seconds()
        if age > self.cfg.max_book_age_seconds:
            return f"book is {age:.1f} s old (> {self.cfg.max_book_age_seconds} s): stream stale"
        if book.ask <= book.bid:
            return f"crossed book {book.bid} >= {book.ask}"
        return None

    def _pull(self, ctx: StrategyContext, reason: str) -> None:
        for quote in list(self.quotes.values()):
            ctx.cancel(quote.order_id, reason)
        if self.quotes or not self.pulled_reason:
            ctx.record("pull quotes", reason, self.cfg.symbol)
        self.quotes.clear()
        self.pulled_reason = reason
        self._force = True

    def _quote(self, ctx: StrategyContext, now: datetime) -> None:
        problem = self._book_problem(now)
        if problem is not None:
            self._pull(ctx, problem)
            return
        assert self._book is not None
        touch = Touch(self._book.bid, self._book.ask)
        mid = float(touch.mid)
        self._force = self._force or self._entry_quote_resting_while_blocked(ctx)
        if not (self._force or needs_refresh(self._last_mid, self._last_at, mid, now, self.cfg)):
            return
        self._force = False
        self._last_mid, self._last_at = mid, now
        self.pulled_reason = ""
        self._requote(ctx, now, touch)

    def _plans(self, ctx: StrategyContext, now: datetime, touch: Touch) -> tuple[QuotePlan, QuotePlan]:
        """(plan if the current quotes stay, plan if they are replaced: their size still resting)."""
        market = ctx.instrument(self.cfg.symbol, self.cfg.venue)
        held = self.inventory.held(ctx, now)
        target = self.inventory.target_for(ctx, market, touch.mid)
        t = now.timestamp()
        fit = self.intensity.current(t)
        kwargs: dict[str, Any] = {
            "sigma": self.vol.sigma(t),
            "k": fit.k,
            "tau": time_to_horizon(now, self.cfg.horizon_mode, self.cfg.horizon_seconds),
            "cfg": self.cfg,
        }
        resting = {Side.BUY: Decimal(0), Side.SELL: Decimal(0)}
        current = {q.order_id for q in self.quotes.values()}
        for order in ctx.open_orders(self.cfg.symbol, self.cfg.venue or None):
            if order.order_id not in current:
                resting[order.side] += order.remaining
        self._q = held - target
        keep = Inventory(held, resting[Side.BUY], resting[Side.SELL], target)
        own = {side: quote.size for side, quote in self.quotes.items()}
        replace_all = Inventory(
            held,
            resting[Side.BUY] + own.get(Side.BUY, Decimal(0)),
            resting[Side.SELL] + own.get(Side.SELL, Decimal(0)),
            target,
        )
        return plan_quotes(market, touch, keep, **kwargs), plan_quotes(market, touch, replace_all, **kwargs)

    def _requote(self, ctx: StrategyContext, now: datetime, touch: Touch) -> None:
        plan_keep, plan_new = self._plans(ctx, now, touch)
        self.last_plan = plan_keep
        position = ctx.position(self.cfg.symbol, self.cfg.venue)
        q = self._q
        allowed, why = ctx.entries_allowed(self.cfg.symbol)
        for side in Side:
            price, size = _side(plan_keep, side)
            current = self.quotes.get(side)
            blocked = not allowed and not _reduces(side, size, position, q)
            if current is not None and not blocked and price == current.price and size == current.size:
                continue  # unchanged: leave it resting
            if current is not None:
                ctx.cancel(current.order_id, "re-quote" if not blocked else f"entries not allowed: {why}")
                del self.quotes[side]
            price, size = _side(plan_new, side)
            if price is None or size is None:
                continue
            if not allowed and not _reduces(side, size, position, q):
                ctx.record("no quote", f"{side} side: entries not allowed: {why}", self.cfg.symbol)
                continue
            self._submit(ctx, side, price, size, _reduces(side, size, position, q))
        if plan_keep.reasons:
            ctx.record("quote", "; ".join(plan_keep.reasons), self.cfg.symbol)

    def _entry_quote_resting_while_blocked(self, ctx: StrategyContext) -> bool:
        """A quote that adds inventory is resting while the risk component refuses entries."""
        if not self.quotes or ctx.entries_allowed(self.cfg.symbol)[0]:
            return False
        position = ctx.position(self.cfg.symbol, self.cfg.venue)
        return any(not _reduces(quote.side, quote.size, position, self._q) for quote in self.quotes.values())

    def _submit(self, ctx: StrategyContext, side: Side, price: Decimal, size: Decimal, reduces: bool) -> None:
        intent = OrderIntent(
            symbol=self.cfg.symbol,
            side=side,
            size=size,
            price=price,
            style=ExecutionStyle.LIMIT,
            post_only=True,
            is_exit=reduces,
            venue=self.cfg.venue,
            tag=f"mm-{'bid' if side is Side.BUY else 'ask'}",
        )
        result = ctx.submit(intent)
        if not result.accepted or result.order_id is None:
            ctx.record("quote refused", f"{side} {size} @ {price}: {result.reason}", self.cfg.symbol)
            return
        self.quotes[side] = _Quote(result.order_id, side, price, result.size or size)


def _reduces(side: Side, size: Decimal | None, position: Decimal, q: Decimal) -> bool:
    """A quote that can only bring q (held - target) towards zero AND that the engine can book as an exit
    of this strategy's position (an exit for the risk component; spot books a stray exit fill nowhere)."""
    if size is None:
        return False
    if side is Side.SELL:
        return position >= size and q >= size
    return -position >= size and -q >= size


def _side(plan: QuotePlan, side: Side) -> tuple[Decimal | None, Decimal | None]:
    return (plan.bid_price, plan.bid_size) if side is Side.BUY else (plan.ask_price, plan.ask_size)


def build_market_making(
    strategy_id: str, cfg: MarketMakingConfig | dict[str, Any], allocation: Decimal | None = None
) -> MarketMakingStrategy:
    """Factory for the engine's strategy registry (kind "market_making"); `cfg` may be a mapping;
    `allocation` (the entry's capital) sizes spot's default target holding."""
    config = cfg if isinstance(cfg, MarketMakingConfig) else MarketMakingConfig.model_validate(cfg)
    return MarketMakingStrategy(strategy_id, config, allocation)
