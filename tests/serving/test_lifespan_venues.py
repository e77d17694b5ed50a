"""`alphatide serve` runs the two-venue hedge from configuration alone: ALPHATIDE_STRATEGIES holds the hedge,
ALPHATIDE_VENUES names Binance spot and Binance USD-M (live, pointed at the local fakes), their keys come
from ALPHATIDE_VENUE_<NAME>__API_KEY / __API_SECRET. The real serving app (its lifespan builds the engine)
starts, the clean start cancels the order an earlier run left on each venue, /trading/status lists both.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipelines.config import EngineConfig, load_settings
from serving.app import create_app
from serving.engine.live_broker import LiveBroker
from tests.fakes.binance_usdm_venue import TEST_USDM_KEY, TEST_USDM_SECRET, FakeBinanceUsdm
from tests.fakes.trading_venue import TEST_API_KEY, TEST_API_SECRET, FakeTradingVenue
from tests.serving.strategies.binance_engine import HEDGE_PARAMS, SPOT, SPOT_SYMBOL, USDM

pytestmark = pytest.mark.integration


def test_the_serving_app_runs_the_hedge_on_two_configured_venues_and_clean_starts_each(
    tmp_path: Path, spot: FakeTradingVenue, usdm: FakeBinanceUsdm, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: an order of an earlier run on each venue; the hedge and its two venues from the environment.
    old_spot = spot.place_foreign_order(SPOT_SYMBOL, "SELL", "61000.00", "0.001", "at-old-run-1")
    spot.set_balance("BTC", Decimal("0.001"))
    old_perp = usdm.matcher.place("BTCUSDT", "sell", Decimal("61000.0"), Decimal("0.001"), "gtc", True, "at-old-run-2")
    assert not isinstance(old_perp, str)
    hedge = {"id": "hedge", "kind": "hedge", "venue": SPOT, "params": HEDGE_PARAMS}
    venues = [
        {"name": SPOT, "mode": "live", "api_url": spot.base_url},
        {"name": USDM, "mode": "live", "api_url": usdm.base_url},
    ]
    env = {
        "ALPHATIDE_STRATEGIES": json.dumps([hedge]),
        "ALPHATIDE_VENUES": json.dumps(venues),
        "ALPHATIDE_VENUE_BINANCE__API_KEY": TEST_API_KEY,
        "ALPHATIDE_VENUE_BINANCE__API_SECRET": TEST_API_SECRET,
        "ALPHATIDE_VENUE_BINANCEUSDM__API_KEY": TEST_USDM_KEY,
        "ALPHATIDE_VENUE_BINANCEUSDM__API_SECRET": TEST_USDM_SECRET,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(
        dict(env), home=tmp_path, engine=EngineConfig(api_url=spot.base_url, reconcile_interval_s=3600)
    )
    app = create_app(settings)

    # Act: the app's lifespan builds and starts the engine (clean start, reconciliation on each venue).
    with TestClient(app) as client:
        engine = app.state.trading_engine
        status = client.get("/trading/status")

        # Assert
        assert set(engine.executions) == {"", SPOT, USDM}
        for name in (SPOT, USDM):
            broker = getattr(engine.execution(name).broker, "inner", None)  # the app's shadow wraps each broker
            assert isinstance(broker, LiveBroker) and broker.exchange.id == name
            assert engine.execution(name).clean_started
        assert spot.orders[old_spot].status == "CANCELED" and old_perp.status == "canceled"
        assert engine.strategy("hedge").cfg.hedge_venue == USDM
        assert status.status_code == 200
        listed = {v["venue"]: v for v in status.json()["venues"]}
        assert set(listed) == {"", SPOT, USDM}
        assert listed[SPOT]["broker"] == f"live:{SPOT}" and listed[USDM]["broker"] == f"live:{USDM}"
        assert listed[""]["broker"] == "paper" and all(v["clean_started"] for v in listed.values())
    assert app.state.trading_engine is None
