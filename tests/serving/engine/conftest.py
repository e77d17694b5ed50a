"""Fixtures for the trading runtime: a fake venue, a manual clock, and an engine harness."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import EngineConfig, Settings, load_settings
from pipelines.trading.config import DeploymentConfig, KillSwitchConfig, TradingConfig
from pipelines.trading.killswitch import Action
from serving.engine import build_engine
from serving.engine.broker import Broker, PaperBroker
from serving.engine.config import StrategyEntry
from serving.engine.engine import TradingEngine
from serving.engine.events import BookEvent, SignalEvent, TradeEvent
from serving.engine.live_broker import CcxtMarkets, LiveBroker
from serving.engine.store import TradingStore
from serving.strategies.directional import DirectionalStrategy
from tests.fakes.trading_venue import TEST_API_KEY, TEST_API_SECRET, FakeTradingVenue

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DIRECTIONAL_ONLY = (StrategyEntry(id="directional", kind="directional"),)  # independent of ALPHATIDE_STRATEGIES
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT", "DOGE/USDT", "LINK/USDT"]


class ManualClock:
    """An injectable UTC clock that only moves when told."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def venue_markets() -> dict[str, tuple[str, str]]:
    return {s.replace("/", ""): (s.split("/")[0], "USDT") for s in SYMBOLS}


@pytest.fixture(scope="module")
def market_venue() -> Iterator[FakeTradingVenue]:
    """A fake venue used only for its public market metadata (the paper broker's load_markets)."""
    with FakeTradingVenue(venue_markets()) as venue:
        yield venue


@pytest.fixture
def venue() -> Iterator[FakeTradingVenue]:
    """A fresh fake venue for live-broker tests (10,000 USDT)."""
    with FakeTradingVenue(venue_markets(), {"USDT": Decimal(10_000)}) as v:
        yield v


def graduated(**kill: Any) -> TradingConfig:
    """Trading config without deployment-phase caps (kill-switch scenarios on a 10,000 account)."""
    return TradingConfig(kill=KillSwitchConfig(deployment=DeploymentConfig(active_phase=None), **kill))


@dataclass
class Harness:
    engine: TradingEngine
    clock: ManualClock
    settings: Settings
    venue: FakeTradingVenue
    actions: list[tuple[Action, str]] = field(default_factory=list)

    @property
    def store(self) -> TradingStore:
        return self.engine.store

    @property
    def directional(self) -> DirectionalStrategy:
        strategy = self.engine.strategy("directional")
        assert isinstance(strategy, DirectionalStrategy)
        return strategy

    def book(self, symbol: str, bid: str, ask: str, size: str = "5") -> None:
        self.engine.handle(BookEvent(symbol, Decimal(bid), Decimal(ask), Decimal(size), Decimal(size), self.clock.now))

    def trade(self, symbol: str, price: str, size: str) -> None:
        self.engine.handle(TradeEvent(symbol, Decimal(price), Decimal(size), self.clock.now))

    def signal(self, symbol: str, p_up: float = 0.8, **features: Any) -> None:
        self.engine.handle(SignalEvent(symbol, p_up, self.clock.now, **features))

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.engine.tick()

    def orders(self, symbol: str | None = None) -> list[Any]:
        """Stored orders, oldest first."""
        stored = self.store.load_orders()
        return [s for s in reversed(stored) if symbol is None or s.order.symbol == symbol]

    def open_long(self, symbol: str, bid: str = "100.00", ask: str = "100.01") -> None:
        """Enter (post-only at the bid) and get filled by a trade through the bid."""
        self.book(symbol, bid, ask)
        self.signal(symbol)
        self.advance(0.1)  # paper latency: the order becomes live
        below = str(Decimal(bid) - Decimal("0.05"))
        self.trade(symbol, below, "10")
        assert symbol in self.engine.positions, self.engine.decisions[-1]


def make_settings(home: Path, trading: TradingConfig, **engine: Any) -> Settings:
    return load_settings({}, home=home, engine=EngineConfig(trading=trading, **engine))


@pytest.fixture
def paper(tmp_path: Path, market_venue: FakeTradingVenue) -> Callable[..., Harness]:
    """Factory: a started paper engine (synchronous: no worker thread) with a manual clock."""
    made: list[TradingEngine] = []

    def factory(
        trading: TradingConfig | None = None, *, strategies: Sequence[StrategyEntry] | None = None, **engine_cfg: Any
    ) -> Harness:
        clock = ManualClock()
        settings = make_settings(tmp_path / f"home{len(made)}", trading or TradingConfig(), **engine_cfg)
        broker: Broker = PaperBroker(
            CcxtMarkets("binance", market_venue.base_url),
            settings.engine.trading.paper,
            "USDT",
            settings.engine.paper_starting_balance,
        )
        engine = build_engine(settings, clock=clock, broker=broker, strategies=strategies or DIRECTIONAL_ONLY)
        engine.start(background=False)
        made.append(engine)
        harness = Harness(engine, clock, settings, market_venue)
        engine.action_listeners.append(lambda action, why: harness.actions.append((action, why)))
        return harness

    return factory


@pytest.fixture
def live(tmp_path: Path, venue: FakeTradingVenue) -> Callable[..., Harness]:
    """Factory: a started engine on the live broker (real ccxt) against the fake venue."""
    count = [0]

    def factory(trading: TradingConfig | None = None, *, start: bool = True, **engine_cfg: Any) -> Harness:
        clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
        engine_cfg.setdefault("backoff_s", 0.01)
        settings = make_settings(
            tmp_path / f"live{count[0]}",
            trading or TradingConfig(),
            mode="live",
            api_url=venue.base_url,
            venue_api_key=TEST_API_KEY,
            venue_api_secret=TEST_API_SECRET,
            **engine_cfg,
        )
        count[0] += 1
        engine = build_engine(settings, clock=clock, strategies=DIRECTIONAL_ONLY)
        assert isinstance(engine.broker, LiveBroker)
        # The real limiter spaces Binance calls by their weight (up to a second each); the fake has no
        # limits, and the limiter itself is ccxt's, not ours: off here to keep the suite fast.
        engine.broker.exchange.enableRateLimit = False
        if start:
            engine.start(background=False)
        return Harness(engine, clock, settings, venue)

    return factory
