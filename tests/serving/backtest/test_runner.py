"""Backtests through the real engine on the shared Binance captures (realdata)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.config import Settings, load_settings
from pipelines.sim.config import SimVenueConfig
from serving.backtest.runner import BacktestSpec, run_backtest
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
