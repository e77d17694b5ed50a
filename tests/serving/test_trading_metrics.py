"""GET /metrics of a running app whose paper engine traded: the SPEC 14 trading metrics and their values."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pipelines.config import EngineConfig, load_settings
from serving.app import create_app
from serving.engine.events import BookEvent, SignalEvent, TradeEvent
from serving.strategies import registry
from serving.strategies.market_making import build_market_making
from tests.fakes.trading_venue import FakeTradingVenue
from tests.serving.engine import conftest as engine_fixtures

market_venue = engine_fixtures.market_venue

STRATEGIES = [
    {"id": "directional", "kind": "directional"},
    {"id": "mm-eth", "kind": "market_making", "allocation": "1000", "params": {"symbol": "ETH/USDT"}},
]


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def traded(tmp_path: Path, market_venue: FakeTradingVenue, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ALPHATIDE_STRATEGIES", json.dumps(STRATEGIES))
    if "market_making" not in registry.kinds():  # until the registry lists it among its built-ins
        monkeypatch.setitem(registry._FACTORIES, "market_making", lambda e, env: build_market_making(e.id, e.params))
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
        # The health monitor resolves signals (live calibration): one right call, one wrong.
        calibration = app.state.health.calibration
        t0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
        calibration.observe_price("XRP/USDT", t0, 1.0)
        calibration.observe_signal("XRP/USDT", t0, 0.9)
        calibration.observe_signal("XRP/USDT", t0 + timedelta(seconds=1), 0.2)
        calibration.observe_price("XRP/USDT", t0 + timedelta(hours=1), 1.1)
        yield client, engine


def test_metrics_expose_the_paper_engines_trading_state(traded) -> None:  # type: ignore[no-untyped-def]
    client, engine = traded

    samples = scrape(client)

    status = engine.status()
    by_id = {s.strategy_id: s for s in status.strategies}
    d = {"strategy": "directional", "kind": "directional"}
    assert sample(samples, "alphatide_orders_total", strategy="directional", side="buy", status="submitted") >= 1
    assert sample(samples, "alphatide_orders_total", strategy="directional", side="buy", status="filled") >= 1
    assert sample(samples, "alphatide_fills_total", strategy="directional", side="buy") >= 1
    assert sample(samples, "alphatide_order_latency_seconds_count", venue="paper") >= 1
    assert 0 < sample(samples, "alphatide_fill_rate", strategy="directional") <= 1
    assert sample(samples, "alphatide_exposure", **d) == pytest.approx(float(by_id["directional"].exposure))
    assert sample(samples, "alphatide_exposure", **d) > 0
    assert sample(samples, "alphatide_realized_pnl", **d) == pytest.approx(float(by_id["directional"].realized_pnl))
    assert sample(samples, "alphatide_unrealized_pnl", **d) == pytest.approx(float(by_id["directional"].unrealized_pnl))
    bankroll = sample(samples, "alphatide_bankroll_available", **d)
    assert bankroll == pytest.approx(float(by_id["directional"].equity - by_id["directional"].exposure))
    assert sample(samples, "alphatide_equity") == pytest.approx(float(status.equity), rel=1e-6)
    assert 0 <= sample(samples, "alphatide_drawdown_ratio") < 0.01
    assert sample(samples, "alphatide_engine_running") == 1
    assert sample(samples, "alphatide_reconciled") == 1
    assert sample(samples, "alphatide_signal_accuracy_rolling") == pytest.approx(0.5)
    assert sample(samples, "alphatide_signals_resolved") == 2


def test_metrics_expose_the_market_makers_quotes(traded) -> None:  # type: ignore[no-untyped-def]
    client, engine = traded
    wait_for(lambda: bool(engine.strategy("mm-eth").snapshot()["quotes"]))

    samples = scrape(client)

    snap = engine.strategy("mm-eth").snapshot()
    key = {"strategy": "mm-eth", "symbol": "ETH/USDT"}
    assert sample(samples, "alphatide_mm_quoting", **key) == 1
    assert sample(samples, "alphatide_mm_spread", **key) == pytest.approx(float(snap["spread"]))
    assert sample(samples, "alphatide_mm_inventory_clips", **key) == pytest.approx(float(snap["q_clips"]))
    bid = sample(samples, "alphatide_mm_quote_price", side="buy", **key)
    ask = sample(samples, "alphatide_mm_quote_price", side="sell", **key)
    assert 0 < bid < ask
    assert sample(samples, "alphatide_orders_total", strategy="mm-eth", side="buy", status="submitted") >= 1


def test_process_and_stream_metrics_are_on_the_same_scrape(traded) -> None:  # type: ignore[no-untyped-def]
    client, _ = traded

    names = {name for name, _ in scrape(client)}

    assert {"process_resident_memory_bytes", "alphatide_signal_confidence_mean"} <= names
    assert "alphatide_inference_latency_seconds_count" in names or "alphatide_inference_latency_seconds_sum" in names
