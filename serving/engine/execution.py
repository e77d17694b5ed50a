"""Execution: the order lifecycle of SPEC 11 on one venue, over the `Broker` protocol (one per venue).

Two ways to work an intent (`serving.engine.strategy.ExecutionStyle`):
- WORKING: `OrderManager`'s working order (post-only at the touch, re-quote after partial fills, taker
  fallback within the slippage cap, TTL, cancel delay); the strategy gets the working order's id.
- LIMIT: exactly one order at the intent's price (post-only, or IOC); its id is its client order id.

Write-ahead: every order is stored (state `new`) before the broker hears of it; a failed write rejects
the order locally and nothing is sent. Venue events are applied to the tracked order, stored, and passed
to the engine (`on_fill` inside the same store transaction as the order, then `on_update`).
Terminal orders stay tracked for a while (a late fill after a cancel must still find its order).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from pipelines.trading.config import TradingConfig
from pipelines.trading.instruments import MarketInfo, price_for_side, rejection_reason, round_size
from pipelines.trading.orders import (
    BookTop,
    CancelOrder,
    ClientOrderIdFactory,
    Fill,
    Filled,
    FillError,
    IllegalTransitionError,
    Order,
    OrderAction,
    OrderKind,
    OrderManager,
    OrderState,
    PlaceOrder,
    VenueEvent,
    WorkingOrder,
    WorkStatus,
    apply_event,
    count_zombies,
    is_zombie,
)
from pipelines.trading.paper import Trade
from serving.engine.broker import Broker, BrokerError
from serving.engine.persistence.schema import StoredOrder, StoreError
from serving.engine.persistence.state import Persistence, TrackedOrder
from serving.engine.strategy import ExecutionStyle, OpenOrderView, OrderIntent, TimeInForce
from serving.trading_metrics import ORDER_LATENCY, record_fill, record_order

log = logging.getLogger("alphatide.engine.execution")


@dataclass
class ActiveWork:
    work: WorkingOrder
    purpose: str
    reason: str
    strategy_id: str


@dataclass
class ExecutionHooks:
    """How execution reports back to the engine (all called on the engine's thread, under its lock)."""

    on_fill: Callable[[TrackedOrder, Fill, datetime], None]
    on_update: Callable[[TrackedOrder, VenueEvent, datetime], None]
    record: Callable[[str, datetime, str, str, str], None]  # strategy_id, now, symbol, action, reason
    alert: Callable[[datetime, str, str], None]


class Execution:
    """See the module docstring. Not thread-safe: the engine calls it under its lock."""

    def __init__(
        self,
        venue: str,
        broker: Broker,
        trading: TradingConfig,
        ids: ClientOrderIdFactory,
        persistence: Persistence,
        hooks: ExecutionHooks,
    ) -> None:
        self.venue = venue
        self.broker = broker
        self.trading = trading
        self.ids = ids
        self.manager = OrderManager(trading.orders, ids)
        self.persistence = persistence
        self.hooks = hooks
        self.tracked: dict[str, TrackedOrder] = {}
        self.works: dict[str, ActiveWork] = {}
        self.clean_started = False

    # ---- queries ------------------------------------------------------------------------------
    def market(self, symbol: str) -> MarketInfo:
        return self.broker.market(symbol)

    def live_orders(self) -> list[Order]:
        return [t.order for t in self.tracked.values() if t.order.is_live]

    def zombies(self, now: datetime) -> int:
        return count_zombies(self.live_orders(), now, self.trading.orders)

    def working(self, strategy_id: str, symbol: str, purpose: str | None = None) -> bool:
        """Whether the strategy has a working order or a live order in `symbol` (of `purpose`)."""
        if any(
            w.strategy_id == strategy_id and w.work.market.symbol == symbol and purpose in (None, w.purpose)
            for w in self.works.values()
        ):
            return True
        return any(
            t.strategy_id == strategy_id
            and t.order.symbol == symbol
            and t.order.is_live
            and purpose in (None, t.purpose)
            and t.work_id not in self.works
            for t in self.tracked.values()
        )

    def open_orders(self, strategy_id: str, symbol: str | None = None) -> list[OpenOrderView]:
        out: list[OpenOrderView] = []
        for w in self.works.values():
            if w.strategy_id == strategy_id and symbol in (None, w.work.market.symbol):
                out.append(
                    OpenOrderView(
                        w.work.work_id,
                        self.venue,
                        w.work.market.symbol,
                        w.work.side,
                        w.work.quote_price,
                        w.work.remaining,
                        w.reason,
                    )
                )
        for t in self.tracked.values():
            o = t.order
            if (
                t.strategy_id == strategy_id
                and o.is_live
                and t.work_id not in self.works
                and symbol in (None, o.symbol)
            ):
                out.append(OpenOrderView(t.work_id, self.venue, o.symbol, o.side, o.price, o.remaining, t.tag))
        return out

    # ---- intents ------------------------------------------------------------------------------
    def submit(
        self, strategy_id: str, intent: OrderIntent, size: Decimal, book: BookTop | None, now: datetime
    ) -> tuple[str | None, str]:
        """Work `intent` for `size` (already approved by risk); returns (order id, "") or (None, why)."""
        try:
            market = self.market(intent.symbol)
        except BrokerError as exc:
            return None, f"no market info: {exc}"
        purpose = "exit" if intent.is_exit else "entry"
        if intent.style is ExecutionStyle.LIMIT:
            return self._place_limit(strategy_id, intent, size, market, purpose, now)
        if book is None:
            return None, "no book to price the order"
        work, actions = self.manager.start(market, intent.side, size, book, now, allow_taker=True, price=intent.price)
        if work.status is not WorkStatus.WORKING:
            return None, work.finish_reason or "working order failed"
        active = ActiveWork(work, purpose, intent.tag, strategy_id)
        self.works[work.work_id] = active
        self._send(active, actions, now)
        return work.work_id, ""

    def _place_limit(
        self, strategy_id: str, intent: OrderIntent, size: Decimal, market: MarketInfo, purpose: str, now: datetime
    ) -> tuple[str | None, str]:
        if intent.post_only:
            kind = OrderKind.POST_ONLY
        elif intent.time_in_force is TimeInForce.IOC:
            kind = OrderKind.IOC
        else:
            return None, "a resting taker limit (GTC, not post-only) is not supported by the brokers"
        assert intent.price is not None  # OrderIntent validates LIMIT intents
        price = price_for_side(market, intent.price, intent.side)
        size = round_size(market, size)
        problem = rejection_reason(market, price, size)
        if problem is not None:
            return None, problem
        order = Order(self.ids.next_id(), intent.symbol, intent.side, kind, price, size, now)
        tracked = TrackedOrder(order, order.client_order_id, purpose, strategy_id, self.venue, intent.tag)
        self._place(tracked, now)
        return order.client_order_id, ""

    def cancel(self, order_id: str, now: datetime, reason: str) -> bool:
        """Cancel a working order (by work id) or a single order (by client order id)."""
        work = self.works.get(order_id)
        if work is not None:
            self.abandon(work, now, reason)
            return True
        tracked = self.tracked.get(order_id)
        if tracked is not None and tracked.order.is_live:
            self.cancel_order(tracked, now, reason)
            return True
        return False

    # ---- market data and time ----------------------------------------------------------------
    def on_book(self, symbol: str, book: BookTop, now: datetime) -> None:
        self.apply(self.broker.on_book(symbol, book), now)

    def on_trade(self, symbol: str, trade: Trade, now: datetime) -> None:
        self.apply(self.broker.on_trade(symbol, trade), now)

    def poll(self, now: datetime) -> None:
        self.apply(self.broker.poll(self.live_orders(), now), now)

    def drive(self, now: datetime, symbol: str | None, book_for: Callable[[str], BookTop | None]) -> None:
        """Advance every working order (of `symbol`, or all): TTL, re-quotes, taker fallback, cancel delay."""
        for work in list(self.works.values()):
            sym = work.work.market.symbol
            if symbol is not None and sym != symbol:
                continue
            actions = self.manager.next_actions(work.work, book_for(sym), now)
            if actions:
                self._send(work, actions, now)
            if work.work.status is not WorkStatus.WORKING and work.work.live_child() is None:
                self.works.pop(work.work.work_id, None)
                status = f"{work.work.status.value}: {work.work.finish_reason}"
                self.hooks.record(work.strategy_id, now, sym, f"{work.purpose}_done", status)

    # ---- sending ------------------------------------------------------------------------------
    def _send(self, work: ActiveWork, actions: list[OrderAction], now: datetime) -> None:
        for action in actions:
            if isinstance(action, PlaceOrder):
                tracked = TrackedOrder(
                    action.order, work.work.work_id, work.purpose, work.strategy_id, self.venue, work.reason
                )
                self._place(tracked, now)
            elif isinstance(action, CancelOrder):
                tracked_cancel = self.tracked.get(action.client_order_id)
                if tracked_cancel is not None:
                    self.persistence.save_order(tracked_cancel, now)
                    self._broker_cancel(tracked_cancel, now, action.reason)

    def _place(self, tracked: TrackedOrder, now: datetime) -> None:
        order = tracked.order
        self.tracked[order.client_order_id] = tracked
        # Write-ahead: the intent is durable before the venue hears of it.
        if not self.persistence.save_order(tracked, now):
            order.reject(now, "not sent: the store could not record it")
            return
        record_order(tracked.strategy_id, order.side.value, "submitted")
        started = time.perf_counter()
        try:
            events = self.broker.place(order, now)
            ORDER_LATENCY.labels(self.broker.name).observe(time.perf_counter() - started)
        except BrokerError as exc:
            self.hooks.record(tracked.strategy_id, now, order.symbol, "place_failed", str(exc))
            events = []
        self.apply(events, now)

    def _broker_cancel(self, tracked: TrackedOrder, now: datetime, reason: str) -> None:
        try:
            self.apply(self.broker.cancel(tracked.order, now), now)
        except BrokerError as exc:
            self.hooks.record(tracked.strategy_id, now, tracked.order.symbol, "cancel_failed", f"{reason}: {exc}")

    def cancel_order(self, tracked: TrackedOrder, now: datetime, reason: str) -> None:
        order = tracked.order
        if order.state is not OrderState.CANCEL_REQUESTED:
            try:
                order.request_cancel(now)
            except IllegalTransitionError:
                return
        self.persistence.save_order(tracked, now)
        self._broker_cancel(tracked, now, reason)

    def abandon(self, work: ActiveWork, now: datetime, reason: str) -> None:
        live = work.work.live_child()
        if work.work.status is WorkStatus.WORKING:
            work.work.finish(WorkStatus.EXPIRED, reason)
        if live is not None:
            tracked = self.tracked.get(live.client_order_id)
            if tracked is not None:
                self.cancel_order(tracked, now, reason)
        self.works.pop(work.work.work_id, None)

    # ---- venue events -------------------------------------------------------------------------
    def apply(self, events: list[VenueEvent], now: datetime) -> None:
        for event in events:
            tracked = self.tracked.get(event.client_order_id)
            if tracked is None:
                log.info("event for an order we do not track: %s", event)
                continue
            order = tracked.order
            filled_before, state_before = order.filled, order.state
            try:
                apply_event(order, event)
            except (IllegalTransitionError, FillError) as exc:
                log.info("ignored venue event %s: %s", type(event).__name__, exc)
                continue
            try:
                with self.persistence.batch():
                    self.persistence.save_order(tracked, now, raise_errors=True)
                    if isinstance(event, Filled) and order.filled > filled_before:
                        self.hooks.on_fill(tracked, event.fill, now)
            except StoreError as exc:
                self.persistence.error(now, exc)
            self._count(tracked, order.filled > filled_before, order.state is not state_before)
            self.hooks.on_update(tracked, event, now)

    @staticmethod
    def _count(tracked: TrackedOrder, filled: bool, changed: bool) -> None:
        """Prometheus counters (serving.trading_metrics): a fill, and the order's new state."""
        order = tracked.order
        if filled:
            record_fill(tracked.strategy_id, order.side.value)
        if changed:
            record_order(tracked.strategy_id, order.side.value, order.state.value)

    # ---- bulk cancels -------------------------------------------------------------------------
    def cancel_entries(self, now: datetime, reason: str, strategy_id: str | None = None) -> int:
        """Stop every entry at once (kill, pause file, halting switches); exits keep working."""
        count = 0
        for work in list(self.works.values()):
            if work.purpose == "entry" and strategy_id in (None, work.strategy_id):
                self.abandon(work, now, reason)
                count += 1
        for tracked in list(self.tracked.values()):
            if tracked.purpose == "entry" and tracked.order.is_live and strategy_id in (None, tracked.strategy_id):
                self.cancel_order(tracked, now, reason)
                count += 1
        return count

    def cancel_all(self, now: datetime, reason: str) -> None:
        """Cancel every live order we track and every open order the venue lists; drop every intent."""
        for work in list(self.works.values()):
            self.abandon(work, now, reason)
        for tracked in list(self.tracked.values()):
            if tracked.order.is_live:
                self.cancel_order(tracked, now, reason)
        try:
            mine = set(self.tracked)
            for view in self.broker.open_orders():
                if view.client_order_id not in mine:
                    self.broker.cancel_venue_order(view, now)
        except BrokerError as exc:
            self.hooks.alert(now, "cancel_all", f"cannot list open orders: {exc}")

    def sweep(self, now: datetime) -> None:
        """Stale-order sweep: forget long-closed orders, cancel orders live past their TTL."""
        cfg = self.trading.orders
        keep = timedelta(seconds=cfg.ttl_seconds * 10)
        for cid, tracked in list(self.tracked.items()):
            closed = tracked.order.closed_at
            if closed is not None and now - closed > keep and tracked.work_id not in self.works:
                del self.tracked[cid]
        for tracked in list(self.tracked.values()):
            order = tracked.order
            if not order.is_live or not is_zombie(order, now, cfg):
                continue
            if order.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED, OrderState.CANCEL_REQUESTED):
                self.cancel_order(tracked, now, "stale-order sweep")

    # ---- start and stop -----------------------------------------------------------------------
    def _settle_time(self, now: datetime) -> datetime:
        return now + timedelta(milliseconds=self.trading.paper.latency_ms + 1)

    def recover(self, stored: list[StoredOrder], now: datetime) -> None:
        """Track the orders that were live when the previous process died and learn their fate."""
        for s in stored:
            if s.venue == self.venue:
                self.tracked[s.order.client_order_id] = TrackedOrder(
                    s.order, s.work_id, s.purpose, s.strategy_id, s.venue, s.tag
                )
        for tracked in self.tracked.values():
            with contextlib.suppress(BrokerError):
                self.market(tracked.order.symbol)
        self.poll(now)

    def clean_start(self, now: datetime) -> int:
        """Cancel every open order of the account on this venue (SPEC 11); how many were cancelled."""
        try:
            views = self.broker.open_orders()
        except BrokerError as exc:
            self.hooks.alert(now, "clean_start", f"cannot list open orders (entries wait for a clean start): {exc}")
            self.clean_started = False
            return 0
        known = self.persistence.store.known_client_ids([v.client_order_id for v in views if v.client_order_id])
        cancelled = 0
        for view in views:
            if self.broker.cancel_venue_order(view, now):
                cancelled += 1
            if view.client_order_id not in known:
                name = view.client_order_id or view.venue_order_id
                self.hooks.alert(now, "clean_start", f"cancelled unknown open order {name} on {view.symbol}")
        # Learn the final state (and last fills) of our orders, then close what the venue no longer has.
        self.apply(self.broker.poll(self.live_orders(), self._settle_time(now)), now)
        for tracked in self.tracked.values():
            order = tracked.order
            if order.is_live:
                with contextlib.suppress(IllegalTransitionError):
                    if order.state is OrderState.NEW:
                        order.reject(now, "not at the venue at clean start")
                    else:
                        order.confirm_cancelled(now, "closed at clean start")
                self.persistence.save_order(tracked, now)
        if cancelled:
            log.warning("clean start on %s: cancelled %d open order(s)", self.venue or "default venue", cancelled)
        self.clean_started = True
        return cancelled

    def shutdown(self, now: datetime) -> None:
        """Cancel every resting order, let the cancels land, expire the working orders."""
        for tracked in list(self.tracked.values()):
            if tracked.order.is_live:
                self.cancel_order(tracked, now, "graceful shutdown")
        self.apply(self.broker.poll(self.live_orders(), self._settle_time(now)), now)
        for work in self.works.values():
            if work.work.status is WorkStatus.WORKING:
                work.work.finish(WorkStatus.EXPIRED, "graceful shutdown")
        self.works.clear()
