"""GET /metrics of a running app whose paper engine traded: the SPEC 14 trading metrics and their values."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from serving.freshness import DataFreshness
from tests.serving.trading_app import market_venue, traded, wait_for

__all__ = ["market_venue", "traded"]


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples[(name, tuple(sorted(labels.items())))]


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
    assert sample(samples, "alphatide_window_pnl_today", strategy="window-btc", day="") == 0


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


def test_market_data_freshness_is_exported_and_turns_stale(traded) -> None:  # type: ignore[no-untyped-def]
    client, _ = traded
    clock = [1000.0]
    freshness = DataFreshness(max_age_s=10.0, clock=lambda: clock[0])
    client.app.state.stream = SimpleNamespace(pipeline=SimpleNamespace(freshness=freshness))  # the stream's part
    freshness.mark("trade")
    clock[0] += 4

    fresh = scrape(client)
    clock[0] += 20
    stale = scrape(client)

    assert sample(fresh, "alphatide_market_data_age_seconds", kind="trade") == pytest.approx(4.0)
    assert sample(fresh, "alphatide_market_data_stale") == 0
    assert sample(stale, "alphatide_market_data_stale") == 1
