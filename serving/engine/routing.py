"""How the engine routes venue events and risk actions between its components (the engine's helpers).

- `book_fill`: a fill, inside its order's store transaction, goes to the portfolio (position or closed
  round trip, stored), the account's loss streak, and is queued for the owning strategy.
- `deliver_update`: after the transaction, the owning strategy hears of its fills, then of the state.
- `carry_out`: the kill-switch verdict's actions: a verdict that stops entries cancels the resting
  entries at once (exits go on); flatten, cancel all, reduce leverage; the serving tier's listeners.
- `exit_position`: close one position on behalf of its strategy (never blocked by risk).
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from pipelines.trading.instruments import Side
from pipelines.trading.killswitch import Action, RiskVerdict
from pipelines.trading.orders import Fill, Filled, Liquidity, VenueEvent
from serving.engine.broker import BrokerError
from serving.engine.persistence.schema import ClosedTrade, PositionRecord
from serving.engine.persistence.state import TrackedOrder
from serving.engine.strategy import FillEvent, OrderIntent, OrderUpdate, RiskLimits, RoundTrip, SubmitResult

if TYPE_CHECKING:
    from serving.engine.engine import TradingEngine

log = logging.getLogger("alphatide.engine")


def pending_entries(engine: TradingEngine, strategy_id: str) -> Decimal:
    total = Decimal(0)
    for ex in engine.executions.values():
        for w in ex.works.values():
            if w.strategy_id == strategy_id and w.purpose == "entry":
                total += w.work.remaining * w.work.quote_price
        for t in ex.tracked.values():
            if t.strategy_id == strategy_id and t.purpose == "entry" and t.order.is_live and t.work_id not in ex.works:
                total += t.order.remaining * t.order.price
    return total


def book_fill(engine: TradingEngine, tracked: TrackedOrder, fill: Fill, now: datetime) -> None:
    """Inside the order's store transaction: book the fill, store the position or the round trip."""
    sid, venue, symbol = tracked.strategy_id, tracked.venue, tracked.order.symbol
    # On a derivative (ccxt "BASE/QUOTE:SETTLE") an exit with no position opens one: the hedge leg of a
    # two-venue hedge is an exit of the strategy's exposure but a new short/long on its venue.
    reduce_only = tracked.purpose == "exit" and ":" not in symbol
    trip = _book(
        engine, (sid, venue, symbol), tracked.order.side, fill, now, reduce_only, tracked.tag or tracked.purpose
    )
    engine._pending_fills.setdefault(tracked.order.client_order_id, []).append(
        FillEvent(
            tracked.order_id,
            tracked.order.client_order_id,
            venue,
            symbol,
            tracked.order.side,
            fill,
            tracked.tag,
            trip,
        )
    )


def _book(
    engine: TradingEngine,
    key: tuple[str, str, str],
    side: Side,
    fill: Fill,
    now: datetime,
    reduce_only: bool,
    reason: str,
) -> RoundTrip | None:
    """One fill into the portfolio and the store (position or closed round trip, counters); the trip."""
    sid, venue, symbol = key
    try:
        lot = engine.execution(venue).market(symbol).lot_size
    except BrokerError:
        lot = Decimal(0)
    result = engine.portfolio.apply_fill(
        key, side, fill, is_major=engine.is_major(symbol), lot=lot, reduce_only=reduce_only, reason=reason
    )
    store, trip = engine.store, result.round_trip
    if result.position is not None:
        store.save_position(result.position, now)
    elif trip is not None:
        store.delete_position(symbol, sid, venue)
        store.record_closed_trade(
            ClosedTrade(symbol, trip.opened_at, now, trip.size, trip.net_pnl, trip.net_return, trip.reason, sid, venue)
        )
        engine.risk.guard.record_trade_result(trip.net_pnl, now)
    engine.counters.persist(now, raise_errors=True, only_money=trip is None)
    return trip


def settle_window_positions(
    engine: TradingEngine, strategy_id: str, venue: str, window_start_s: int, winner: str, now: datetime
) -> list[RoundTrip]:
    """Close the strategy's outcome-token positions of one resolved window (handles such as
    BTC_UPDOWN_5M_<start>:UP): the winning outcome is redeemed at 1, the others at 0, so the
    portfolio's cash, exposure and realized PnL match the venue after resolution. The strategy is not
    told again (it settled its own book first)."""
    trips: list[RoundTrip] = []
    for pos in list(engine.portfolio.positions.values()):
        market, _, label = pos.symbol.partition(":")
        if pos.strategy_id != strategy_id or pos.venue != venue or not label:
            continue
        try:
            start = int(market.rsplit("_", 1)[1])
        except (IndexError, ValueError):
            continue
        if start != window_start_s or pos.side is not Side.BUY:
            continue
        price = Decimal(1) if label.capitalize() == winner.capitalize() else Decimal(0)
        # The venue withheld the entry fee in tokens (fee / entry price fewer tokens held) while the portfolio
        # charged it in cash: the redemption's fee squares both, so realized PnL and cash match the venue.
        entered = pos.size + pos.exited_size
        fees = pos.entry_fees * pos.size / entered if entered > 0 else Decimal(0)
        fee = price * fees / pos.entry_price - fees if pos.entry_price > 0 else Decimal(0)
        fill = Fill(f"settle-{pos.symbol}-{window_start_s}", pos.size, price, fee, Liquidity.MAKER, now)
        with engine.store.batch():
            trip = _book(engine, pos.key, Side.SELL, fill, now, True, f"settled {winner}")
        if trip is not None:
            trips.append(trip)
    return trips


def deliver_update(engine: TradingEngine, tracked: TrackedOrder, event: VenueEvent, now: datetime) -> None:
    """After the store transaction: the owning strategy hears of its fills, then of the new state."""
    strategy = engine.strategies.get(tracked.strategy_id)
    fills = engine._pending_fills.pop(tracked.order.client_order_id, [])
    if strategy is None:
        return
    ctx = engine.contexts[tracked.strategy_id]
    order = tracked.order
    reason = getattr(event, "reason", "") if not isinstance(event, Filled) else ""
    update = OrderUpdate(
        tracked.order_id,
        order.client_order_id,
        tracked.venue,
        order.symbol,
        order.side,
        order.state,
        order.filled,
        order.remaining,
        now,
        reason or "",
        tracked.tag,
    )
    try:
        for fill in fills:
            strategy.on_fill(ctx, fill)
        strategy.on_order_update(ctx, update)
    except Exception as exc:
        log.exception("strategy %s failed on an order update", tracked.strategy_id)
        engine.record(tracked.strategy_id, now, order.symbol, "strategy_error", f"{type(exc).__name__}: {exc}")


def carry_out(engine: TradingEngine, verdict: RiskVerdict, now: datetime) -> None:
    reasons = "; ".join(verdict.reasons)
    if not verdict.allow_entries:  # every halting switch stops resting entries at once (exits go on)
        engine.cancel_entries(now, f"entries stopped: {reasons}")
    if Action.FLATTEN in verdict.actions:
        for pos in list(engine.portfolio.positions.values()):
            engine.exit_position(pos, now, f"flatten: {reasons}")
    if Action.CANCEL_ALL in verdict.actions:
        for ex in engine.executions.values():
            ex.cancel_all(now, f"cancel all: {reasons}")
    if Action.REDUCE_LEVERAGE in verdict.actions and engine.portfolio.positions:
        largest = max(engine.portfolio.positions.values(), key=lambda p: abs(engine.portfolio.value(p)))
        engine.exit_position(largest, now, "reduce leverage")
    for action in (Action.RETRAIN, Action.DEGRADE_TO_TABULAR, Action.SHED_CACHES):
        if action in verdict.actions:
            for listener in engine.action_listeners:
                try:
                    listener(action, reasons)
                except Exception:
                    log.exception("action listener failed for %s", action)


def exit_position(engine: TradingEngine, pos: PositionRecord, now: datetime, reason: str) -> None:
    """Close a position on behalf of its strategy (flatten, reduce leverage); never blocked by risk."""
    ex = engine.executions.get(pos.venue)
    if ex is None or ex.working(pos.strategy_id, pos.symbol, "exit"):
        return
    for work in list(ex.works.values()):
        if work.strategy_id == pos.strategy_id and work.purpose == "entry" and work.work.market.symbol == pos.symbol:
            ex.abandon(work, now, f"exit started: {reason}")
    side = Side.SELL if pos.side is Side.BUY else Side.BUY
    result = engine.submit_intent(
        pos.strategy_id, OrderIntent(pos.symbol, side, pos.size, is_exit=True, venue=pos.venue, tag=reason)
    )
    action = "exit" if result.accepted else "exit_blocked"
    engine.record(pos.strategy_id, now, pos.symbol, action, reason if result.accepted else result.reason)


def submit_intent(engine: TradingEngine, strategy_id: str, intent: OrderIntent) -> SubmitResult:
    """Risk, then the execution of the intent's venue (the engine holds its lock)."""
    now = engine.now()
    ex = engine.executions.get(intent.venue)
    if ex is None:
        return SubmitResult(False, reason=f"no broker for venue {intent.venue!r}")
    try:
        market = ex.market(intent.symbol)
    except BrokerError as exc:
        return SubmitResult(False, reason=f"no market info: {exc}")
    book = engine.portfolio.books.get((intent.venue, intent.symbol))
    limits = RiskLimits(True, "")
    if not intent.is_exit:
        verdict = engine.risk.last_verdict
        if verdict is None or engine._verdict_at != now:
            verdict = engine.evaluate_risk(now, act=False)
        limits = engine.risk.limits(strategy_id, intent.symbol, verdict, engine.risk.gate(engine.executions.values()))
    approval = engine.risk.check(strategy_id, intent, market, book, limits, engine.pending_entries(strategy_id))
    if not approval.accepted:
        return SubmitResult(False, reason=approval.reason)
    order_id, why = ex.submit(strategy_id, intent, approval.size, book, now)
    if order_id is None:
        return SubmitResult(False, reason=why)
    return SubmitResult(True, order_id, approval.size, approval.reason)
