"""The engine inside a FastAPI lifespan and on its own worker thread (the way the serving tier runs it)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipelines.config import EngineConfig, load_settings
from pipelines.trading.orders import OrderState
from serving.api_trading import trading_router
from serving.engine import trading_lifespan
from serving.engine.events import BookEvent, SignalEvent
from serving.engine.runtime import TradingEngine
from tests.fakes.trading_venue import FakeTradingVenue


def test_lifespan_starts_the_worker_and_shuts_down_gracefully(tmp_path: Path, market_venue: FakeTradingVenue) -> None:
    settings = load_settings(
        {}, home=tmp_path, engine=EngineConfig(api_url=market_venue.base_url, tick_interval_s=0.02)
    )
    app = FastAPI(lifespan=lambda app: trading_lifespan(app, settings))
    app.include_router(trading_router(None))

    with TestClient(app) as client:
        engine: TradingEngine = app.state.trading_engine
        assert client.get("/trading/status").json()["running"] is True
        now = datetime.now(UTC)
        assert engine.submit(BookEvent("BTC/USDT", Decimal("100.00"), Decimal("100.01"), Decimal(5), Decimal(5), now))
        assert engine.submit(SignalEvent("BTC/USDT", 0.8, now))
        deadline = time.monotonic() + 10
        while not client.get("/orders").json() and time.monotonic() < deadline:
            time.sleep(0.02)
        [order] = client.get("/orders").json()
        assert order["state"] in ("new", "open")

    assert app.state.trading_engine is None
    # Shutdown cancelled the resting order and persisted it.
    from serving.engine.store import TradingStore

    store = TradingStore.sqlite_file(tmp_path / "trading" / "engine.db")
    assert [s.order.state for s in store.load_orders()] == [OrderState.CANCELLED]


def test_disabled_engine_leaves_the_trading_endpoints_at_503(tmp_path: Path) -> None:
    settings = load_settings({}, home=tmp_path, engine=EngineConfig(enabled=False))
    app = FastAPI(lifespan=lambda app: trading_lifespan(app, settings))
    app.include_router(trading_router(None))
    with TestClient(app) as client:
        assert client.get("/positions").status_code == 503
