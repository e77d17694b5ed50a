"""The serving lifespan runs the health monitor beside the engine and shares the scoring mode with /signal."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from pipelines.config import EngineConfig, Settings, load_settings
from serving.app import create_app
from serving.health import HealthMonitor
from tests.fakes.trading_venue import FakeTradingVenue
from tests.serving.engine import conftest as engine_fixtures

market_venue = engine_fixtures.market_venue


def test_the_health_monitor_runs_with_the_engine_and_stops_with_it(
    tmp_path: Path, market_venue: FakeTradingVenue
) -> None:
    settings = load_settings({}, home=tmp_path, engine=EngineConfig(api_url=market_venue.base_url))
    app = create_app(settings)
    with TestClient(app) as client:
        monitor = app.state.health
        assert isinstance(monitor, HealthMonitor) and monitor.mode is app.state.deps.mode
        assert monitor.on_action in app.state.trading_engine.action_listeners
        assert monitor._thread is not None and monitor._thread.is_alive()
        assert client.get("/trading/status").status_code == 200
    assert monitor._thread is None


def test_drift_is_measured_against_the_lakes_training_features(
    serving_home: Settings, market_venue: FakeTradingVenue
) -> None:
    import time

    settings = serving_home.model_copy(
        update={
            "engine": serving_home.engine.model_copy(
                update={"enabled": True, "api_url": market_venue.base_url, "dsn": None, "pause_file": None}
            )
        }
    )
    app = create_app(settings)
    with TestClient(app):
        monitor = app.state.health
        deadline = time.monotonic() + 30
        while monitor.drift is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert monitor.drift is not None and len(monitor.drift.reference) > 0
        assert len(app.state.cache.listeners) == 1  # the stream's rows reach the drift test
