"""The FastAPI app of the serving tier.

HTTP: `GET /signal`, `GET /hot`, `GET /health`, `GET /metrics`, `GET /ws/signals/schema`, and the trading
router of `serving.api_trading` (`/positions`, `/orders`, `/kill`, `/resume`, ...); WebSocket:
`/ws/signals` (message schemas in `serving.messages`).

`create_app(settings)` wires the real adapters: the MLflow registry (read without the SDK when embedded,
`pipelines.registry.serving_registry`), Feast's online store (read and written directly,
`pipelines.online_store`), the lake's universe table. Neither SDK is imported by this process (memory:
DESIGN budgets 300 MB for it). Tests and benchmarks pass their own settings (a temporary home). Its
lifespan starts, when configured, the champion watcher, the trading engine
(`serving.engine.trading_lifespan`) and the stream (`stream.source` = ``ccxt`` or ``replay``; ``off`` by
default: the tier then serves the nightly features).

`/signal` fast path (p99 <= 2 ms at 500 req/s, DESIGN): the universe and the champion are in memory, the
symbol's newest feature row comes from `serving.feature_cache.LatestFeatures` (kept fresh by the stream
and background re-reads; a miss reads the online store once, off the event loop), and the score of a
(row, model version) pair is memoized on the cached row, so a repeated request does no inference.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import FastAPI, HTTPException, Query, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, TypeAdapter

from pipelines.config import Settings, load_settings
from pipelines.feature_store import FeatureReader
from pipelines.lake import Lake
from pipelines.online_store import open_online_store
from pipelines.registry import ChampionSource, serving_registry
from serving import request_errors
from serving.api_trading import trading_router
from serving.auth import ApiKeyGuard
from serving.feature_cache import LatestFeatures, StoreUnavailableError
from serving.messages import MESSAGE_TYPES, HelloMessage, Signal, Unavailable, WsMessage
from serving.metrics import INFERENCE_LATENCY, SIGNALS, RollingConfidence, exposition
from serving.scorer import ChampionScorer
from serving.signals import decide_action, threshold_reason
from serving.stream.hot import HotRanking
from serving.stream.runner import serving_stream
from serving.ws_hub import SignalHub

SYMBOL_PATTERN = r"^[A-Z0-9]{1,20}/[A-Z0-9]{2,10}$"

__all__ = ["Health", "Signal", "UniverseCache", "create_app", "decide_action"]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    champion_version: str | None
    universe_date: str | None
    universe_size: int
    problems: list[str]
    stream_source: str = Field("off", description="stream.source: off, ccxt or replay")
    stream_connected: dict[str, bool] = Field(default_factory=dict, description="Per market-data source")
    online_store_error: str | None = None


class UniverseCache:
    """The newest stored universe, re-read at most every `ttl_s` seconds (the nightly chain replaces it)."""

    def __init__(self, lake: Lake, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._lake, self._ttl_s, self._clock = lake, ttl_s, clock
        self._symbols: frozenset[str] = frozenset()
        self._date: str | None = None
        self._read_at: float | None = None

    def due(self) -> bool:
        return self._read_at is None or self._clock() - self._read_at >= self._ttl_s

    def get(self) -> tuple[frozenset[str], str | None]:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._ttl_s:
            table = self._lake.read_universe()
            if table is not None:
                self._symbols = frozenset(table.filter(pl.col("tier").is_not_null())["symbol"].to_list())
                self._date = str(table["date"][0]) if len(table) else None
            self._read_at = now
        return self._symbols, self._date

    def peek(self) -> tuple[frozenset[str], str | None]:
        return self._symbols, self._date


def _unavailable(reason: str) -> JSONResponse:
    return JSONResponse(status_code=503, content=Unavailable(detail=reason, reason=reason).model_dump())


def create_app(
    settings: Settings | None = None,
    *,
    registry: ChampionSource | None = None,
    features: FeatureReader | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    cache: LatestFeatures | None = None,
) -> FastAPI:
    settings = settings or load_settings()
    registry = registry or serving_registry(
        settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", settings.model.name
    )
    owned_store = open_online_store(settings) if features is None else None
    feature_reader: FeatureReader = features or owned_store  # type: ignore[assignment]
    scorer = ChampionScorer(registry, check_every_s=settings.serving.model_check_s)
    universe = UniverseCache(Lake(settings.lake_dir))
    latest = cache or LatestFeatures(feature_reader, refresh_s=settings.serving.cache_refresh_s)
    hub = SignalHub(settings.serving.ws_queue_size, settings.serving.ws_send_timeout_s, settings.realtime.ws_max_lag_s)
    confidence = RollingConfidence(settings.serving.confidence_window)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sys.setswitchinterval(settings.serving.gil_switch_interval_s)
        await run_in_threadpool(scorer.start)
        try:
            # The trading engine, and the stream on its own thread and event loop (serving.stream.runner).
            async with serving_stream(
                app, settings, universe_symbols=lambda: sorted(universe.get()[0]),
                scorer=scorer, cache=latest, hub=hub, pusher=owned_store, confidence=confidence,
            ):
                yield
        finally:
            scorer.stop()
            latest.close()
            if owned_store is not None:
                owned_store.close()

    app = FastAPI(
        title="alphatide",
        version="0.1.0",
        description="Signals from the champion model on the newest features of the tradable universe.",
        lifespan=lifespan,
    )
    app.state.stream = None

    @app.get(
        "/signal",
        response_model=Signal,
        responses={
            404: {"description": "The symbol is not in today's universe"},
            503: {"model": Unavailable, "description": "No universe, champion or features, or the store is down"},
        },
    )
    async def signal(
        symbol: Annotated[str, Query(pattern=SYMBOL_PATTERN, description="ccxt symbol, e.g. BTC/USDT")],
    ) -> Signal | JSONResponse:
        symbols, _ = await run_in_threadpool(universe.get) if universe.due() else universe.peek()
        if not symbols:
            return _unavailable("no universe yet: run the nightly chain (make run)")
        if symbol not in symbols:
            raise HTTPException(404, f"{symbol} is not in today's universe")
        champion = scorer.current()
        if champion is None:
            return _unavailable(f"no champion model registered under {settings.model.name!r} yet")
        columns = champion.ref.feature_columns
        try:
            entry = latest.cached(symbol, columns)
            if entry is None:
                entry = await run_in_threadpool(latest.read_through, symbol, columns)
        except StoreUnavailableError as exc:
            return _unavailable(f"{exc.reason}: hold")
        row = entry.row
        if row is None:
            return _unavailable(f"no features for {symbol} in the online store yet")
        served_at = now()
        memo = entry.score
        if memo is not None and memo[0] == champion.ref.version:
            p_up = memo[1]
        else:
            started = time.perf_counter()
            p_up = champion.predict_up([row.values.get(c) for c in columns])
            INFERENCE_LATENCY.observe(time.perf_counter() - started)
            entry.score = (champion.ref.version, p_up)
        action = decide_action(p_up, settings)
        reason = threshold_reason(p_up, settings)
        max_age = settings.signal.max_feature_age_s
        if max_age is not None and (
            row.event_time is None or (served_at - row.event_time).total_seconds() > max_age
        ):
            action, reason = "hold", f"features are stale (older than {max_age:.0f} s): hold"
        elif entry.stale_reason is not None:
            action, reason = "hold", f"{entry.stale_reason}: hold"
        SIGNALS.labels(action=action).inc()
        confidence.add(p_up)
        return Signal(
            symbol=symbol,
            p_up=p_up,
            action=action,
            model_name=champion.ref.name,
            model_version=champion.ref.version,
            feature_time=row.event_time,
            served_at=served_at,
            reason=reason,
        )

    @app.get("/hot", response_model=HotRanking)
    async def hot() -> HotRanking:
        """The hot-score ranking of SPEC 3 (top `stream.hot_top_n`); empty when the stream is off."""
        stream = app.state.stream
        if stream is None:
            return HotRanking(computed_at=None, as_of=None, symbols_ranked=0, top=[])
        ranking: HotRanking = stream.hot
        return ranking if ranking.computed_at is not None else stream.rank_now()

    @app.get("/health", response_model=Health)
    def health() -> Health:
        problems = []
        symbols, day = universe.get()
        if not symbols:
            problems.append("no universe")
        champion = scorer.current()
        if champion is None:
            problems.append("no champion model")
        if latest.store_error is not None:
            problems.append(latest.store_error)
        stream = app.state.stream
        connected = dict(stream.feed.connected) if stream is not None and stream.feed is not None else {}
        if stream is not None and not all(connected.values()):
            problems.append("market data disconnected: " + ", ".join(k for k, v in connected.items() if not v))
        if stream is not None and (stale := stream.pipeline.freshness.problem()) is not None:
            problems.append(stale)  # only trades and book updates count, not subscription acks
        return Health(
            status="ok" if not problems else "degraded",
            champion_version=champion.ref.version if champion else None,
            universe_date=day,
            universe_size=len(symbols),
            problems=problems,
            stream_source=settings.stream.source,
            stream_connected=connected,
            online_store_error=latest.store_error,
        )

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"}},
    )
    def metrics() -> Response:
        """Prometheus metrics (SPEC 14): this process's default registry, trading metrics included."""
        body, content_type = exposition()
        return Response(content=body, media_type=content_type)

    @app.get("/ws/signals/schema")
    def ws_signals_schema() -> dict[str, Any]:
        """JSON Schema of the `/ws/signals` messages: one schema per `type` (a discriminated union)."""
        return TypeAdapter(WsMessage).json_schema()

    @app.websocket("/ws/signals")
    async def ws_signals(websocket: WebSocket) -> None:
        """Signals, hot rankings and source status as they happen; see `serving.messages`."""
        await websocket.accept()
        hello = HelloMessage(server_time=datetime.now(UTC), message_types=MESSAGE_TYPES)
        await hub.serve(websocket, first=hello)

    app.state.hub = hub
    app.state.cache = latest
    app.state.scorer = scorer
    app.include_router(trading_router(settings.api_key))  # /positions, /orders, /kill, /resume
    app.add_middleware(ApiKeyGuard, api_key=settings.api_key)  # authenticate before any body is parsed
    request_errors.install(app)  # a 422 for any invalid input (NaN included), never a 500
    return app
