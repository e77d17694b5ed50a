"""The trading engine: strategies (directional by default) on paper (default) or live brokers.

Interface for the serving tier (the stream, the scorer, the app)
================================================================

Build and run (one engine per process)::

    from serving.engine import build_engine
    engine = build_engine(settings)      # paper unless ALPHATIDE_ENGINE__MODE=live; nothing is sent yet
                                         # strategies: ALPHATIDE_STRATEGIES (or strategies=[StrategyEntry...])
                                         # more venues: ALPHATIDE_VENUES (or brokers={"hedge": broker})
                                         # clock= injectable
    engine.start()                       # recover from the store, clean start, reconcile, worker thread
    ...
    engine.shutdown()                    # stop entries, cancel resting orders, persist, stop the worker

In the FastAPI app, `trading_lifespan(app, settings)` does exactly that around `yield` and publishes the
engine as `app.state.trading_engine` (the router of `serving.api.trading` reads it from there); with
`ALPHATIDE_ENGINE__ENABLED=false` it yields `None` and the trading endpoints answer 503.

Feed it (thread-safe, never blocks: events are queued for the engine's worker thread)::

    engine.submit(SignalEvent(symbol="BTC/USDT", p_up=0.61, ts=now_utc, vpin=..., hurst=..., spread=...,
                              spread_norm=..., volume=..., volume_norm=..., volatility=...,
                              expected_return=..., kyle_lambda=..., kyle_lambda_threshold=...))
    engine.submit(BookEvent(symbol, bid, ask, bid_size, ask_size, ts))      # Decimal prices and sizes
    engine.submit(TradeEvent(symbol, price, size, ts, aggressor=Side.BUY))  # public prints
    engine.submit(HealthEvent(calibration_error=..., drift_p_value=..., inference_p99_ms=...,
                              memory_bytes=..., live_pnl=..., simulated_pnl=...))

`submit` returns False when the queue is full (the event is dropped and counted in `status()`).
Replays and tests may call `engine.handle(event)` and `engine.tick(now)` synchronously instead of
`start()`; when the events carry historical timestamps pass `clock=ReplayClock(first_ts)` to
`build_engine`: the engine then runs on the events' time (TTLs, pauses, book ages).

Read it: `engine.status()` (kill switches, equity, phase, per-strategy status, recent decisions),
`engine.position_snapshots()` (with the strategy of each position),
`engine.store.load_orders(limit=...)`, `engine.store.alerts()`. Control it: `engine.kill(reason)`,
`engine.resume()`. Actions for the serving tier (retrain, degrade to the tabular tower, shed caches):
`engine.action_listeners.append(callback(action, reason))`.

Modules: `events` (inputs), `strategy` (the strategy contract), `engine` (`TradingEngine`, the router),
`portfolio`, `execution`, `risk`, `reconcile`, `persistence/` (`TradingStore`: SQLite/PostgreSQL),
`context` (a strategy's `StrategyContext`), `status`, `counters`, `routing`, `config` (strategy
entries, health and Airflow settings), `broker` (`Broker` protocol, `PaperBroker`), `live_broker`
(`LiveBroker` through ccxt, `CcxtMarkets`), `leader_lease` / `leadership` / `takeover` (serving replicas:
one active engine behind a PostgreSQL advisory lock); `runtime` and `store` are compatibility aliases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.trading.config import system_clock
from serving.engine.broker import Broker, BrokerError, PaperBroker, VenueOrderView
from serving.engine.config import EngineExtras, StrategyEntry, VenueEntry, load_extras
from serving.engine.engine import TradingEngine
from serving.engine.events import BookEvent, EngineEvent, HealthEvent, ReplayClock, SignalEvent, TradeEvent
from serving.engine.status import EngineStatus, PositionSnapshot
from serving.engine.store import StoreError, TradingStore
from serving.engine.strategy import Strategy
from serving.engine.venues import VenueSpec, check_strategy_venues, resolve_venues

__all__ = [
    "BookEvent",
    "Broker",
    "BrokerError",
    "EngineEvent",
    "EngineStatus",
    "HealthEvent",
    "LiveBroker",
    "PaperBroker",
    "PositionSnapshot",
    "ReplayClock",
    "SignalEvent",
    "StoreError",
    "TradeEvent",
    "TradingEngine",
    "TradingStore",
    "VenueOrderView",
    "build_engine",
    "engine_home",
    "trading_lifespan",
]


def __getattr__(name: str) -> Any:
    # ccxt (about 50 MB) is imported only when a broker is built, not by every importer of the package.
    if name in {"LiveBroker", "CcxtMarkets"}:
        from serving.engine import live_broker

        return getattr(live_broker, name)
    raise AttributeError(name)


def engine_home(settings: Settings) -> Path:
    """Where the engine keeps its SQLite file and default pause file: `<home>/trading`."""
    return settings.home / "trading"


def open_store(settings: Settings) -> TradingStore:
    """PostgreSQL when `ALPHATIDE_ENGINE__DSN` is set, else SQLite at `<home>/trading/engine.db`."""
    dsn = settings.engine.dsn
    if dsn is not None:
        return TradingStore(dsn.get_secret_value())
    return TradingStore.sqlite_file(engine_home(settings) / "engine.db")


def build_broker(
    settings: Settings, clock: Callable[[], datetime] = system_clock, venue: VenueSpec | None = None
) -> Broker:
    """Paper (default) or live broker of the default venue, or of `venue` (an `ALPHATIDE_VENUES` entry);
    live needs the venue's keys (validated by the settings, or by `resolve_venues`)."""
    from serving.engine.live_broker import CcxtMarkets, LiveBroker

    cfg = settings.engine
    if venue is None:
        keys = {"apiKey": cfg.venue_api_key, "secret": cfg.venue_api_secret}
        venue = VenueSpec(
            cfg.venue, cfg.mode, cfg.api_url, cfg.ws_url, cfg.order_stream,
            {k: v for k, v in keys.items() if v is not None},
        )
        if venue.mode == "live" and len(venue.credentials) < 2:
            raise ValueError("live mode needs ALPHATIDE_ENGINE__VENUE_API_KEY and ..._VENUE_API_SECRET")
    if venue.name == "polymarket":  # window-market outcome tokens (issue 17.5): paper only for now
        from serving.engine.window_paper import build_window_paper_broker

        return build_window_paper_broker(settings, venue)
    if venue.mode == "live":
        return LiveBroker(
            venue.name,
            venue.credentials.get("apiKey"),
            venue.credentials.get("secret"),
            credentials=venue.credentials,
            order_cfg=cfg.trading.orders,
            api_url=venue.api_url,
            order_stream=venue.order_stream,
            ws_url=venue.ws_url,
            retries=cfg.request_retries,
            backoff_s=cfg.backoff_s,
            error_window_s=cfg.api_error_window_s,
            clock=clock,
        )
    return PaperBroker(
        CcxtMarkets(venue.name, venue.api_url),
        cfg.trading.paper,
        settings.universe.quote,
        cfg.paper_starting_balance,
        cfg.paper_starting_assets,
    )


def build_venue_brokers(
    settings: Settings, clock: Callable[[], datetime] = system_clock, entries: Sequence[VenueEntry] | None = None
) -> dict[str, Broker]:
    """One broker per `ALPHATIDE_VENUES` entry (keyed by its name), through `build_broker`."""
    entries = tuple(entries) if entries is not None else load_extras().venues
    return {spec.name: build_broker(settings, clock, spec) for spec in resolve_venues(settings.engine, entries)}


def build_strategies(
    settings: Settings, entries: Sequence[StrategyEntry] | None = None
) -> tuple[list[Strategy], dict[str, Decimal | None], dict[str, str]]:
    """The configured strategies (`ALPHATIDE_STRATEGIES`, default: directional on the whole account)."""
    from serving.strategies.registry import StrategyEnv, build_strategy

    entries = tuple(entries) if entries is not None else load_extras().strategies
    env = StrategyEnv(
        settings.engine, frozenset(settings.universe.majors), settings.universe.quote, lake_dir=settings.lake_dir
    )
    strategies = [build_strategy(entry, env) for entry in entries]
    return strategies, {e.id: e.allocation for e in entries}, {e.id: e.kind for e in entries}


def _of(extras: EngineExtras | None) -> EngineExtras:
    assert extras is not None
    return extras


def build_engine(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = system_clock,
    broker: Broker | None = None,
    store: TradingStore | None = None,
    brokers: Mapping[str, Broker] | None = None,
    strategies: Sequence[StrategyEntry] | None = None,
    venues: Sequence[VenueEntry] | None = None,
) -> TradingEngine:
    """The engine as configured (nothing is sent to any venue until `start()`).

    `clock` is injectable (a `ReplayClock` runs the engine on the events' time). `brokers` adds venues
    besides the default one (key "" is the default; `broker` overrides just that one). Without
    `brokers`, the venues of `ALPHATIDE_VENUES` (or `venues`) get one broker each, keyed by name.
    `strategies` overrides the configured strategy entries; a strategy naming a venue without a broker
    is a `ConfigError` (before any broker is built).
    """
    cfg = settings.engine
    extras = load_extras() if strategies is None or (brokers is None and venues is None) else None
    entries = tuple(strategies) if strategies is not None else _of(extras).strategies
    if brokers is None:
        configured = tuple(venues) if venues is not None else _of(extras).venues
        check_strategy_venues(entries, [v.name for v in configured])
        brokers = build_venue_brokers(settings, clock, configured)
    venue_brokers: dict[str, Broker] = dict(brokers)
    if broker is not None or "" not in venue_brokers:
        venue_brokers[""] = broker if broker is not None else build_broker(settings, clock)
    built, allocations, kinds = build_strategies(settings, entries)
    return TradingEngine(
        cfg,
        venue_brokers,
        store if store is not None else open_store(settings),
        quote=settings.universe.quote,
        majors=settings.universe.majors,
        pause_file=cfg.pause_file or engine_home(settings) / "PAUSE",
        clock=clock,
        strategies=built,
        allocations=allocations,
        kinds=kinds,
        default_venues={e.id: e.venue for e in entries},
    )


@asynccontextmanager
async def trading_lifespan(
    app: Any, settings: Settings, *, clock: Callable[[], datetime] = system_clock
) -> AsyncIterator[None]:
    """Run the engine for the app's lifetime; `app.state.trading_engine` is the engine (or None if disabled).

    Composable: another lifespan can `async with trading_lifespan(app, settings):` around its own work.
    A replay of recorded events with their original timestamps passes `clock=ReplayClock(first_ts)`.
    With `engine.leader.enabled` (serving replicas) the engine runs only while this process holds the
    leader lease (`serving.engine.leadership`; `app.state.leadership`).
    """
    app.state.leadership = None
    if not settings.engine.enabled:
        app.state.trading_engine = None
        yield
        return
    if settings.engine.leader.enabled:  # replicas: build and start it only while holding the lease
        from serving.engine.leadership import leader_lifespan

        async with leader_lifespan(app, settings, lambda: build_engine(settings, clock=clock)):
            yield
        return
    engine = build_engine(settings, clock=clock)
    engine.start()
    app.state.trading_engine = engine
    try:
        yield
    finally:
        app.state.trading_engine = None
        engine.shutdown()
