"""The FastAPI app of the serving tier: a short factory wiring the real adapters to one router per concern.

HTTP: `GET /signal`, `GET /hot` (`serving.api.signal`), `GET /health` (`serving.api.health`),
`GET /metrics` (`serving.api.metrics`), `GET /ws/signals/schema` and WebSocket `/ws/signals`
(`serving.api.ws`, message schemas in `serving.messages`), and the trading router (`serving.api.trading`:
`/positions`, `/orders`, `/trading/status`, `/kill`, `/resume`), `/models/champion` and `/models/history`
(`serving.api.models`), `/hedge/cycles` and `/hedge/summary` (`serving.api.hedge`, 404 without a
hedge strategy), the web dashboard at `/dashboard` with `/trading/equity` and `/trading/fills`, and
`/docs` served offline (`serving.api.dashboard`).

`create_app(settings)` wires the MLflow registry (read without the SDK when embedded,
`pipelines.registry.serving_registry`), Feast's online store (read and written directly,
`pipelines.online_store`), the lake's universe table. Neither SDK is imported by this process (memory:
DESIGN budgets 300 MB for it). Tests and benchmarks pass their own settings (a temporary home). The
lifespan (`serving.lifespan`) starts the champion watcher, the trading engine, the health monitor and
the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import FastAPI

from pipelines.config import Settings, load_settings
from pipelines.feature_store import FeatureReader
from pipelines.lake import Lake
from pipelines.online_store import open_online_store
from pipelines.registry import ChampionSource, serving_registry
from serving import request_errors
from serving.api.dashboard import install_dashboard
from serving.api.health import Health, health_router
from serving.api.hedge import router as hedge_router
from serving.api.metrics import metrics_router
from serving.api.models import models_router
from serving.api.signal import hot_router, signal_router
from serving.api.trading import trading_router
from serving.api.ws import ws_router
from serving.auth import ApiKeyGuard
from serving.deps import ServingDeps, UniverseCache
from serving.feature_cache import LatestFeatures
from serving.lifespan import serving_lifespan
from serving.messages import Signal
from serving.metrics import RollingConfidence
from serving.scorer import ChampionScorer
from serving.signals import decide_action
from serving.ws_hub import SignalHub

__all__ = ["Health", "Signal", "UniverseCache", "create_app", "decide_action"]


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
    reader: FeatureReader = features or owned_store  # type: ignore[assignment]
    deps = ServingDeps(
        settings=settings,
        registry=registry,
        scorer=ChampionScorer(registry, check_every_s=settings.serving.model_check_s),
        universe=UniverseCache(Lake(settings.lake_dir)),
        latest=cache or LatestFeatures(reader, refresh_s=settings.serving.cache_refresh_s),
        hub=SignalHub(
            settings.serving.ws_queue_size, settings.serving.ws_send_timeout_s, settings.realtime.ws_max_lag_s
        ),
        confidence=RollingConfidence(settings.serving.confidence_window),
        now=now,
        owned_store=owned_store,
    )
    deps.mode.listeners.append(deps.scorer.use_tabular_only)
    app = FastAPI(
        title="alphatide",
        version="0.1.0",
        description="Signals from the champion model on the newest features of the tradable universe.",
        lifespan=serving_lifespan(deps),
        docs_url=None,  # served offline by install_dashboard (no CDN)
        redoc_url=None,
    )
    app.state.stream = None
    app.state.hub, app.state.cache, app.state.scorer, app.state.deps = deps.hub, deps.latest, deps.scorer, deps
    app.include_router(signal_router(deps))
    app.include_router(hot_router())
    app.include_router(health_router(deps))
    app.include_router(metrics_router())
    app.include_router(ws_router(deps))
    app.include_router(trading_router(settings.api_key))  # /positions, /orders, /kill, /resume
    app.include_router(models_router(deps))  # /models/champion, /models/history
    app.state.hedge_store = None  # set by the lifespan when a hedge strategy runs (serving.hedge_records)
    app.include_router(hedge_router)  # /hedge/cycles, /hedge/summary
    install_dashboard(app)  # /dashboard, /trading/equity, /trading/fills, offline /docs and /redoc
    app.add_middleware(ApiKeyGuard, api_key=settings.api_key)  # authenticate before any body is parsed
    request_errors.install(app)  # a 422 for any invalid input (NaN included), never a 500
    return app
