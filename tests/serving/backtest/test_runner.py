"""Backtests through the real engine on the shared Binance captures (realdata)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.config import Settings, load_settings
from pipelines.sim.config import SimVenueConfig
from serving.backtest.runner import BacktestSpec, build_markets, run_backtest
from serving.brokers.sim.venue import ns_to_dt
from serving.strategies.hedge import HedgeStrategy

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ALPHATIDE_HOME", str(tmp_path / "home"))
    return load_settings()


@pytest.fixture()
def ticks(shared_data: Path) -> Path:
    folder = shared_data / "binance_ticks"
    if not (folder / "usdm").is_dir():
        pytest.skip(f"no tick captures under {folder}")
    return folder


def _mm(ticks: Path, out: Path, seed: int = 0) -> BacktestSpec:
    return BacktestSpec("market_making", ticks / "usdm", out=out, progress=False, phase=3,
                        params={"horizon_seconds": 60}, sim=SimVenueConfig(jitter_ms=2.0, seed=seed))


def test_market_making_backtest_fills_and_decomposes(settings: Settings, ticks: Path, tmp_path: Path) -> None:
    result = run_backtest(settings, _mm(ticks, tmp_path / "mm"))

    total = result.summary["total"]
    assert total["fills"] > 0
    market = result.summary["markets"]["binanceusdm"]
    parts = market["spread_capture"] + market["inventory_pnl"] + market["fees_and_rebates"]
    assert parts == pytest.approx(market["pnl"], abs=1e-9)
    assert (tmp_path / "mm" / "binanceusdm" / "equity.png").stat().st_size > 0
    on_disk = json.loads((tmp_path / "mm" / "summary.json").read_text())
    assert on_disk["total"]["fills"] == total["fills"]


def test_same_seed_gives_the_same_report(settings: Settings, ticks: Path, tmp_path: Path) -> None:
    first = run_backtest(settings, _mm(ticks, tmp_path / "a", seed=7)).summary
    second = run_backtest(settings, _mm(ticks, tmp_path / "b", seed=7)).summary

    assert first["markets"] == second["markets"]
    assert (tmp_path / "a" / "binanceusdm" / "fills.csv").read_text() == (
        tmp_path / "b" / "binanceusdm" / "fills.csv"
    ).read_text()


def test_hedge_backtest_is_flat_after_every_completed_cycle(settings: Settings, ticks: Path, tmp_path: Path) -> None:
    spec = BacktestSpec("hedge", ticks / "spot", venues={"binanceusdm": ticks / "usdm"}, out=tmp_path / "hedge",
                        progress=False, phase=3)

    result = run_backtest(settings, spec)

    strategy = result.engine.strategies["hedge"]
    assert isinstance(strategy, HedgeStrategy)
    filled = [r for r in strategy.records if r.primary.trades > 0]
    assert filled, "no hedge cycle filled on the capture"
    assert all(r.net_after == Decimal(0) for r in strategy.records)
    assert result.summary["markets"]["binance"]["fills"] > 0
    assert result.summary["markets"]["binanceusdm"]["fills"] > 0


@pytest.mark.parametrize(("market", "venue", "symbol"), [("spot", "binance", "BTC/USDT"),
                                                         ("usdm", "binanceusdm", "BTC/USDT:USDT")])
def test_market_making_runs_on_each_capture_with_its_instrument_and_reports_uptime(
    settings: Settings, ticks: Path, tmp_path: Path, market: str, venue: str, symbol: str
) -> None:
    # Arrange: Binance's BTCUSDT rules of the market (as bench.mm passes them), the first 60 s of the capture
    from bench.mm import CAPTURE_INSTRUMENTS

    rules = {k: Decimal(v) for k, v in CAPTURE_INSTRUMENTS[market].items()}
    sim = SimVenueConfig(**rules)
    probe = build_markets(BacktestSpec("market_making", ticks / market, sim=sim), settings.lake_dir)
    start = ns_to_dt(int(probe[venue].feed.exch_ts[0]))
    spec = BacktestSpec("market_making", ticks / market, out=tmp_path / market, progress=False, phase=3, sim=sim,
                        start=start, end=start + timedelta(seconds=60), params={"horizon_seconds": 60})

    # Act
    result = run_backtest(settings, spec)

    # Assert: the strategy saw the market's own tick, lot and minimums; the report carries uptime beside PnL
    info = result.engine.executions[venue].broker.market(symbol)
    assert (info.tick_size, info.lot_size, info.min_notional, info.min_size) == (
        rules["tick_size"], rules["lot_size"], rules["min_notional"], rules["min_size"])
    summary = result.summary["markets"][venue]
    assert summary["orders"] > 0
    assert 0.0 <= summary["quote_uptime"] <= min(summary["bid_uptime"], summary["ask_uptime"]) <= 1.0
    assert summary["bid_uptime"] + summary["ask_uptime"] > 0
    assert summary["spread_capture"] + summary["inventory_pnl"] + summary["fees_and_rebates"] == pytest.approx(
        summary["pnl"], abs=1e-9)
    assert set(summary["inventory_quantiles"]) == {"p5", "p25", "p50", "p75", "p95"}
