"""Every built-in kind builds through the registry; two kinds run side by side in one engine (realdata)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.config import Settings, load_settings
from serving.backtest.runner import BacktestSpec, build_backtest_engine, build_markets, drive
from serving.brokers.sim.replay import SimReplay
from serving.engine.config import StrategyEntry
from serving.strategies.hedge import HedgeStrategy
from serving.strategies.market_making import MarketMakingStrategy
from serving.strategies.registry import StrategyEnv, build_strategy, kinds
from serving.strategies.window import WindowDirectionalStrategy
from serving.strategies.window_mm import WindowMarketMaker


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ALPHATIDE_HOME", str(tmp_path / "home"))
    return load_settings()


@pytest.mark.parametrize(
    ("kind", "params", "cls"),
    [
        ("market_making", {"symbol": "ETH/USDT", "gamma": 0.05}, MarketMakingStrategy),
        ("hedge", {"hedge_venue": "perp", "hedge_balance_asset": "USDT"}, HedgeStrategy),
        ("window", {}, WindowDirectionalStrategy),
        ("window_mm", {}, WindowMarketMaker),
    ],
)
def test_kind_builds_through_the_registry(settings: Settings, kind: str, params: dict, cls: type) -> None:
    env = StrategyEnv(settings.engine, frozenset(settings.universe.majors), settings.universe.quote)

    strategy = build_strategy(StrategyEntry(id="s1", kind=kind, venue="spot", params=params), env)

    assert isinstance(strategy, cls)
    assert strategy.strategy_id == "s1"
    assert kind in kinds()


def test_market_making_venue_comes_from_the_entry(settings: Settings) -> None:
    env = StrategyEnv(settings.engine, frozenset(settings.universe.majors), settings.universe.quote)

    mm = build_strategy(StrategyEntry(id="mm", kind="market_making", venue="binance"), env)

    assert isinstance(mm, MarketMakingStrategy) and mm.cfg.venue == "binance"


def test_unknown_params_are_refused(settings: Settings) -> None:
    env = StrategyEnv(settings.engine, frozenset(settings.universe.majors), settings.universe.quote)

    with pytest.raises(ValueError, match="gama"):
        build_strategy(StrategyEntry(id="mm", kind="market_making", params={"gama": 1}), env)


@pytest.mark.realdata
def test_directional_and_market_making_share_an_engine(settings: Settings, shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "binance_ticks" / "usdm"
    if not folder.is_dir():
        pytest.skip(f"no tick capture at {folder}")
    markets = build_markets(BacktestSpec("market_making", folder))
    replay = SimReplay(list(markets.values()))
    symbol = markets["binanceusdm"].symbol
    entries = [
        StrategyEntry(id="dir", kind="directional", venue="binanceusdm", params={"symbols": [symbol]}),
        StrategyEntry(id="mm", kind="market_making", venue="binanceusdm",
                      params={"symbol": symbol, "gamma": 0.001, "horizon_seconds": 60, "order_notional": "100"}),
    ]
    engine, venues = build_backtest_engine(settings, replay, entries, tmp_path / "engine",
                                           {"USDT": Decimal(10_000)}, phase=3)
    engine.start(background=False)

    drive(engine, replay, progress=False)

    orders = engine.store.load_orders(limit=10_000)
    assert orders and {o.strategy_id for o in orders} == {"mm"}
    assert engine.portfolio.of("dir") == []
    assert engine.portfolio.realized.get("dir", Decimal(0)) == 0
    assert engine.contexts["mm"].available_balance("binanceusdm", "USDT") == venues["binanceusdm"].balances()["USDT"]
    assert engine.contexts["dir"].available_balance("nowhere", "USDT") is None
    engine.shutdown()


def test_the_serving_market_maker_reads_the_nightly_table(settings: Settings) -> None:
    from pipelines.trading.market_making.calibration import mm_params_path

    env = StrategyEnv(
        settings.engine, frozenset(settings.universe.majors), settings.universe.quote, lake_dir=settings.lake_dir
    )

    mm = build_strategy(StrategyEntry(id="mm", kind="market_making", params={"symbol": "BTC/USDT"}), env)

    assert isinstance(mm, MarketMakingStrategy)
    assert mm.cfg.params_path == mm_params_path(settings.lake_dir)  # what `mm_params` (features DAG) writes
