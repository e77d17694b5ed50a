"""The shadow's live vs simulated PnL gap, through the real measurement path.

A live engine (real ccxt against the fake venue) trades a round trip; the shadow mirrors its orders into
the paper fill model on the market data the engine sees; the health monitor measures the gap on its timer
and the risk component's pnl_gap switch alerts (through the engine's alert sinks) when the venue fills
worse than the market traded, and stays quiet when the venue fills as the market did.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, generate_latest

from pipelines.trading.config import KillSwitchConfig, TradingConfig
from serving.api.trading import trading_router
from serving.engine.config import AirflowConfig, HealthConfig
from serving.engine.shadow import ShadowBroker
from serving.health import HealthMonitor
from serving.shadow import install_shadow
from tests.fakes.trading_venue import FakeTradingVenue
from tests.serving.engine.conftest import Harness

GAP_ALERT = "kill_switch:pnl_gap"


def _trading() -> TradingConfig:
    # a floor of one cent: the test's PnLs are cents on a 0.08 BTC clip at 100 USDT
    return TradingConfig(kill=KillSwitchConfig(pnl_gap_floor_quote=0.01, pnl_gap_floor_fraction=0.0))


def _engine_with_shadow(live: Callable[..., Harness]) -> tuple[Harness, HealthMonitor, list[str]]:
    h = live(_trading(), sweep_interval_s=0.1)
    monitor = HealthMonitor(h.engine, HealthConfig(), AirflowConfig())
    install_shadow(h.engine, monitor)
    alerts: list[str] = []
    h.engine.alert_sinks.append(lambda now, kind, message, mode: alerts.append(kind))
    return h, monitor, alerts


def _market(h: Harness, venue: FakeTradingVenue, bid: str, ask: str) -> None:
    venue.set_book("BTC/USDT", bid, ask)
    h.book("BTC/USDT", bid, ask)


def _print(h: Harness, venue: FakeTradingVenue, price: str, size: str) -> None:
    """A public trade: the venue matches our resting orders on it, the engine (and its shadow) sees it."""
    venue.trade("BTC/USDT", price, size)
    h.trade("BTC/USDT", price, size)


def _round_trip(h: Harness, venue: FakeTradingVenue) -> None:
    _market(h, venue, "100.00", "100.01")
    h.signal("BTC/USDT")  # post-only buy at the bid
    h.advance(0.1)  # the shadow's copy becomes live after the paper latency
    _print(h, venue, "99.98", "1")  # through the bid: filled on the venue and in the shadow
    h.advance(0.2)  # the venue's fill reaches us (poll)
    assert "BTC/USDT" in h.engine.positions
    _market(h, venue, "101.50", "101.51")  # take profit: post-only sell at the ask
    h.advance(0.1)
    _print(h, venue, "101.52", "1")
    h.advance(0.2)
    assert "BTC/USDT" not in h.engine.positions


def _measure(h: Harness, monitor: HealthMonitor) -> None:
    monitor.run_once()  # the health timer's measurement: HealthEvent(live_pnl, simulated_pnl) to the engine
    h.advance(5)  # the engine's risk evaluation


def test_a_venue_filling_worse_than_the_market_opens_the_gap_and_alerts(
    live: Callable[..., Harness], venue: FakeTradingVenue
) -> None:
    # Arrange: the venue fills 0.2% worse than the prices the market traded at
    h, monitor, alerts = _engine_with_shadow(live)
    venue.fill_slippage = Decimal("0.002")
    # Act
    _round_trip(h, venue)
    _measure(h, monitor)
    # Assert: the live fills (100.20 in, 101.31 out) fall short of the shadow's (100.00 in, 101.51 out)
    [pair] = h.engine.shadow.pairs()
    assert (pair.live_fills, pair.simulated_fills) == (2, 2)
    assert pair.simulated - pair.live == pytest.approx(Decimal("0.08") * Decimal("0.40"), abs=Decimal("0.001"))
    assert pair.gap(Decimal("0.01")) > 0.10
    assert GAP_ALERT in alerts
    assert h.engine.last_verdict is not None and "pnl_gap" in {s.value for s in h.engine.last_verdict.active}


def test_live_fills_matching_the_shadow_raise_no_alert(live: Callable[..., Harness], venue: FakeTradingVenue) -> None:
    h, monitor, alerts = _engine_with_shadow(live)
    _round_trip(h, venue)
    _measure(h, monitor)
    [pair] = h.engine.shadow.pairs()
    assert pair.simulated > 0 and pair.live == pytest.approx(pair.simulated, abs=Decimal("0.0001"))
    assert GAP_ALERT not in alerts


def test_the_gap_is_in_the_status_endpoint_and_the_metrics(
    live: Callable[..., Harness], venue: FakeTradingVenue
) -> None:
    h, monitor, _ = _engine_with_shadow(live)
    venue.fill_slippage = Decimal("0.002")
    _round_trip(h, venue)
    app = FastAPI()
    app.include_router(trading_router(None))
    app.state.trading_engine = h.engine

    status = TestClient(app).get("/trading/status").json()

    [strategy] = status["strategies"]
    assert float(strategy["shadow_simulated_pnl"]) > float(strategy["shadow_live_pnl"])
    assert strategy["pnl_gap"] > 0.10
    metrics = generate_latest(REGISTRY).decode()
    assert 'alphatide_pnl_gap_ratio{strategy="directional"}' in metrics
    assert 'alphatide_shadow_pnl{book="simulated",strategy="directional"}' in metrics
    assert all(isinstance(ex.broker, ShadowBroker) for ex in h.engine.executions.values())
    assert install_shadow(h.engine, monitor) is h.engine.shadow  # installed once


def test_tiny_pnls_below_the_floor_never_trip_the_gap(live: Callable[..., Harness], venue: FakeTradingVenue) -> None:
    # the default floor (10 USDT) dwarfs the cents of this round trip: no alert despite the slippage
    h = live(TradingConfig(kill=KillSwitchConfig(pnl_gap_floor_fraction=0.0)), sweep_interval_s=0.1)
    monitor = HealthMonitor(h.engine, HealthConfig(), AirflowConfig())
    install_shadow(h.engine, monitor)
    alerts: list[str] = []
    h.engine.alert_sinks.append(lambda now, kind, message, mode: alerts.append(kind))
    venue.fill_slippage = Decimal("0.002")
    _round_trip(h, venue)
    _measure(h, monitor)
    assert h.engine.shadow.pairs()[0].live < h.engine.shadow.pairs()[0].simulated
    assert GAP_ALERT not in alerts



def test_an_order_the_venue_rejects_is_void_in_the_shadow(
    live: Callable[..., Harness], venue: FakeTradingVenue
) -> None:
    h, monitor, alerts = _engine_with_shadow(live)
    venue.reject_next(1)
    _market(h, venue, "100.00", "100.01")
    h.signal("BTC/USDT")  # the venue refuses the entry
    h.advance(0.1)
    h.trade("BTC/USDT", "99.98", "1")  # would have filled the shadow's copy
    assert h.engine.shadow.simulated == {} and h.engine.shadow.pairs() == []
    _measure(h, monitor)
    assert GAP_ALERT not in alerts
