"""Market making on the 5-minute BTC window markets around the model's fair value (SPEC 12 variant).

Quotes come from `pipelines.trading.window_mm.window_quotes`: fair value = the window model's P(Up)
(a `SignalEvent` with `symbol == signal_symbol`), a 4-cent spread, 1 cent of skew per `skew_unit`
shares of net inventory (Up minus Down tokens of the current window, read from the portfolio through
`ctx.position`), at most 200 shares per side, inside [0.01, 0.99] on the market's tick. The Up offer is
sent as a bid on the Down token at 1 - ask (same exposure, no Up tokens needed).

Every quote is a post-only GTC LIMIT intent through `ctx.submit` (risk may refuse: kill switches,
phases; a refusal is recorded and retried no sooner than `retry_after_s`). A quote whose price moved
by at least `requote_threshold` or whose size changed is cancelled and replaced. All quotes are
cancelled `pull_seconds` before the window resolves, when entries are not allowed, when the signal
is stale or untradeable, and on stop. Quotes of earlier windows are cancelled when a window turns.

Fills are kept per window (`serving.strategies.window_settle.WindowBook`) and settled at resolution from
the reference prints (`reference_symbol`), like the directional strategy: per-window PnL in the store
and in Prometheus (`ctx.window_settled`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipelines.domain.window_market import Outcome, outcome_handle, seconds_left, window_start_s
from pipelines.trading.instruments import Side
from pipelines.trading.window import WindowMMConfig
from pipelines.trading.window_mm import Quote, window_quotes
from serving.engine.events import BookEvent, SignalEvent, TradeEvent
from serving.engine.strategy import ExecutionStyle, FillEvent, OpenOrderView, OrderIntent, OrderUpdate, StrategyContext
from serving.strategies.window_settle import WindowBook

TAGS = {Outcome.UP: "window-mm-up-bid", Outcome.DOWN: "window-mm-down-bid"}


class WindowMakerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mm: WindowMMConfig = WindowMMConfig()
    venue: str = "polymarket"
    signal_symbol: str = "btc-updown-5m"
    max_signal_age_s: float = Field(default=15.0, gt=0)
    retry_after_s: float = Field(default=2.0, ge=0)
    reference_symbol: str = "BTC/USDT"  # the prints that resolve the windows (settlement, per-window PnL)
    reference_venue: str | None = None


class WindowMarketMaker:
    def __init__(self, strategy_id: str, cfg: WindowMakerConfig) -> None:
        self.strategy_id = strategy_id
        self.cfg = cfg
        self.signal: SignalEvent | None = None
        self.refused_at: datetime | None = None
        self.book = WindowBook(cfg.mm.window_s, cfg.reference_symbol, cfg.reference_venue, cfg.venue)

    def on_start(self, ctx: StrategyContext) -> None:
        self.book.load(ctx.state().get("positions", "{}"))
        self._refresh(ctx)

    def on_stop(self, ctx: StrategyContext) -> None:
        self._cancel(ctx, self._own(ctx), "strategy stopped")
        ctx.save_state({"positions": self.book.dump()})

    def on_signal(self, ctx: StrategyContext, event: SignalEvent) -> None:
        if event.symbol == self.cfg.signal_symbol:
            self.signal = event
            self._refresh(ctx)

    def on_book(self, ctx: StrategyContext, event: BookEvent) -> None:
        if event.venue == self.cfg.venue:
            self._refresh(ctx)

    def on_trade(self, ctx: StrategyContext, event: TradeEvent) -> None:
        if self.book.is_reference(event) and self.book.on_print(ctx, event):
            ctx.save_state({"positions": self.book.dump()})

    def on_order_update(self, ctx: StrategyContext, update: OrderUpdate) -> None:
        if update.tag in TAGS.values() and update.reason:
            ctx.record("quote", f"{update.state}: {update.reason}", update.symbol)

    def on_fill(self, ctx: StrategyContext, fill: FillEvent) -> None:
        if fill.tag in TAGS.values():
            self.book.book_fill(fill.symbol, fill.fill)  # settled at resolution (per-window PnL)
            ctx.save_state({"positions": self.book.dump()})
            self._refresh(ctx)  # inventory moved: re-skew at once

    def on_timer(self, ctx: StrategyContext, now: datetime) -> None:
        self._refresh(ctx)

    # ---- quoting -------------------------------------------------------------------------------
    def _own(self, ctx: StrategyContext) -> list[OpenOrderView]:
        return [o for o in ctx.open_orders(venue=self.cfg.venue) if o.tag in TAGS.values()]

    def _cancel(self, ctx: StrategyContext, orders: list[OpenOrderView], reason: str) -> None:
        for order in orders:
            ctx.cancel(order.order_id, reason)

    def _pull_reason(self, ctx: StrategyContext, now: datetime, left: float) -> str | None:
        signal = self.signal
        if signal is None or not signal.tradeable or (now - signal.ts).total_seconds() > self.cfg.max_signal_age_s:
            return "no fresh tradeable signal"
        if left <= self.cfg.mm.pull_seconds:
            return f"{left:.0f}s before resolution: quotes pulled"
        if self.book.ended(window_start_s(now, self.cfg.mm.window_s)):
            return "the reference printed past the window's end: settled, quotes pulled"
        allowed, why = ctx.entries_allowed()
        return None if allowed else f"entries not allowed: {why}"

    def _refresh(self, ctx: StrategyContext) -> None:
        now, mm = ctx.now(), self.cfg.mm
        start = window_start_s(now, mm.window_s)
        handles = {o: outcome_handle(start, o) for o in Outcome}
        own = self._own(ctx)
        stale = [o for o in own if o.symbol not in handles.values()]
        self._cancel(ctx, stale, "window turned")
        current = [o for o in own if o.symbol in handles.values()]
        left = seconds_left(now, start, mm.window_s)
        reason = self._pull_reason(ctx, now, left)
        if reason is not None:
            if current:
                self._cancel(ctx, current, reason)
                ctx.record("pull", reason)
            return
        assert self.signal is not None
        market = ctx.instrument(handles[Outcome.UP], self.cfg.venue)
        inventory = ctx.position(handles[Outcome.UP], self.cfg.venue) - ctx.position(
            handles[Outcome.DOWN], self.cfg.venue
        )
        quotes = window_quotes(
            self.signal.p_up, inventory, left, market.tick_size, mm, size_step=market.lot_size, min_size=market.min_size
        )
        if quotes is None:
            self._cancel(ctx, current, "no quotes")
            return
        for outcome, quote in ((Outcome.UP, quotes.up_bid), (Outcome.DOWN, quotes.down_bid)):
            resting = [o for o in current if o.tag == TAGS[outcome]]
            self._keep_or_replace(ctx, handles[outcome], outcome, quote, resting)

    def _keep_or_replace(
        self, ctx: StrategyContext, symbol: str, outcome: Outcome, quote: Quote | None, resting: list[OpenOrderView]
    ) -> None:
        threshold = self.cfg.mm.requote_threshold
        keep = [
            o
            for o in resting
            if quote is not None
            and o.price is not None
            and abs(o.price - quote.price) < threshold
            and o.remaining == quote.size
        ][:1]
        self._cancel(ctx, [o for o in resting if o not in keep], "requote")
        if keep or quote is None:
            return
        now = ctx.now()
        if self.refused_at is not None and (now - self.refused_at).total_seconds() < self.cfg.retry_after_s:
            return
        intent = OrderIntent(
            symbol=symbol,
            side=Side.BUY,
            size=quote.size,
            price=quote.price,
            style=ExecutionStyle.LIMIT,
            post_only=True,
            venue=self.cfg.venue,
            tag=TAGS[outcome],
        )
        result = ctx.submit(intent)
        if not result.accepted:
            self.refused_at = now
            ctx.record("refused", f"{outcome.value} bid {quote.size} @ {quote.price}: {result.reason}", symbol)


def build_window_mm(strategy_id: str, cfg: WindowMakerConfig | Mapping[str, Any] | None = None) -> WindowMarketMaker:
    """The factory the engine's strategy registry calls."""
    config = cfg if isinstance(cfg, WindowMakerConfig) else WindowMakerConfig.model_validate(cfg or {})
    return WindowMarketMaker(strategy_id, config)
