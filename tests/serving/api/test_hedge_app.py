"""`/hedge/cycles` and `/hedge/summary` in the running serving app: mounted by `create_app`, fed by the
lifespan's record writer when a hedge strategy is configured, 404 with the reason otherwise."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipelines.config import EngineConfig, load_settings
from serving.app import create_app
from serving.strategies.hedge import HedgeStrategy
from tests.fakes.trading_venue import FakeTradingVenue
from tests.pipelines.trading.hedge.test_records_store import three_cycles
from tests.serving.engine import conftest as engine_fixtures

pytestmark = pytest.mark.integration
market_venue = engine_fixtures.market_venue


def _app(tmp_path: Path, venue: FakeTradingVenue, monkeypatch: pytest.MonkeyPatch, strategies: list[dict]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ALPHATIDE_STRATEGIES", json.dumps(strategies))
    # the hedge's two venues: paper brokers of two ccxt ids that speak Binance's spot API, on the local fake
    both = [{"name": name, "mode": "paper", "api_url": venue.base_url} for name in ("binance", "binanceus")]
    monkeypatch.setenv("ALPHATIDE_VENUES", json.dumps(both))
    settings = load_settings({}, home=tmp_path, engine=EngineConfig(api_url=venue.base_url, tick_interval_s=0.05))
    return create_app(settings)


def test_hedge_endpoints_answer_from_the_running_strategy(
    tmp_path: Path, market_venue: FakeTradingVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a hedge strategy configured (its venues need not trade for the records to be served)
    params = {"primary_venue": "binance", "hedge_venue": "binanceus"}
    entry = {"id": "hedge-1", "kind": "hedge", "allocation": "100", "params": params}
    app = _app(tmp_path, market_venue, monkeypatch, [entry])
    records = three_cycles()
    with TestClient(app) as client:
        strategy = app.state.trading_engine.strategies["hedge-1"]
        assert isinstance(strategy, HedgeStrategy)
        # Act: the strategy hands its finished cycles to its sinks, as it does at the end of a cycle
        for record in records:
            for sink in strategy.sinks:
                sink(record)
        deadline = time.monotonic() + 10
        cycles: list[dict] = []
        while len(cycles) < 3 and time.monotonic() < deadline:
            cycles = client.get("/hedge/cycles").json()
            time.sleep(0.05)
        summary = client.get("/hedge/summary", params={"strategy_id": "hedge-1"}).json()
    # Assert: the writer stored them where the endpoints read, newest first
    assert [c["cycle_id"] for c in cycles] == [r.cycle_id for r in reversed(records)]
    assert summary["cycles"] == 3 and summary["outcomes"]["clean"] == 1
    assert (tmp_path / "trading" / "hedge.db").exists()


def test_without_a_hedge_strategy_the_endpoints_say_so(
    tmp_path: Path, market_venue: FakeTradingVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(tmp_path, market_venue, monkeypatch, [{"id": "directional", "kind": "directional"}])
    with TestClient(app) as client:
        cycles, summary = client.get("/hedge/cycles"), client.get("/hedge/summary")
    assert cycles.status_code == 404 and summary.status_code == 404
    assert "no hedge strategy configured" in cycles.json()["detail"]
