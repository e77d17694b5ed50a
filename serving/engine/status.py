"""What the engine reports: decisions, positions and its status (account-wide and per strategy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.engine.engine import TradingEngine


@dataclass(frozen=True)
class Decision:
    """One entry/exit decision or refusal, for the log and the status endpoint."""

    ts: datetime
    symbol: str
    action: str
    reason: str
    strategy_id: str = ""


@dataclass(frozen=True)
class PositionSnapshot:
    symbol: str
    size: Decimal
    entry_price: Decimal
    mark: Decimal | None
    unrealized_pnl: Decimal | None
    opened_at: datetime
    exiting: bool
    strategy_id: str = ""
    venue: str = ""
    side: str = "buy"


@dataclass(frozen=True)
class StrategyStatus:
    strategy_id: str
    kind: str
    allocation: Decimal | None
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    exposure: Decimal
    open_positions: int
    live_orders: int
    entries_allowed: bool
    reason: str
    shadow_live_pnl: Decimal | None = None  # the shadow's books (serving.engine.shadow), when one is installed
    shadow_simulated_pnl: Decimal | None = None
    pnl_gap: float | None = None


@dataclass(frozen=True)
class VenueStatus:
    """One venue of the engine: its key ("" = the default venue), broker, clean start and live orders."""

    venue: str
    broker: str
    clean_started: bool
    live_orders: int


@dataclass(frozen=True)
class EngineStatus:
    mode: str
    running: bool
    accepting_entries: bool
    manual_kill: bool
    pause_file: str
    pause_file_present: bool
    halted: bool
    entries_allowed: bool
    active_switches: tuple[str, ...]
    reasons: tuple[str, ...]
    paused_until: datetime | None
    equity: Decimal
    cash: Decimal
    day_start_equity: Decimal
    peak_equity: Decimal
    kelly_fraction: float
    deployment_phase: int | None
    open_positions: int
    live_orders: int
    dropped_events: int
    last_reconcile: datetime | None
    recent_decisions: tuple[Decision, ...] = field(default_factory=tuple)
    strategies: tuple[StrategyStatus, ...] = field(default_factory=tuple)
    clean_started: bool = True
    reconciled: bool = True
    venues: tuple[VenueStatus, ...] = field(default_factory=tuple)


def strategy_statuses(engine: TradingEngine) -> tuple[StrategyStatus, ...]:
    out = []
    p = engine.portfolio
    shadow = getattr(engine, "shadow", None)
    pairs = {pair.strategy_id: pair for pair in shadow.pairs()} if shadow is not None else {}
    floor = Decimal(repr(engine.trading.kill.pnl_gap_floor_quote))
    for sid in engine.strategies:
        limits = engine.current_limits(sid)
        live = sum(
            1
            for ex in engine.executions.values()
            for t in ex.tracked.values()
            if t.strategy_id == sid and t.order.is_live
        )
        out.append(
            StrategyStatus(
                strategy_id=sid,
                kind=engine.kinds.get(sid, ""),
                allocation=p.allocations.get(sid),
                equity=p.strategy_equity(sid),
                realized_pnl=p.realized.get(sid, Decimal(0)),
                unrealized_pnl=p.strategy_unrealized(sid),
                exposure=p.exposure(sid),
                open_positions=len(p.of(sid)),
                live_orders=live,
                entries_allowed=limits.allowed,
                reason=limits.reason,
                **_shadow_fields(pairs.get(sid), floor),
            )
        )
    return tuple(out)


def engine_status(engine: TradingEngine) -> EngineStatus:
    risk = engine.risk
    verdict = risk.last_verdict
    gate = risk.gate(engine.executions.values())
    kelly = getattr(engine.strategies.get(engine.default_strategy), "kelly", None)
    return EngineStatus(
        mode=engine.broker.name,
        running=engine.running,
        accepting_entries=risk.accepting_entries,
        manual_kill=risk.manual_kill,
        pause_file=str(engine.pause_file),
        pause_file_present=engine.pause_file.exists(),
        halted=risk.guard.state.halted,
        entries_allowed=bool(verdict and verdict.allow_entries and gate is None),
        active_switches=tuple(sorted(s.value for s in verdict.active)) if verdict else (),
        reasons=((gate,) if gate else ()) + (verdict.reasons if verdict else ()),
        paused_until=verdict.paused_until if verdict else None,
        equity=engine.equity(),
        cash=engine.cash,
        day_start_equity=risk.day_start_equity,
        peak_equity=risk.peak_equity,
        kelly_fraction=float(kelly.fraction) if kelly is not None else 0.0,
        deployment_phase=engine.trading.kill.deployment.active_phase,
        open_positions=len(engine.portfolio.positions),
        live_orders=sum(len(ex.live_orders()) for ex in engine.executions.values()),
        dropped_events=engine.dropped,
        last_reconcile=engine.last_reconcile,
        recent_decisions=tuple(list(engine.decisions)[-20:]),
        strategies=strategy_statuses(engine),
        clean_started=all(ex.clean_started for ex in engine.executions.values()),
        reconciled=risk.reconciled,
        venues=tuple(
            VenueStatus(v, ex.broker.name, ex.clean_started, len(ex.live_orders()))
            for v, ex in sorted(engine.executions.items())
        ),
    )


def position_snapshots(engine: TradingEngine) -> list[PositionSnapshot]:
    p = engine.portfolio
    out = []
    for pos in p.positions.values():
        ex = engine.executions.get(pos.venue)
        exiting = ex is not None and ex.working(pos.strategy_id, pos.symbol, "exit")
        out.append(
            PositionSnapshot(
                pos.symbol,
                pos.size,
                pos.entry_price,
                p.mark(pos.venue, pos.symbol, pos.side),
                p.unrealized(pos),
                pos.opened_at,
                exiting,
                pos.strategy_id,
                pos.venue,
                pos.side.value,
            )
        )
    return sorted(out, key=lambda s: (s.symbol, s.strategy_id, s.venue))


def _shadow_fields(pair: object, floor: Decimal) -> dict[str, Any]:
    from serving.engine.shadow import PnlPair

    if not isinstance(pair, PnlPair):
        return {}
    return {"shadow_live_pnl": pair.live, "shadow_simulated_pnl": pair.simulated, "pnl_gap": pair.gap(floor)}
