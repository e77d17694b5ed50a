"""The hedge strategy in the real engine on two live Binance brokers: spot (primary) and USD-M (hedge).

Both brokers come from the project's factory (`serving.engine.build_broker` -> `LiveBroker` ->
`live_broker.ccxt_client`): one ccxt client per venue, `binance` for spot and `binanceusdm` for USD-M,
each pointed at its local fake (`tests.fakes.trading_venue.FakeTradingVenue` for spot,
`tests.fakes.binance_usdm_venue.FakeBinanceUsdm` for USD-M). The engine's default venue "" is an idle
paper broker; the strategy names its venues by their ccxt ids.

Test limits (said here, not hidden): deployment caps off (`active_phase=None`) so the scenarios can
size freely. Every other switch is on: the concentration switch nets the two legs (one BTC underlying),
and reconciliation runs every 5 s of the engine's clock (spot by balance, USD-M by fetchPositions).

The engine runs synchronously (`start(background=False)`, `tick()`), on a manual clock that starts at
the wall time (the venues stamp fills with theirs). Two transports: REST only (the live brokers poll
the venues at every tick, `sweep_interval_s` 0.05 < each step), or `stream=` the spot fake's user data
stream: both brokers then take order updates from the venues' WebSockets (`order_stream`, drained at
every tick) and poll REST only every 2 s, as the fallback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipelines.config import EngineConfig, Settings, load_settings
from pipelines.trading.config import DeploymentConfig, KillSwitchConfig, TradingConfig, system_clock
from serving.engine import build_broker, build_engine
from serving.engine.broker import PaperBroker
from serving.engine.config import StrategyEntry
from serving.engine.engine import TradingEngine
from serving.engine.events import BookEvent
from serving.engine.live_broker import CcxtMarkets, LiveBroker
from serving.engine.store import TradingStore
from serving.strategies.hedge import HedgeStrategy
from tests.fakes.binance_spot_stream import BinanceSpotStream
from tests.fakes.binance_usdm_venue import TEST_USDM_KEY, TEST_USDM_SECRET, FakeBinanceUsdm
from tests.fakes.trading_venue import TEST_API_KEY, TEST_API_SECRET, FakeTradingVenue
from tests.serving.engine.conftest import ManualClock

SPOT, USDM = "binance", "binanceusdm"
SPOT_SYMBOL, PERP_SYMBOL = "BTC/USDT", "BTC/USDT:USDT"
HEDGE_PARAMS: dict[str, Any] = {
    "primary_venue": SPOT,
    "primary_symbol": SPOT_SYMBOL,
    "hedge_venue": USDM,
    "hedge_symbol": PERP_SYMBOL,
    "hedge_balance_asset": "USDT",
    "hedge_margin_per_notional": "0.05",
    "min_edge_bps": -100.0,  # Binance spot charges its maker 0.1%: no rebate to cover the spread cost
    "phases": ["100", "200"],
    "cooldown_seconds": 0,
}


def trading_config() -> TradingConfig:
    kill = KillSwitchConfig(deployment=DeploymentConfig(active_phase=None))
    return TradingConfig(kill=kill)


def venue_settings(
    home: Path, venue: str, url: str, key: str, secret: str, ws_url: str | None = None, sweep_s: float = 0.05
) -> Settings:
    engine = EngineConfig(
        order_stream=ws_url is not None,
        ws_url=ws_url,
        mode="live",
        venue=venue,
        api_url=url,
        venue_api_key=key,  # type: ignore[arg-type]
        venue_api_secret=secret,  # type: ignore[arg-type]
        trading=trading_config(),
        sweep_interval_s=sweep_s,
        reconcile_interval_s=5,
        backoff_s=0.01,
        request_retries=1,
    )
    return load_settings({}, home=home, engine=engine)


def live_brokers(
    home: Path, spot_url: str, usdm_url: str, clock: Callable[[], datetime], ws: tuple[str, str] | None = None
) -> dict[str, LiveBroker]:
    """The two venues' brokers, each built by the project's factory from its own settings; with `ws`
    (the spot and USD-M user data stream URLs) both watch their order updates on the venue's WebSocket."""
    spot_ws, usdm_ws = ws if ws is not None else (None, None)
    sweep = 2.0 if ws is not None else 0.05  # on the WebSocket, the REST poll is only the fallback
    built = {
        SPOT: build_broker(venue_settings(home, SPOT, spot_url, TEST_API_KEY, TEST_API_SECRET, spot_ws, sweep), clock),
        USDM: build_broker(
            venue_settings(home, USDM, usdm_url, TEST_USDM_KEY, TEST_USDM_SECRET, usdm_ws, sweep), clock
        ),
    }
    out: dict[str, LiveBroker] = {}
    for name, broker in built.items():
        assert isinstance(broker, LiveBroker) and broker.exchange.id == name
        # ccxt's limiter spaces Binance calls by weight (up to a second each); the fakes have no limits.
        broker.exchange.enableRateLimit = False
        out[name] = broker
    return out


def build_hedge_engine(
    home: Path,
    spot_url: str,
    usdm_url: str,
    params: Mapping[str, Any] | None = None,
    clock: Callable[[], datetime] = system_clock,
    ws: tuple[str, str] | None = None,
) -> tuple[TradingEngine, dict[str, LiveBroker]]:
    """The engine (not started) with the hedge on the two live brokers; the default venue "" is idle."""
    sweep = 2.0 if ws is not None else 0.05  # the engine's REST sweep: only the fallback on a stream
    settings = venue_settings(home, SPOT, spot_url, TEST_API_KEY, TEST_API_SECRET, sweep_s=sweep)
    brokers = live_brokers(home, spot_url, usdm_url, clock, ws)
    idle = PaperBroker(CcxtMarkets(SPOT, spot_url), settings.engine.trading.paper, "USDT", Decimal(0))
    entry = StrategyEntry(id="hedge", kind="hedge", venue=SPOT, params={**HEDGE_PARAMS, **(params or {})})
    engine = build_engine(
        settings,
        clock=clock,
        store=TradingStore.sqlite_file(home / "engine.db"),
        brokers={"": idle, **brokers},
        strategies=[entry],
    )
    return engine, brokers


@dataclass
class BinanceHedge:
    engine: TradingEngine
    clock: ManualClock
    spot: FakeTradingVenue
    usdm: FakeBinanceUsdm
    brokers: dict[str, LiveBroker]
    stream: BinanceSpotStream | None = None

    def close(self) -> None:
        """Stop the brokers' WebSocket threads (the engine itself holds nothing else open)."""
        for broker in self.brokers.values():
            broker.close()

    def wait_streams(self, timeout: float = 10.0) -> None:
        """With WebSocket order updates: tick until both venues' user data streams are subscribed."""
        if self.stream is None:
            return
        deadline = time.monotonic() + timeout
        while not (self.stream.streams() and self.usdm.stream_conns()):
            assert time.monotonic() < deadline, "the order streams never connected"
            self.engine.tick()
            time.sleep(0.02)

    @property
    def strategy(self) -> HedgeStrategy:
        strategy = self.engine.strategy("hedge")
        assert isinstance(strategy, HedgeStrategy)
        return strategy

    def books(
        self, spot: tuple[str, str] = ("60000.00", "60000.01"), perp: tuple[str, str] = ("60000.0", "60000.1")
    ) -> None:
        """Both venues' tops, at the venue and as the engine's market data."""
        self.spot.set_book(SPOT_SYMBOL, *spot)
        self.usdm.matcher.set_book("BTCUSDT", *perp)
        for venue, symbol, (bid, ask) in ((USDM, PERP_SYMBOL, perp), (SPOT, SPOT_SYMBOL, spot)):
            self.engine.handle(
                BookEvent(symbol, Decimal(bid), Decimal(ask), Decimal(5), Decimal(5), self.clock.now, venue)
            )

    def advance(self, seconds: float = 0.1, steps: int = 1) -> None:
        for _ in range(steps):
            if self.stream is not None:
                time.sleep(0.02)  # WebSocket pushes take real time; the manual clock would outrun them
            self.clock.advance(seconds)
            self.engine.tick()

    def until(self, done: Any, seconds: float = 0.1, steps: int = 60) -> None:
        """Tick until `done()` holds (each tick polls both venues)."""
        for _ in range(steps):
            if done():
                return
            self.advance(seconds)
        assert done(), "the engine never got there"

    def spot_posts(self) -> list[dict[str, str]]:
        return [p for m, path, p in self.spot.requests if m == "POST" and path == "/api/v3/order"]

    def usdm_posts(self) -> list[dict[str, str]]:
        return [p for m, path, p in self.usdm.requests if m == "POST" and path == "/fapi/v1/order"]

    def spot_position(self) -> Decimal:
        """The venue's own figure: BTC held on the spot account."""
        return self.spot.balance("BTC")

    def perp_position(self) -> Decimal:
        """The venue's own figure, read through the hedge broker's ccxt client (`fetch_positions`)."""
        positions = self.brokers[USDM].exchange.fetch_positions([PERP_SYMBOL])  # ccxt leaves out flat ones
        out = Decimal(0)
        for p in positions:
            contracts = Decimal(str(p["contracts"] or 0))
            out += -contracts if p["side"] == "short" else contracts
        return out

    @property
    def venue_net(self) -> Decimal:
        return self.spot_position() + self.perp_position()

    @property
    def engine_net(self) -> Decimal:
        ctx = self.engine.contexts["hedge"]
        return ctx.position(SPOT_SYMBOL, SPOT) + ctx.position(PERP_SYMBOL, USDM)

    def records(self) -> list[Any]:
        return list(self.strategy.records)


def start_hedge(
    home: Path,
    spot: FakeTradingVenue,
    usdm: FakeBinanceUsdm,
    params: Mapping[str, Any] | None = None,
    *,
    clock: ManualClock | None = None,
    stream: BinanceSpotStream | None = None,
) -> BinanceHedge:
    """A started engine (recovery, clean start, reconcile) running the hedge on the two live brokers."""
    clock = clock or ManualClock(datetime.now(UTC).replace(microsecond=0))
    ws = (stream.ws_url, usdm.ws_url) if stream is not None else None
    engine, brokers = build_hedge_engine(home, spot.base_url, usdm.base_url, params, clock, ws)
    engine.start(background=False)
    hedge = BinanceHedge(engine, clock, spot, usdm, brokers, stream)
    hedge.wait_streams()
    return hedge
