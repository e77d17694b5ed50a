"""The two-venue delta-neutral hedge (SPEC 13) as a `Strategy` on the engine's interface.

The cycle logic is the pure state machine of `pipelines.trading.hedge` (see `machine.py`); this class
only feeds it: it builds a `Snapshot` of both venues from the context (each venue's own `MarketInfo`
via `ctx.instrument`, its book, this strategy's position), carries out the machine's actions through
`ctx.submit` / `ctx.cancel` / `ctx.alert`, and persists phase, counters and the open cycle through
`ctx.save_state` after every event, so a `kill -9` loses nothing: on restart the open cycle is finished
(from positions) before anything new is quoted.

Orders: the maker is `OrderIntent(style=LIMIT, post_only=True, venue=cfg.primary_venue)`; hedges,
unwinds and corrections are `LIMIT` + `TimeInForce.IOC` with `is_exit=True` (they reduce exposure, so
no kill switch may block them mid-cycle), `tag` = "hedge-<role>".

Between cycles the strategy checks that the sum of its two positions has not drifted from what it was
when the strategy first started (a fill that landed after its cycle closed); a drift is corrected
before the next quote. A cycle that ends with a non-zero net halts the strategy (alert
`hedge_imbalance`); `resume()` clears the halt.

No cycle opens while any order is open on either market outside a cycle (an order left by an earlier
run once filled mid-cycle and unbalanced the seed's hedge): the engine's clean start and stale-order
sweep cancel it first.

Hedge venue balance: read through `ctx.available_balance(venue, asset)` when the context provides it
(an optional extension of `StrategyContext`), otherwise this strategy's portfolio equity.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pipelines.trading.hedge.config import HedgeConfig
from pipelines.trading.hedge.cycle import Cycle, LegFill, Role, Status
from pipelines.trading.hedge.machine import PRIMARY, Action, Alert, Cancel, HedgeMachine, Place, Snapshot, Top, is_dust
from pipelines.trading.hedge.phases import Outcome, PhaseState, record_outcome
from pipelines.trading.hedge.quote import drift_cycle, plan_quote
from pipelines.trading.hedge.records import CycleRecord
from serving.engine.events import BookEvent, SignalEvent, TradeEvent
from serving.engine.strategy import (
    ExecutionStyle,
    FillEvent,
    OrderIntent,
    OrderUpdate,
    StrategyContext,
    TimeInForce,
)
from serving.strategies import hedge_metrics

log = logging.getLogger(__name__)

RecordSink = Callable[[CycleRecord], None]
_MAX_ACTION_ROUNDS = 32


class HedgeStrategy:
    """See the module docstring. `sinks` receive every finished cycle's record (e.g. a `RecordWriter`)."""

    def __init__(self, strategy_id: str, cfg: HedgeConfig, sinks: Sequence[RecordSink] = ()) -> None:
        self.strategy_id = strategy_id
        self.cfg = cfg
        self.machine = HedgeMachine(cfg)
        self.sinks = list(sinks)
        self.phase = PhaseState()
        self.cycle: Cycle | None = None
        self.halted = ""
        self.anchor_net: Decimal | None = None
        self.records: deque[CycleRecord] = deque(maxlen=1000)
        self.last_reason = ""
        self._cooldown_until: datetime | None = None
        self._recover_pending = False
        self._started_at: datetime | None = None
        self._closed_orders: dict[str, Decimal] = {}  # order id -> filled, of recently closed cycles
        self._closed_fills: deque[str] = deque(maxlen=1024)
        self._early: list[FillEvent | OrderUpdate] | None = None  # events met inside our own submit
        self._quoted = self._filled = 0

    # ---- Strategy protocol ---------------------------------------------------------------------
    def on_start(self, ctx: StrategyContext) -> None:
        self._load(ctx.state())
        self._started_at = ctx.now()
        if self.cycle is not None and self.cycle.status is not Status.DONE:
            self._recover_pending = True
            ctx.record("recover", f"cycle {self.cycle.cycle_id} open at start: finish it from positions")
        elif self.cycle is not None:
            self.cycle = None
        self._tick(ctx)

    def on_book(self, ctx: StrategyContext, event: BookEvent) -> None:
        if event.venue in (self.cfg.primary_venue, self.cfg.hedge_venue):
            self._tick(ctx)

    def on_trade(self, ctx: StrategyContext, event: TradeEvent) -> None:
        return None

    def on_signal(self, ctx: StrategyContext, event: SignalEvent) -> None:
        return None

    def on_timer(self, ctx: StrategyContext, now: datetime) -> None:
        self._tick(ctx)

    def on_fill(self, ctx: StrategyContext, fill: FillEvent) -> None:
        cycle = self.cycle
        if self._early is not None and (cycle is None or fill.order_id not in cycle.orders):
            self._early.append(fill)  # of the order being submitted right now (see `_place`)
            return
        if cycle is None or fill.order_id not in cycle.orders:
            if fill.fill.fill_id not in self._closed_fills:  # a repeat of a known fill is no news
                self._stray(ctx, fill.order_id, f"fill {fill.fill.fill_id} of {fill.fill.size}")
            return
        f = fill.fill
        leg = LegFill(f.fill_id, f.size, f.price, f.fee, f.ts)
        now = ctx.now()
        self._run(ctx, self.machine.on_fill(cycle, fill.order_id, leg, self._snapshot(ctx), now))

    def on_order_update(self, ctx: StrategyContext, update: OrderUpdate) -> None:
        cycle = self.cycle
        if self._early is not None and (cycle is None or update.order_id not in cycle.orders):
            self._early.append(update)
            return
        if cycle is None or update.order_id not in cycle.orders:
            if update.filled > self._closed_orders.get(update.order_id, update.filled):
                self._stray(ctx, update.order_id, f"update {update.state} filled {update.filled}")
            return
        snap = self._snapshot(ctx)
        self._run(ctx, self.machine.on_update(cycle, update.order_id, update.state, update.filled, snap, ctx.now()))

    def on_stop(self, ctx: StrategyContext) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.maker_live:
            maker = cycle.maker
            if maker is not None and maker.cancel_requested_at is None:
                maker.cancel_requested_at = ctx.now()
                ctx.cancel(maker.order_id, "strategy stopping")
        self._save(ctx)

    # ---- operator ------------------------------------------------------------------------------
    def resume(self, ctx: StrategyContext) -> None:
        self.halted = ""
        self._save(ctx)

    def status(self) -> dict[str, Any]:
        return {
            "strategy_id": self.strategy_id,
            "phase_index": self.phase.index,
            "phase_notional": str(self.phase.notional(self.cfg)),
            "clean_streak": self.phase.clean_streak,
            "failure_streak": self.phase.failure_streak,
            "halted": self.halted,
            "open_cycle": self.cycle.to_dict() if self.cycle else None,
            "last_reason": self.last_reason,
        }

    # ---- the loop ------------------------------------------------------------------------------
    def _tick(self, ctx: StrategyContext) -> None:
        now = ctx.now()
        snap = self._snapshot(ctx)
        if self.cycle is not None and self._recover_pending:
            waited = now - (self._started_at or now)
            if not self._books_fresh(snap, now) and waited < timedelta(seconds=self.cfg.recovery_wait_seconds):
                return  # correct at a current price, not at the one persisted before the crash
            self._recover_pending = False
            self._run(ctx, self.machine.recover(self.cycle, snap, now))
            return
        if self.cycle is not None:
            self._run(ctx, self.machine.on_timer(self.cycle, snap, now))
            return
        self._maybe_open(ctx, snap, now)

    def _maybe_open(self, ctx: StrategyContext, snap: Snapshot, now: datetime) -> None:
        if self.halted or (self._cooldown_until is not None and now < self._cooldown_until):
            return
        total = snap.primary_position + snap.hedge_position
        if self.anchor_net is None:
            self.anchor_net = total
            self._save(ctx)
        drift = total - self.anchor_net
        if drift != 0 and not is_dust(snap, drift):
            self.cycle = drift_cycle(self._new_id(now), self.phase, self.cfg, snap, drift, now)
            ctx.alert("hedge_imbalance", f"{self.strategy_id}: net drift {drift} between cycles, correcting")
            self._run(ctx, self.machine.advance(self.cycle, snap, now))
            return
        stray = ctx.open_orders(self.cfg.primary_symbol, self.cfg.primary_venue)
        stray += ctx.open_orders(self.cfg.hedge_symbol, self.cfg.hedge_venue)
        if stray:  # an order nobody is hedging (an earlier run's) could fill mid-cycle: wait for the sweep
            self._note(ctx, "hold", f"{len(stray)} open order(s) on the hedge's markets: {stray[0].order_id}")
            return
        allowed, why = ctx.entries_allowed(self.cfg.primary_symbol)
        if not allowed:
            self._note(ctx, "hold", f"entries not allowed: {why}")
            return
        decision = plan_quote(self.cfg, self._new_id(now), self.phase, snap, self._hedge_balance(ctx), now)
        if decision.cycle is None or decision.action is None:
            self._note(ctx, "hold", decision.reason)
            return
        self.cycle = decision.cycle
        self._quoted += 1
        self._run(ctx, [decision.action])

    def _run(self, ctx: StrategyContext, actions: list[Action]) -> None:
        """Carry out the machine's actions (a refused order may produce more), then close and persist."""
        work = list(actions)
        rounds = 0
        while work and rounds < _MAX_ACTION_ROUNDS:
            rounds += 1
            action = work.pop(0)
            if isinstance(action, Place):
                work += self._place(ctx, action)
            elif isinstance(action, Cancel):
                ctx.cancel(action.order_id, action.reason)
            elif isinstance(action, Alert):
                ctx.alert(action.kind, action.message)
        if self.cycle is not None and self.cycle.status is Status.DONE:
            self._close(ctx)
        self._save(ctx)

    def _place(self, ctx: StrategyContext, action: Place) -> list[Action]:
        cycle = self.cycle
        assert cycle is not None
        maker = action.role is Role.MAKER
        venue = self.cfg.primary_venue if action.venue == PRIMARY else self.cfg.hedge_venue
        symbol = self.cfg.primary_symbol if action.venue == PRIMARY else self.cfg.hedge_symbol
        intent = OrderIntent(
            symbol=symbol,
            side=action.side,
            size=action.size,
            price=action.price,
            style=ExecutionStyle.LIMIT,
            post_only=action.post_only,
            time_in_force=TimeInForce.GTC if maker else TimeInForce.IOC,
            is_exit=not maker,
            venue=venue,
            tag=f"hedge-{action.role.value}",
        )
        now = ctx.now()
        # A venue that answers an IOC with its fills (or its end) makes the engine report them inside
        # `submit`, before this order id is known to the cycle: hold them, feed them after `placed`.
        self._early = []
        try:
            result = ctx.submit(intent)
        finally:
            early, self._early = self._early, None
        if result.accepted and result.order_id:
            self.machine.placed(cycle, action, result.order_id, result.size or action.size, now)
            ctx.record(f"{action.role.value}-sent", f"{action.side} {action.size} @ {action.price} on {venue}", symbol)
            return self._replay(ctx, cycle, early)
        ctx.record(f"{action.role.value}-refused", result.reason, symbol)
        return self.machine.refused(cycle, action, result.reason or "refused", self._snapshot(ctx), now)

    def _replay(self, ctx: StrategyContext, cycle: Cycle, early: list[FillEvent | OrderUpdate]) -> list[Action]:
        actions: list[Action] = []
        for event in early:
            if event.order_id not in cycle.orders:
                self._stray(ctx, event.order_id, f"{type(event).__name__} during its own submit")
            elif isinstance(event, FillEvent):
                f = event.fill
                leg = LegFill(f.fill_id, f.size, f.price, f.fee, f.ts)
                actions += self.machine.on_fill(cycle, event.order_id, leg, self._snapshot(ctx), ctx.now())
            else:
                snap = self._snapshot(ctx)
                actions += self.machine.on_update(cycle, event.order_id, event.state, event.filled, snap, ctx.now())
        return actions

    def _close(self, ctx: StrategyContext) -> None:
        cycle = self.cycle
        assert cycle is not None and cycle.outcome is not None
        record = CycleRecord.from_cycle(
            self.strategy_id,
            cycle,
            (self.cfg.primary_symbol, self.cfg.hedge_symbol),
            (self.cfg.primary_venue, self.cfg.hedge_venue),
        )
        self.records.append(record)
        self._closed_orders.update({o.order_id: o.filled for o in cycle.orders.values()})
        while len(self._closed_orders) > 256:
            self._closed_orders.pop(next(iter(self._closed_orders)))
        self._closed_fills.extend(cycle.fill_ids)
        if cycle.filled > 0:
            self._filled += 1
        if cycle.outcome is Outcome.FAILED:
            self.halted = f"cycle {cycle.cycle_id} left net {record.net_after}"
            ctx.alert("hedge_imbalance", f"{self.strategy_id}: halted, {self.halted}")
        self.phase, change = record_outcome(self.phase, cycle.outcome, self.cfg)
        if change is not None:
            ctx.alert(
                "phase_change",
                f"{self.strategy_id}: phase {change.direction} {change.old_notional} -> {change.new_notional}",
            )
        ctx.record("cycle", f"{cycle.cycle_id} {cycle.outcome.value}: {cycle.reason}".rstrip(": "))
        self.cycle = None
        self._cooldown_until = ctx.now() + timedelta(seconds=self.cfg.cooldown_seconds)
        for sink in [hedge_metrics.observe_cycle, *self.sinks]:
            try:
                sink(record)
            except Exception:  # a sink must never break the trading loop
                log.exception("hedge: record sink failed")
        rate = self._filled / self._quoted if self._quoted else None
        hedge_metrics.observe_state(self.strategy_id, float(self.phase.notional(self.cfg)), rate, bool(self.halted))

    # ---- context reads ---------------------------------------------------------------------------
    def _snapshot(self, ctx: StrategyContext) -> Snapshot:
        cfg = self.cfg
        return Snapshot(
            primary=ctx.instrument(cfg.primary_symbol, cfg.primary_venue),
            hedge=ctx.instrument(cfg.hedge_symbol, cfg.hedge_venue),
            primary_top=_top(ctx.book(cfg.primary_symbol, cfg.primary_venue)),
            hedge_top=_top(ctx.book(cfg.hedge_symbol, cfg.hedge_venue)),
            primary_position=ctx.position(cfg.primary_symbol, cfg.primary_venue),
            hedge_position=ctx.position(cfg.hedge_symbol, cfg.hedge_venue),
        )

    def _books_fresh(self, snap: Snapshot, now: datetime) -> bool:
        age = self.cfg.max_book_age_seconds
        return all(t is not None and (now - t.ts).total_seconds() <= age for t in (snap.primary_top, snap.hedge_top))

    def _hedge_balance(self, ctx: StrategyContext) -> Decimal | None:
        reader = getattr(ctx, "available_balance", None)
        if callable(reader):
            value = reader(self.cfg.hedge_venue, self.cfg.hedge_balance_asset)
            return value if isinstance(value, Decimal) or value is None else Decimal(str(value))
        return ctx.portfolio().equity

    def _stray(self, ctx: StrategyContext, order_id: str, what: str) -> None:
        if order_id in self._closed_orders:
            ctx.alert("hedge_late_fill", f"{self.strategy_id}: {what} on {order_id} after its cycle closed")

    def _note(self, ctx: StrategyContext, action: str, reason: str) -> None:
        if reason != self.last_reason:
            self.last_reason = reason
            ctx.record(action, reason, self.cfg.primary_symbol)

    def _new_id(self, now: datetime) -> str:
        return f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:10]}"

    # ---- persistence ------------------------------------------------------------------------------
    def _save(self, ctx: StrategyContext) -> None:
        ctx.save_state(
            {
                "phase": json.dumps(self.phase.to_dict()),
                "cycle": json.dumps(self.cycle.to_dict()) if self.cycle is not None else "",
                "halted": self.halted,
                "anchor_net": "" if self.anchor_net is None else str(self.anchor_net),
            }
        )

    def _load(self, state: Mapping[str, str]) -> None:
        if state.get("phase"):
            self.phase = PhaseState.from_dict(json.loads(state["phase"]), self.cfg)
        self.cycle = Cycle.from_dict(json.loads(state["cycle"])) if state.get("cycle") else None
        self.halted = state.get("halted", "")
        self.anchor_net = Decimal(state["anchor_net"]) if state.get("anchor_net") else None


def _top(book: BookEvent | None) -> Top | None:
    return None if book is None else Top(book.bid, book.ask, book.ts)


def build_hedge(
    strategy_id: str, cfg: HedgeConfig | Mapping[str, Any], sinks: Sequence[RecordSink] = ()
) -> HedgeStrategy:
    """Factory for the engine's kind -> factory registry (kind "hedge")."""
    config = cfg if isinstance(cfg, HedgeConfig) else HedgeConfig.model_validate(dict(cfg))
    return HedgeStrategy(strategy_id, config, sinks)


__all__ = ["HedgeStrategy", "build_hedge"]
