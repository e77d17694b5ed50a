"""A running serving app whose paper engine traded (directional fill, a market maker quoting, a window
strategy), shared by the /metrics and /ws/signals tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipelines.config import EngineConfig, load_settings
from serving.app import create_app
from serving.engine.events import BookEvent, SignalEvent, TradeEvent
from serving.strategies import registry
from serving.strategies.market_making import build_market_making
from serving.strategies.window import build_window_directional
from tests.fakes.trading_venue import FakeTradingVenue
from tests.serving.engine import conftest as engine_fixtures

market_venue = engine_fixtures.market_venue

STRATEGIES = [
    {"id": "directional", "kind": "directional"},
    {"id": "mm-eth", "kind": "market_making", "allocation": "1000", "params": {"symbol": "ETH/USDT"}},
    {"id": "window-btc", "kind": "window", "allocation": "100", "params": {"venue": ""}},
]
KINDS = {
    "market_making": lambda e, env: build_market_making(e.id, e.params),
    "window": lambda e, env: build_window_directional(e.id, e.params),
}


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def traded(
    tmp_path: Path, market_venue: FakeTradingVenue, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, Any]]:
    monkeypatch.setenv("ALPHATIDE_STRATEGIES", json.dumps(STRATEGIES))
    for kind, factory in KINDS.items():
        if kind not in registry.kinds():  # until the registry lists it among its built-ins
            monkeypatch.setitem(registry._FACTORIES, kind, factory)
    settings = load_settings(
        {}, home=tmp_path, engine=EngineConfig(api_url=market_venue.base_url, tick_interval_s=0.02)
    )
    app = create_app(settings)
    with TestClient(app) as client:
        engine = app.state.trading_engine
        now = datetime.now(UTC)
        for symbol, bid, ask in (("BTC/USDT", "100.00", "100.01"), ("ETH/USDT", "50.00", "50.10")):
            engine.submit(BookEvent(symbol, Decimal(bid), Decimal(ask), Decimal(5), Decimal(5), now))
        engine.submit(SignalEvent("BTC/USDT", 0.8, now))
        wait_for(lambda: any(o["state"] == "open" and o["symbol"] == "BTC/USDT" for o in client.get("/orders").json()))
        engine.submit(TradeEvent("BTC/USDT", Decimal("99.95"), Decimal(10), datetime.now(UTC)))
        wait_for(lambda: "BTC/USDT" in {p["symbol"] for p in client.get("/positions").json()})
        # The health monitor resolves signals (live calibration, one per horizon): one right call, one wrong.
        calibration = app.state.health.calibration
        t0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
        calibration.observe_price("XRP/USDT", t0, 1.0)
        calibration.observe_signal("XRP/USDT", t0, 0.9)
        calibration.observe_signal("XRP/USDT", t0 + timedelta(minutes=5), 0.2)
        calibration.observe_price("XRP/USDT", t0 + timedelta(hours=1), 1.1)
        yield client, engine


