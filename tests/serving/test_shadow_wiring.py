"""The serving process mirrors its engine's orders into the shadow and feeds the gap to the health monitor."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from pipelines.config import EngineConfig, load_settings
from serving.app import create_app
from serving.engine.shadow import Shadow, ShadowBroker
from tests.fakes.trading_venue import FakeTradingVenue
from tests.serving.engine import conftest as engine_fixtures

market_venue = engine_fixtures.market_venue


def test_the_running_engine_trades_through_the_shadow(tmp_path: Path, market_venue: FakeTradingVenue) -> None:
    settings = load_settings({}, home=tmp_path, engine=EngineConfig(api_url=market_venue.base_url))
    app = create_app(settings)
    with TestClient(app) as client:
        engine, monitor = app.state.trading_engine, app.state.health
        assert isinstance(engine.shadow, Shadow)
        assert all(isinstance(ex.broker, ShadowBroker) for ex in engine.executions.values())
        assert monitor.pnl_source is not None and monitor.pnl_source() is None  # no order mirrored yet
        assert monitor.measure().simulated_pnl is None
        assert client.get("/trading/status").status_code == 200
