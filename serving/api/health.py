"""GET /health: universe, champion, online store and market-data connections (ok or degraded)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from serving.deps import ServingDeps
from serving.engine.leadership import engine_role
from serving.stream.window_signal import WindowSignalStatus


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    champion_version: str | None
    universe_date: str | None
    universe_size: int
    problems: list[str]
    stream_source: str = Field("off", description="stream.source: off, ccxt or replay")
    stream_connected: dict[str, bool] = Field(default_factory=dict, description="Per market-data source")
    online_store_error: str | None = None
    champion_tower: str | None = Field(None, description="tabular or fused (None without a champion)")
    champion_tradeable: bool | None = Field(None, description="False: signals only, never traded")
    engine: Literal["active", "starting", "standby", "off"] = Field(
        "off", description="This replica's trading engine: active, starting (taking over), standby or off"
    )
    engine_holder: str | None = Field(None, description="The replica holding the leader lease (replicas only)")
    window_signal: WindowSignalStatus | None = Field(
        None, description="The window model's signal (None while the stream is off)"
    )


def health_router(deps: ServingDeps) -> APIRouter:
    router = APIRouter()

    @router.get("/health", response_model=Health)
    def health(request: Request) -> Health:
        problems = []
        symbols, day = deps.universe.get()
        if not symbols:
            problems.append("no universe")
        champion = deps.scorer.current()
        if champion is None:
            problems.append("no champion model")
        latest = deps.latest
        if latest.store_error is not None:
            problems.append(latest.store_error)
        stream = request.app.state.stream
        connected = dict(stream.feed.connected) if stream is not None and stream.feed is not None else {}
        if stream is not None and not all(connected.values()):
            problems.append("market data disconnected: " + ", ".join(k for k, v in connected.items() if not v))
        if stream is not None and (stale := stream.pipeline.freshness.problem()) is not None:
            problems.append(stale)  # only trades and book updates count, not subscription acks
        window = getattr(request.app.state, "window_signal", None)
        window_status = window.status() if window is not None else None
        if window_status is not None and window_status.state in ("refused", "no_champion"):
            problems.append(f"window signal: {window_status.reason}")  # a window strategy waits for it
        role, holder = engine_role(request.app.state)
        return Health(
            status="ok" if not problems else "degraded",
            champion_version=champion.ref.version if champion else None,
            universe_date=day,
            universe_size=len(symbols),
            problems=problems,
            stream_source=deps.settings.stream.source,
            stream_connected=connected,
            online_store_error=latest.store_error,
            champion_tower=deps.scorer.tower,
            champion_tradeable=champion.tradeable if champion else None,
            engine=role,
            engine_holder=holder,
            window_signal=window_status,
        )

    return router
