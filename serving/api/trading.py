"""Trading endpoints: GET /positions, GET /orders, GET /trading/status (open, read-only) and
POST /kill, POST /resume (authenticated).

Authentication: the `X-API-Key` header must equal `ALPHATIDE_API_KEY` (compared in constant time with
`hmac.compare_digest`, so response timing does not reveal how much of a guess was right). Missing or
wrong key: 401. No key configured: the control endpoints refuse with 503 and say why; they are never
open by default.

The engine is read from `request.app.state.trading_engine` (set by `serving.engine.trading_lifespan`);
when it is absent every endpoint answers 503 with the reason.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field, SecretStr

from serving.engine.engine import TradingEngine
from serving.engine.leadership import engine_role
from serving.engine.status import EngineStatus

API_KEY_HEADER = "X-API-Key"
_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="ALPHATIDE_API_KEY")


class PositionOut(BaseModel):
    symbol: str
    size: Decimal = Field(description="Base units held (long; spot).")
    entry_price: Decimal
    mark: Decimal | None = Field(description="Bid (exit price of a long) or last trade; None before market data.")
    unrealized_pnl: Decimal | None = Field(description="Quote currency, fees excluded.")
    opened_at: datetime
    exiting: bool
    strategy_id: str = Field("", description="The strategy that holds it.")
    venue: str = Field("", description="Its venue ('' = the engine's default one).")


class OrderOut(BaseModel):
    client_order_id: str
    venue_order_id: str | None
    symbol: str
    side: str
    kind: str
    purpose: str
    price: Decimal
    size: Decimal
    filled: Decimal
    average_price: Decimal | None
    fees: Decimal
    state: str
    created_at: datetime
    closed_at: datetime | None
    reject_reason: str | None
    strategy_id: str = Field("", description="The strategy that sent it.")
    venue: str = ""
    tag: str = ""


class DecisionOut(BaseModel):
    ts: datetime
    symbol: str
    action: str
    reason: str
    strategy_id: str = ""


class StrategyOut(BaseModel):
    strategy_id: str
    kind: str
    allocation: Decimal | None = Field(description="Quote currency; None = the whole account.")
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    exposure: Decimal
    open_positions: int
    live_orders: int
    entries_allowed: bool
    reason: str
    shadow_live_pnl: Decimal | None = Field(
        default=None, description="PnL of the strategy's fills as the venue reported them (serving.engine.shadow)")
    shadow_simulated_pnl: Decimal | None = Field(
        default=None, description="PnL of the same orders in the shadow's simulated fill model")
    pnl_gap: float | None = Field(default=None, description="|live - simulated| / max(|simulated|, floor)")


class VenueOut(BaseModel):
    venue: str = Field(description='Key of the venue ("" = the default venue; else its ALPHATIDE_VENUES name).')
    broker: str = Field(description="paper, or live:<ccxt id>.")
    clean_started: bool
    live_orders: int


class TradingStatusOut(BaseModel):
    mode: str
    running: bool
    accepting_entries: bool
    entries_allowed: bool
    manual_kill: bool
    pause_file: str
    pause_file_present: bool
    halted: bool
    active_switches: list[str]
    reasons: list[str]
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
    recent_decisions: list[DecisionOut]
    strategies: list[StrategyOut] = Field(default_factory=list)
    clean_started: bool = True
    reconciled: bool = True
    venues: list[VenueOut] = Field(default_factory=list)
    engine: Literal["active"] = Field("active", description="This replica runs the trading engine.")


class StandbyStatusOut(BaseModel):
    """A serving replica that does not run the engine now (serving.engine.leadership)."""

    engine: Literal["standby", "starting", "off"] = Field(
        description="standby: another replica holds the leader lease; starting: recovering to take over"
    )
    mode: str
    running: bool = False
    holder: str | None = Field(None, description="The process holding the leader lease, when known.")


class KillRequest(BaseModel):
    reason: str = Field("manual kill via API", max_length=500)


def _status_out(status: EngineStatus) -> TradingStatusOut:
    return TradingStatusOut(
        mode=status.mode,
        running=status.running,
        accepting_entries=status.accepting_entries,
        entries_allowed=status.entries_allowed,
        manual_kill=status.manual_kill,
        pause_file=status.pause_file,
        pause_file_present=status.pause_file_present,
        halted=status.halted,
        active_switches=list(status.active_switches),
        reasons=list(status.reasons),
        paused_until=status.paused_until,
        equity=status.equity,
        cash=status.cash,
        day_start_equity=status.day_start_equity,
        peak_equity=status.peak_equity,
        kelly_fraction=status.kelly_fraction,
        deployment_phase=status.deployment_phase,
        open_positions=status.open_positions,
        live_orders=status.live_orders,
        dropped_events=status.dropped_events,
        last_reconcile=status.last_reconcile,
        recent_decisions=[
            DecisionOut(ts=d.ts, symbol=d.symbol, action=d.action, reason=d.reason, strategy_id=d.strategy_id)
            for d in status.recent_decisions
        ],
        strategies=[StrategyOut(**vars(s)) for s in status.strategies],
        clean_started=status.clean_started,
        reconciled=status.reconciled,
        venues=[VenueOut(**vars(v)) for v in status.venues],
    )


def _engine(request: Request) -> TradingEngine:
    engine: TradingEngine | None = getattr(request.app.state, "trading_engine", None)
    if engine is None:
        role, holder = engine_role(request.app.state)
        if role != "off":
            raise HTTPException(503, f"trading engine is on {role} here; the active replica is {holder or 'unknown'}")
        raise HTTPException(503, "trading engine is not running (disabled or not started)")
    return engine


def _mode(request: Request) -> str:
    deps = getattr(request.app.state, "deps", None)
    return str(deps.settings.engine.mode) if deps is not None else "unknown"


def key_matches(provided: str, expected: SecretStr) -> bool:
    """Constant-time comparison of the presented key with the configured one."""
    return hmac.compare_digest(provided.encode(), expected.get_secret_value().encode())


def trading_router(api_key: SecretStr | None) -> APIRouter:
    """The router; `api_key` is `settings.api_key` (None: control endpoints refuse with 503)."""
    router = APIRouter(tags=["trading"])
    _read_routes(router)
    _control_routes(router, api_key)
    return router


def _read_routes(router: APIRouter) -> None:
    """GET /positions, GET /orders, GET /trading/status (open, read-only)."""

    @router.get("/positions", response_model=list[PositionOut], responses={503: {}})
    def positions(request: Request) -> list[PositionOut]:
        engine = _engine(request)
        return [
            PositionOut(
                symbol=p.symbol,
                size=p.size,
                entry_price=p.entry_price,
                mark=p.mark,
                unrealized_pnl=p.unrealized_pnl,
                opened_at=p.opened_at,
                exiting=p.exiting,
                strategy_id=p.strategy_id,
                venue=p.venue,
            )
            for p in engine.position_snapshots()
        ]

    @router.get("/orders", response_model=list[OrderOut], responses={503: {}})
    def orders(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000, description="Newest first.")] = 100,
        live_only: Annotated[bool, Query(description="Only orders not yet in a final state.")] = False,
        strategy: Annotated[str | None, Query(max_length=48, description="Only this strategy's orders.")] = None,
    ) -> list[OrderOut]:
        engine = _engine(request)
        try:
            stored = engine.store.load_orders(live_only=live_only, limit=limit, strategy_id=strategy)
        except Exception as exc:  # the store is down: say so rather than 500
            raise HTTPException(503, f"trading store unavailable: {type(exc).__name__}") from exc
        return [
            OrderOut(
                client_order_id=s.order.client_order_id,
                venue_order_id=s.order.venue_order_id,
                symbol=s.order.symbol,
                side=s.order.side.value,
                kind=s.order.kind.value,
                purpose=s.purpose,
                price=s.order.price,
                size=s.order.size,
                filled=s.order.filled,
                average_price=s.order.average_price,
                fees=s.order.fees,
                state=s.order.state.value,
                created_at=s.order.created_at,
                closed_at=s.order.closed_at,
                reject_reason=s.order.reject_reason,
                strategy_id=s.strategy_id,
                venue=s.venue,
                tag=s.tag,
            )
            for s in stored
        ]

    @router.get("/trading/status", response_model=TradingStatusOut | StandbyStatusOut, responses={503: {}})
    def trading_status(request: Request) -> TradingStatusOut | StandbyStatusOut:
        """The engine's status; a replica on standby answers who holds the leader lease."""
        role, holder = engine_role(request.app.state)
        engine = getattr(request.app.state, "trading_engine", None)
        if engine is None and role in ("standby", "starting"):
            return StandbyStatusOut(engine=role, mode=_mode(request), holder=holder)  # type: ignore[arg-type]
        return _status_out(_engine(request).status())


def _control_routes(router: APIRouter, api_key: SecretStr | None) -> None:
    """POST /kill, POST /resume (authenticated with the X-API-Key header)."""

    def require_key(provided: Annotated[str | None, Depends(_api_key_header)]) -> None:
        if api_key is None or not api_key.get_secret_value():
            raise HTTPException(503, "no API key configured (set ALPHATIDE_API_KEY): control endpoints are disabled")
        if provided is None or not key_matches(provided, api_key):
            raise HTTPException(
                401, f"missing or wrong {API_KEY_HEADER} header", headers={"WWW-Authenticate": "ApiKey"}
            )

    @router.post(
        "/kill",
        response_model=TradingStatusOut,
        dependencies=[Depends(require_key)],
        responses={401: {}, 503: {}},
    )
    def kill(request: Request, body: KillRequest | None = None) -> TradingStatusOut:
        """Stop new entries and cancel resting entry orders at once (exits keep working) until POST /resume."""
        engine = _engine(request)
        return _status_out(engine.kill((body or KillRequest()).reason))

    @router.post(
        "/resume",
        response_model=TradingStatusOut,
        dependencies=[Depends(require_key)],
        responses={401: {}, 503: {}},
    )
    def resume(request: Request) -> TradingStatusOut:
        """Clear the API kill and the drawdown halt (timed pauses and the pause file still apply)."""
        return _status_out(_engine(request).resume())
