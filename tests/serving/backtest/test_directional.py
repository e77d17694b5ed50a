"""The directional backtest runs the serving engine's own strategy: same SignalEvents, same decisions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.config import Settings, load_settings
from serving.backtest import cli as cli_backtest
from serving.backtest.runner import BacktestSpec, build_backtest_engine, build_markets, drive, strategy_entry
from serving.brokers.sim.replay import SimReplay
from serving.brokers.sim.venue import SimulatedVenue
from serving.engine import build_engine
from serving.engine.engine import TradingEngine
from serving.engine.events import BookEvent, SignalEvent, TradeEvent
from serving.engine.persistence.store import TradingStore
from serving.strategies.directional import DirectionalStrategy

pytestmark = [pytest.mark.realdata]


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ALPHATIDE_HOME", str(tmp_path / "home"))
    return load_settings()


@pytest.fixture()
def capture(shared_data: Path) -> Path:
    folder = shared_data / "binance_ticks" / "spot"
    if not folder.is_dir():
        pytest.skip(f"no tick capture at {folder}")
    return folder


def _signals() -> Callable[[BookEvent | TradeEvent], list[SignalEvent]]:
    """A fixed, event-driven signal schedule: one strongly bullish signal every 20 s of event time."""
    state: dict[str, object] = {"next": None}

    def signals(event: BookEvent | TradeEvent) -> list[SignalEvent]:
        due = state["next"]
        if not isinstance(event, BookEvent) or (due is not None and event.ts < due):  # type: ignore[operator]
            return []
        state["next"] = event.ts + timedelta(seconds=20)
        spread = float((event.ask - event.bid) / event.ask)
        return [SignalEvent(event.symbol, 0.9, event.ts, vpin=0.3, hurst=0.6, spread=spread, spread_norm=spread * 2,
                            volume=10.0, volume_norm=5.0, volatility=0.002, expected_return=0.004)]

    return signals


def _decisions(engine: TradingEngine) -> list[tuple[object, ...]]:
    return [(d.ts, d.symbol, d.action, d.reason) for d in engine.decisions if d.strategy_id == "directional"]


def test_backtest_engine_takes_the_engines_decisions(settings: Settings, capture: Path, tmp_path: Path) -> None:
    spec = BacktestSpec("directional", capture, phase=3)
    balances = {"USDT": Decimal(10_000)}
    # the backtest's engine and driver
    markets = build_markets(spec)
    replay = SimReplay(list(markets.values()))
    entry = strategy_entry(spec, markets)
    engine, _ = build_backtest_engine(settings, replay, [entry], tmp_path / "a", balances, phase=3)
    engine.start(background=False)
    drive(engine, replay, signals=_signals(), progress=False)
    # the serving engine from its factory, fed the same events by the replay recipe of serving.brokers.sim
    replay2 = SimReplay(list(build_markets(spec).values()))
    brokers = dict(replay2.venues(balances))
    plain = build_engine(
        settings.model_copy(update={"engine": engine.cfg}), clock=replay2.clock, strategies=[entry],
        brokers={**brokers, "": SimulatedVenue("", [], balances)}, store=TradingStore.sqlite_file(tmp_path / "b.db"),
    )
    plain.start(background=False)
    signals, next_tick = _signals(), None
    for event in replay2.events():
        plain.handle(event)
        for signal in signals(event):
            plain.handle(signal)
        for ex in plain.executions.values():
            ex.poll(replay2.clock())
        if next_tick is None or replay2.clock() >= next_tick:
            plain.tick(replay2.clock())
            next_tick = replay2.clock() + timedelta(seconds=plain.cfg.tick_interval_s)

    assert type(engine) is type(plain) is TradingEngine
    assert isinstance(engine.strategies["directional"], DirectionalStrategy)
    assert type(engine.strategies["directional"]) is type(plain.strategies["directional"])
    got, want = _decisions(engine), _decisions(plain)
    assert got, "the directional strategy decided nothing on the signals"
    assert got == want
    engine.shutdown()
    plain.shutdown()


def test_directional_without_a_champion_exits_2(settings: Settings, capture: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.cli import main

    code = main(["backtest", "--strategy", "directional", "--capture", str(capture), "--out", str(tmp_path / "o")])

    assert code == 2
    assert "no champion model" in capsys.readouterr().err
    assert cli_backtest.COMMANDS == ("backtest",)


@pytest.mark.slow
def test_champion_scores_the_replayed_stream(serving_home: Settings, capture: Path, tmp_path: Path) -> None:
    from serving.backtest.directional import ChampionSignals, champion_signals
    from serving.backtest.runner import run_backtest

    made: list[ChampionSignals] = []
    factory = champion_signals(serving_home, capture, "BTCUSDT", "BTC/USDT")

    def tracked(engine: TradingEngine) -> ChampionSignals:
        made.append(factory(engine))
        return made[0]

    spec = BacktestSpec("directional", capture, out=tmp_path / "out", progress=False, phase=3)
    result = run_backtest(serving_home, spec, signals_factory=tracked)

    emitted = made[0].emitted
    assert emitted, "the stream pipeline scored nothing on the capture"
    assert {s.symbol for s in emitted} == {"BTC/USDT"}
    assert all(0.0 <= s.p_up <= 1.0 for s in emitted)
    assert made[0].pipeline.events > 0
    assert result.engine.risk.signals["BTC/USDT"] == emitted[-1]
