"""The hedge cycle as a pure state machine (SPEC 13). No IO, no clock: time and market come in as values.

Inputs are events (an order was placed or refused, a fill, an order update, a timer tick) together with a
`Snapshot` of both venues (each venue's own `MarketInfo`, top of book, the strategy's position). Outputs
are `Action`s the caller carries out (`Place`, `Cancel`, `Alert`); the caller reports back what the
venue's risk gate did with each `Place` (`placed` / `refused`). Rules, each one a reason open-source
hedgers lost money:

- Every fill is applied once (de-duplicated by fill id across all orders of the cycle); the exposure
  still to hedge is `filled - hedged - unwound - (size still working on hedge orders)`, so the hedge can
  never exceed what was filled, whatever the order in which fills, updates and retries arrive. A
  terminal order update whose cumulative fill is ahead of the fill events keeps that difference counted
  as working until the fills arrive.
- Each fill is hedged at once by an IOC limit on the hedge venue, within `slippage_band` of its touch,
  rounded to the hedge venue's own tick and lot. A residual below the hedge venue's lot or minimum waits
  for more fills while the maker works, and is unwound on the primary venue once it is done.
- A hedge order that ends short (rejected, e.g. a false "insufficient balance"; expired; refused by the
  risk gate) is retried within the band; after `max_hedge_attempts` failures the maker is cancelled and
  the primary fill is unwound (IOC on the primary venue, bounded by `max_unwind_attempts`).
- A hedge or unwind with no answer within `hedge_timeout_seconds` is cancelled; still no answer after
  another timeout, it is marked lost and the cycle resolves from positions (never by re-sending blindly).
- A maker fill that arrives after its cancel was requested is hedged like any other fill, exactly once.
- When every order is done, both venues' positions must show a zero net change against the baselines
  read when the cycle opened; a non-zero net after `verify_timeout_seconds` is alerted and corrected by
  an IOC (on the hedge venue, on the primary venue for a remainder below the hedge venue's minimum).
- Recovery after a restart (`recover`): every order of the persisted cycle is gone (the engine's clean
  start cancelled them), so the cycle is finished from positions alone: a zero net closes it, any other
  net is hedged or unwound by the correction path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from pipelines.trading.hedge.config import HedgeConfig
from pipelines.trading.hedge.cycle import ZERO, Cycle, LegFill, LegOrder, Role, Status
from pipelines.trading.hedge.phases import Outcome
from pipelines.trading.hedge.pricing import expected_edge_bps, hedgeable, taker_limit
from pipelines.trading.instruments import MarketInfo, Side, ticks_away
from pipelines.trading.orders import TERMINAL_STATES, OrderState

PRIMARY = "primary"
HEDGE = "hedge"


@dataclass(frozen=True)
class Top:
    bid: Decimal
    ask: Decimal
    ts: datetime


@dataclass(frozen=True)
class Snapshot:
    """Both venues as the strategy sees them now. Positions are signed base units of this strategy."""

    primary: MarketInfo
    hedge: MarketInfo
    primary_top: Top | None
    hedge_top: Top | None
    primary_position: Decimal
    hedge_position: Decimal

    def net(self, cycle: Cycle) -> Decimal:
        return (self.primary_position - cycle.baseline_primary) + (self.hedge_position - cycle.baseline_hedge)


@dataclass(frozen=True)
class Place:
    role: Role
    venue: str  # PRIMARY or HEDGE
    side: Side
    price: Decimal
    size: Decimal
    post_only: bool
    attempt: int


@dataclass(frozen=True)
class Cancel:
    order_id: str
    reason: str


@dataclass(frozen=True)
class Alert:
    kind: str
    message: str


Action = Place | Cancel | Alert


def is_dust(snap: Snapshot, amount: Decimal) -> bool:
    """Below one lot on both venues: no order can trade it (e.g. a fee taken in the base asset)."""
    return abs(amount) < min(snap.primary.lot_size, snap.hedge.lot_size)


class HedgeMachine:
    """Transitions of `Cycle`s under one configuration. Every method mutates the cycle it is given."""

    def __init__(self, cfg: HedgeConfig) -> None:
        self.cfg = cfg

    # ---- events --------------------------------------------------------------------------------
    def placed(self, cycle: Cycle, action: Place, order_id: str, size: Decimal, now: datetime) -> None:
        cycle.orders[order_id] = LegOrder(
            order_id, action.role, action.venue, action.side, action.price, size, now, attempt=action.attempt
        )

    def refused(self, cycle: Cycle, action: Place, reason: str, snap: Snapshot, now: datetime) -> list[Action]:
        if action.role is Role.MAKER:
            cycle.reason = f"maker refused: {reason}"
            return self._to_verify(cycle, snap, now)
        self._count_failure(cycle, action.role)
        return self.advance(cycle, snap, now)

    def on_fill(self, cycle: Cycle, order_id: str, fill: LegFill, snap: Snapshot, now: datetime) -> list[Action]:
        order = cycle.orders.get(order_id)
        if order is None or fill.fill_id in cycle.fill_ids:
            return []
        cycle.fill_ids.add(fill.fill_id)
        order.fills.append(fill)
        if order.filled >= order.size and not order.terminal:
            order.terminal, order.final_state = True, OrderState.FILLED.value
        return self.advance(cycle, snap, now)

    def on_update(
        self, cycle: Cycle, order_id: str, state: OrderState, filled: Decimal, snap: Snapshot, now: datetime
    ) -> list[Action]:
        order = cycle.orders.get(order_id)
        if order is None:
            return []
        order.venue_filled = max(order.venue_filled, filled)
        if state in TERMINAL_STATES and not order.terminal:
            order.terminal, order.final_state = True, state.value
            if order.role is not Role.MAKER and max(order.venue_filled, order.filled) < order.size:
                self._count_failure(cycle, order.role)
        return self.advance(cycle, snap, now)

    def on_timer(self, cycle: Cycle, snap: Snapshot, now: datetime) -> list[Action]:
        actions: list[Action] = []
        for order in list(cycle.orders.values()):
            if order.terminal:
                continue
            if order.role is Role.MAKER:
                actions += self._maker_timer(cycle, order, snap, now)
            else:
                actions += self._taker_timer(cycle, order, now)
        return actions + self.advance(cycle, snap, now)

    def recover(self, cycle: Cycle, snap: Snapshot, now: datetime) -> list[Action]:
        """Finish a cycle persisted by an earlier process: its orders are gone, positions tell the truth."""
        for order in cycle.orders.values():
            if not order.terminal:
                order.terminal, order.lost, order.final_state = True, True, "lost_at_restart"
        cycle.recovered = True
        cycle.status = Status.VERIFYING
        cycle.verify_started_at = now - timedelta(seconds=self.cfg.verify_timeout_seconds)
        return self.advance(cycle, snap, now)

    # ---- the core ------------------------------------------------------------------------------
    def advance(self, cycle: Cycle, snap: Snapshot, now: datetime) -> list[Action]:
        actions: list[Action] = []
        if cycle.status is Status.ACTIVE:
            actions += self._hedge_exposure(cycle, snap, now)
        if cycle.status is Status.UNWINDING:
            actions += self._unwind(cycle, snap, now)
        if cycle.status is Status.VERIFYING:
            actions += self._verify(cycle, snap, now)
        return actions

    def _hedge_exposure(self, cycle: Cycle, snap: Snapshot, now: datetime) -> list[Action]:
        need = cycle.exposure - cycle.open_of(Role.HEDGE)
        if need <= 0:
            if not cycle.maker_live and cycle.open_of(Role.HEDGE) == 0:
                return self._to_verify(cycle, snap, now)
            return []
        if cycle.hedge_failures >= self.cfg.max_hedge_attempts:
            return self._start_unwind(cycle, snap, now, f"hedge failed {cycle.hedge_failures} times")
        side = cycle.maker_side.opposite
        price = self._taker_price(snap.hedge, side, snap.hedge_top, cycle.hedge_reference, self.cfg.slippage_band, now)
        size = hedgeable(snap.hedge, need, price)
        if size == 0:
            if cycle.maker_live or cycle.open_of(Role.HEDGE) > 0:
                return []  # below the hedge venue's minimum: wait for more fills
            return self._start_unwind(cycle, snap, now, f"residual {need} below the hedge venue's minimum")
        cycle.hedge_attempts += 1
        return [Place(Role.HEDGE, HEDGE, side, price, size, False, cycle.hedge_attempts)]

    def _start_unwind(self, cycle: Cycle, snap: Snapshot, now: datetime, reason: str) -> list[Action]:
        cycle.status = Status.UNWINDING
        cycle.reason = reason
        return []  # `advance` continues with UNWINDING

    def _unwind(self, cycle: Cycle, snap: Snapshot, now: datetime) -> list[Action]:
        actions: list[Action] = self._cancel_maker(cycle, now, "unwinding")
        if cycle.open_of(Role.HEDGE) > 0:
            return actions  # a hedge still working may fill: unwind only what it leaves
        need = cycle.exposure - cycle.open_of(Role.UNWIND)
        if need <= 0:
            if not cycle.maker_live and cycle.open_of(Role.UNWIND) == 0:
                actions += self._to_verify(cycle, snap, now)
            return actions
        if cycle.unwind_failures >= self.cfg.max_unwind_attempts:
            return actions + self._to_verify(cycle, snap, now, f"; unwind failed {cycle.unwind_failures} times")
        side = cycle.maker_side.opposite
        price = self._taker_price(
            snap.primary, side, snap.primary_top, cycle.maker_price, self.cfg.unwind_slippage_band, now
        )
        size = hedgeable(snap.primary, need, price)
        if size == 0:
            return actions + self._to_verify(cycle, snap, now, f"; unwind of {need} is below the primary minimum")
        cycle.unwind_attempts += 1
        return [*actions, Place(Role.UNWIND, PRIMARY, side, price, size, False, cycle.unwind_attempts)]

    def _to_verify(self, cycle: Cycle, snap: Snapshot, now: datetime, note: str = "") -> list[Action]:
        cycle.status = Status.VERIFYING
        cycle.verify_started_at = now
        cycle.reason += note
        return self._verify(cycle, snap, now)

    def _verify(self, cycle: Cycle, snap: Snapshot, now: datetime) -> list[Action]:
        actions: list[Action] = self._cancel_maker(cycle, now, "verifying")
        if cycle.open_of(*Role) > 0:
            return actions  # an order is still working: its fills would change the net
        net = snap.net(cycle)
        if net == 0 or is_dust(snap, net):
            return actions + self._finish(cycle, net, snap, now)
        started = cycle.verify_started_at or now
        if now - started < timedelta(seconds=self.cfg.verify_timeout_seconds):
            return actions
        alert = Alert("hedge_imbalance", f"cycle {cycle.cycle_id}: net {net} after every order finished")
        if cycle.correct_attempts >= self.cfg.max_hedge_attempts:
            return [*actions, alert, *self._finish(cycle, net, snap, now)]
        correction = self._correction(cycle, snap, net, now)
        if correction is None:
            return [*actions, alert, *self._finish(cycle, net, snap, now)]
        cycle.correct_attempts += 1
        cycle.verify_started_at = now
        return [*actions, alert, correction]

    def _correction(self, cycle: Cycle, snap: Snapshot, net: Decimal, now: datetime) -> Place | None:
        side = Side.SELL if net > 0 else Side.BUY
        amount = abs(net)
        hedge_price = self._taker_price(
            snap.hedge, side, snap.hedge_top, cycle.hedge_reference, self.cfg.slippage_band, now
        )
        size = hedgeable(snap.hedge, amount, hedge_price)
        if size > 0:
            return Place(Role.CORRECT, HEDGE, side, hedge_price, size, False, cycle.correct_attempts + 1)
        primary_price = self._taker_price(
            snap.primary, side, snap.primary_top, cycle.maker_price, self.cfg.unwind_slippage_band, now
        )
        size = hedgeable(snap.primary, amount, primary_price)
        if size > 0:
            return Place(Role.CORRECT, PRIMARY, side, primary_price, size, False, cycle.correct_attempts + 1)
        return None

    def _finish(self, cycle: Cycle, net: Decimal, snap: Snapshot, now: datetime) -> list[Action]:
        cycle.status, cycle.ended_at, cycle.net_after = Status.DONE, now, net
        back_on_primary = cycle.unwound + sum(
            (o.filled for o in cycle.orders_of(Role.CORRECT) if o.venue == PRIMARY), ZERO
        )
        alerts: list[Action] = []
        if net != 0 and not is_dust(snap, net):
            cycle.outcome = Outcome.FAILED
            return [Alert("hedge_imbalance", f"cycle {cycle.cycle_id} ended with net {net}: {cycle.reason}")]
        if net != 0:
            alerts.append(Alert("hedge_dust", f"cycle {cycle.cycle_id}: net {net} is below both venues' lot"))
        if cycle.filled == 0 and not cycle.orders_of(Role.CORRECT):
            cycle.outcome = Outcome.NO_FILL
        elif back_on_primary > 0:
            cycle.outcome = Outcome.UNWOUND
        else:
            cycle.outcome = Outcome.CLEAN
        return alerts

    # ---- helpers -------------------------------------------------------------------------------
    def _count_failure(self, cycle: Cycle, role: Role) -> None:
        if role is Role.HEDGE:
            cycle.hedge_failures += 1
        elif role is Role.UNWIND:
            cycle.unwind_failures += 1

    def _cancel_maker(self, cycle: Cycle, now: datetime, reason: str) -> list[Action]:
        maker = cycle.maker
        if maker is None or maker.terminal or maker.cancel_requested_at is not None:
            return []
        maker.cancel_requested_at = now
        return [Cancel(maker.order_id, reason)]

    def _taker_price(
        self, market: MarketInfo, side: Side, top: Top | None, fallback: Decimal, band: Decimal, now: datetime
    ) -> Decimal:
        fresh = top is not None and (now - top.ts).total_seconds() <= self.cfg.max_book_age_seconds
        touch = fallback if not fresh or top is None else (top.ask if side is Side.BUY else top.bid)
        return taker_limit(market, side, touch, band)

    def _maker_timer(self, cycle: Cycle, maker: LegOrder, snap: Snapshot, now: datetime) -> list[Action]:
        if maker.cancel_requested_at is not None:
            if now - maker.cancel_requested_at < timedelta(seconds=self.cfg.hedge_timeout_seconds):
                return []
            maker.cancel_requested_at = now  # no answer to the cancel: ask again (cancels are idempotent)
            return [Cancel(maker.order_id, "cancel unanswered, repeated")]
        if now - maker.sent_at >= timedelta(seconds=self.cfg.maker_ttl_seconds):
            return self._cancel_maker(cycle, now, "maker time to live")
        top, hedge_top = snap.primary_top, snap.hedge_top
        if maker.filled > 0 or top is None or hedge_top is None:
            return []
        touch = top.bid if maker.side is Side.BUY else top.ask
        step = self.cfg.requote_ticks if maker.side is Side.BUY else -self.cfg.requote_ticks
        if (maker.side is Side.BUY and touch >= ticks_away(snap.primary, maker.price, step)) or (
            maker.side is Side.SELL and touch <= ticks_away(snap.primary, maker.price, step)
        ):
            return self._cancel_maker(cycle, now, "the touch moved away")
        hedge_touch = hedge_top.bid if maker.side is Side.BUY else hedge_top.ask
        edge, _ = expected_edge_bps(self.cfg, maker.side, maker.price, hedge_touch, snap.primary, snap.hedge)
        if edge < self.cfg.min_edge_bps:
            return self._cancel_maker(cycle, now, f"edge {edge:.2f} bps below {self.cfg.min_edge_bps}")
        return []

    def _taker_timer(self, cycle: Cycle, order: LegOrder, now: datetime) -> list[Action]:
        timeout = timedelta(seconds=self.cfg.hedge_timeout_seconds)
        if order.cancel_requested_at is None:
            if now - order.sent_at >= timeout:
                order.cancel_requested_at = now
                return [Cancel(order.order_id, f"{order.role.value} timeout")]
            return []
        if now - order.cancel_requested_at < timeout:
            return []
        order.terminal, order.lost, order.final_state = True, True, "lost"
        self._count_failure(cycle, order.role)
        cycle.reason += f"; {order.role.value} {order.order_id} lost (no answer)"
        cycle.status = Status.VERIFYING  # its fate is read from positions, never guessed
        cycle.verify_started_at = now
        return [Alert("hedge_order_lost", f"cycle {cycle.cycle_id}: {order.role.value} {order.order_id} unanswered")]
