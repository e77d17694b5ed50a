"""Backtests on recorded ticks: the real engine (`build_engine`) on `SimulatedVenue` brokers.

`run_backtest(settings, spec)`:

1. one `SimMarket` per recorded venue (`spec.capture` is the strategy's venue, `spec.venues` adds named
   ones, e.g. the hedge leg), all with the same `SimVenueConfig` (queue model, latency, fees, seed);
2. `SimReplay(markets)`: its `ReplayClock` is the engine's clock and `replay.venues()` its brokers;
3. the engine from `build_engine(settings, brokers=..., strategies=[entry], clock=replay.clock)`, the
   strategy built from the registry by kind (the same object the serving engine would run);
4. for every replayed event inside ``[start, end)``: `engine.handle(event)`, then every venue is polled
   (`Execution.poll`: the sim answers that reached us since the last poll) and, every
   `engine.tick_interval_s` of event time, `engine.tick(now)` (timers, TTLs, sweeps, risk);
   `signals(event)` (the directional backtest's scorer) may add `SignalEvent`s after a market event;
5. the report per market (`pipelines.sim.report.write_report` into ``out/<venue>/``) and a combined
   ``out/summary.json`` (per-market summaries, their totals, the fees each market ran with, the starting
   balances, and the strategy's own counters).

A spot market maker starts holding base (`initial_inventory`): `spec.initial_base_notional` of quote
(default: half the quote starting balance) is moved into base at the first mid, and the strategy's
`inventory_target` is that base, so q = 0 and both sides quote from the first book; a perpetual starts
flat (target 0). The report's PnL is the maker's own (its fills against the held target), not the
target holding's price move.

Everything runs on event time: the same capture, config and seed give the same report.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.marketdata.binance_capture import binance_symbol
from pipelines.sim.book import INF, L2Book
from pipelines.sim.config import SimVenueConfig
from pipelines.sim.feed import BUY_TRADE, SELL_TRADE, Feed, feed_from_binance_capture, infer_market
from pipelines.sim.market import SimMarket
from pipelines.sim.report import records_from_market, write_report
from serving.backtest.instruments import FEE_FIELDS, resolve_instrument
from serving.backtest.instruments import FIELDS as INSTRUMENT_FIELDS
from serving.brokers.sim.replay import SimReplay
from serving.brokers.sim.venue import SimulatedVenue
from serving.engine import TradingStore, build_engine
from serving.engine.broker import base_quote
from serving.engine.config import StrategyEntry
from serving.engine.engine import TradingEngine
from serving.engine.events import BookEvent, EngineEvent, TradeEvent

log = logging.getLogger("alphatide.backtest")
VENUE_OF_MARKET = {"spot": "binance", "usdm": "binanceusdm"}  # as `feed_from_binance_capture` names them

SignalSource = Callable[[BookEvent | TradeEvent], Iterable[EngineEvent]]
# The parts of a market's summary that add up over markets (quote currency or counts).
_ADDITIVE = ("pnl", "spread_capture", "inventory_pnl", "fees_and_rebates", "orders", "fills")
_UPTIMES = ("quote_uptime", "bid_uptime", "ask_uptime")


@dataclass(frozen=True)
class BacktestSpec:
    strategy: str  # a registry kind
    capture: Path  # folder of <symbol>_*.gz captures of the strategy's venue
    venues: Mapping[str, Path] = field(default_factory=dict)  # extra venues: name -> capture folder
    symbol: str = "BTCUSDT"  # exchange id of the capture files
    start: datetime | None = None
    end: datetime | None = None
    out: Path = Path("backtest")
    sim: SimVenueConfig = field(default_factory=SimVenueConfig)
    params: Mapping[str, Any] = field(default_factory=dict)  # the strategy entry's params (override defaults)
    starting_balances: Mapping[str, Decimal] = field(default_factory=lambda: {"USDT": Decimal(10_000)})
    bar_s: float = 1.0
    progress: bool = True
    phase: int | None = None  # deployment phase for the run (0 = graduated); None = as configured
    # Quote moved into base at the first mid before the run (a spot market maker's target holding).
    # None: half the quote starting balance for market_making on spot, else 0. Perpetuals hold no base.
    initial_base_notional: Decimal | None = None


@dataclass
class BacktestResult:
    summary: dict[str, Any]
    engine: TradingEngine
    markets: list[SimMarket]
    out: Path


def load_feed(folder: Path, symbol: str, sim: SimVenueConfig | None = None) -> Feed:
    """The capture's feed on `sim`'s tick and lot (inferred from the data where unset)."""
    files = sorted(folder.glob(f"{symbol.lower()}_*.gz"))
    if not files:
        raise FileNotFoundError(f"no capture files {symbol.lower()}_*.gz under {folder}")
    market = infer_market(files[0])
    return feed_from_binance_capture(files, binance_symbol(symbol, market), market=market,
                                     tick_size=sim.tick_size if sim else None, lot_size=sim.lot_size if sim else None)


def _capture_market(folder: Path, symbol: str, sim: SimVenueConfig, name: str | None,
                    lake_dir: Path | None) -> SimMarket:
    files = sorted(folder.glob(f"{symbol.lower()}_*.gz"))
    if not files:
        raise FileNotFoundError(f"no capture files {symbol.lower()}_*.gz under {folder}")
    market = infer_market(files[0])
    venue = VENUE_OF_MARKET[market]
    sim = resolve_instrument(sim, lake_dir, venue, binance_symbol(symbol, market))
    return sim.model_copy(update={"venue": name or venue}).build(load_feed(folder, symbol, sim))


def build_markets(spec: BacktestSpec, lake_dir: Path | None = None) -> dict[str, SimMarket]:
    """Venue name -> its market: the capture's own venue name (binance, binanceusdm) or the given name.

    Instrument rules (`serving.backtest.instruments`): `spec.sim`'s fields for the strategy's capture, then
    the lake's cached `load_markets` rows; an extra venue takes only the lake's.
    """
    main = _capture_market(spec.capture, spec.symbol, spec.sim, None, lake_dir)
    markets = {main.venue: main}
    bare = spec.sim.model_copy(update=dict.fromkeys((*INSTRUMENT_FIELDS, *FEE_FIELDS)))
    for name, folder in spec.venues.items():
        if name in markets:
            raise ValueError(f"venue {name!r} is given twice")
        markets[name] = _capture_market(folder, spec.symbol, bare, name, lake_dir)
    return markets


def strategy_entry(spec: BacktestSpec, markets: Mapping[str, SimMarket]) -> StrategyEntry:
    """The strategy's entry: defaults that fit the replayed markets, then `spec.params` on top."""
    names = list(markets)
    main = markets[names[0]]
    params: dict[str, Any] = {}
    if spec.strategy == "market_making":
        params = {"symbol": main.symbol, "venue": main.venue, "gamma": 0.001, "order_notional": "100",
                  "allow_short": main.symbol.endswith(":USDT")}
    elif spec.strategy == "hedge":
        if len(names) < 2:
            raise ValueError("the hedge backtest needs a second venue: --venue NAME=DIR (the hedge leg)")
        hedge = markets[names[1]]
        params = {"primary_venue": main.venue, "primary_symbol": main.symbol, "hedge_venue": hedge.venue,
                  "hedge_symbol": hedge.symbol, "hedge_balance_asset": "USDT", "min_edge_bps": -100.0,
                  "phases": ["100", "200", "400"]}
    elif spec.strategy == "directional":
        params = {"symbols": [main.symbol]}
    params.update(spec.params)
    return StrategyEntry(id=spec.strategy.replace("_", "-")[:48], kind=spec.strategy, venue=main.venue,
                         params=params)


def first_mid(feed: Feed, start: datetime | None = None) -> Decimal | None:
    """The first two-sided mid of `feed` received at or after `start` (None: the book never has both sides)."""
    book = L2Book()
    since = -1 if start is None else int(start.timestamp() * 1e9)
    for k, px, qty, ts in zip(feed.kind, feed.px, feed.qty, feed.local_ts, strict=True):
        if int(k) not in (BUY_TRADE, SELL_TRADE):
            book.apply(int(k), int(px), int(qty))
        if int(ts) >= since and book.best_bid > -INF and book.best_ask < INF and book.best_bid < book.best_ask:
            return Decimal(book.best_bid + book.best_ask) * feed.tick_size / 2
    return None


def initial_inventory(spec: BacktestSpec, main: SimMarket) -> BacktestSpec:
    """`spec` with the spot market maker's target holding funded (see the module docstring)."""
    spot = ":" not in main.symbol  # ccxt: a derivative is BASE/QUOTE:SETTLE
    notional = spec.initial_base_notional
    if spec.strategy != "market_making" or not spot:
        if notional:
            raise ValueError(f"initial_base_notional {notional}: only a spot market maker starts holding base")
        return spec
    base, quote = base_quote(main.symbol)
    if notional is None:
        given = spec.params.get("inventory_target_notional")
        notional = Decimal(str(given)) if given is not None else spec.starting_balances.get(quote, Decimal(0)) / 2
    mid = first_mid(main.feed, spec.start)
    if mid is None or mid <= 0:
        return spec
    size = (notional / mid / main.feed.lot_size).to_integral_value(rounding=ROUND_FLOOR) * main.feed.lot_size
    if "inventory_target" in spec.params:
        size = Decimal(str(spec.params["inventory_target"]))
    balances = dict(spec.starting_balances)
    balances[base] = balances.get(base, Decimal(0)) + size
    balances[quote] = balances.get(quote, Decimal(0)) - size * mid
    params = dict(spec.params)
    if "inventory_target_notional" not in params:
        params.setdefault("inventory_target", str(size))
    return replace(spec, starting_balances=balances, params=params)


def build_backtest_engine(
    settings: Settings, replay: SimReplay, entries: list[StrategyEntry], home: Path,
    starting_balances: Mapping[str, Decimal] | None = None, phase: int | None = None,
) -> tuple[TradingEngine, dict[str, SimulatedVenue]]:
    """The real engine over the replay's venues; the default venue "" is an empty simulated one."""
    home.mkdir(parents=True, exist_ok=True)
    db = home / "engine.db"
    db.unlink(missing_ok=True)
    venues = replay.venues(starting_balances)
    brokers: dict[str, Any] = dict(venues)
    brokers[""] = SimulatedVenue("", [], starting_balances)
    # Reconciliation runs as live: spot from the simulated balances, the perpetual from its positions.
    cfg = settings.engine.model_copy(update={"pause_file": home / "PAUSE"})
    if phase is not None:
        kill = cfg.trading.kill
        deployment = kill.deployment.model_copy(update={"active_phase": phase or None})
        kill = kill.model_copy(update={"deployment": deployment})
        cfg = cfg.model_copy(update={"trading": cfg.trading.model_copy(update={"kill": kill})})
    engine = build_engine(settings.model_copy(update={"engine": cfg}), clock=replay.clock,
                          store=TradingStore.sqlite_file(db), brokers=brokers, strategies=entries)
    return engine, venues


def drive(
    engine: TradingEngine, replay: SimReplay, *, start: datetime | None = None, end: datetime | None = None,
    signals: SignalSource | None = None, progress: bool = True,
) -> int:
    """Feed the replay to the engine (see the module docstring); returns the events handled."""
    from tqdm import tqdm

    tick_every = timedelta(seconds=engine.cfg.tick_interval_s)
    next_tick: datetime | None = None
    total = sum(m.n for m in replay.markets)
    bar = tqdm(total=total, unit="row", desc="backtest", disable=not progress, mininterval=1.0)
    handled, done = 0, 0
    for event in replay.events():
        now = replay.clock()
        if end is not None and now >= end:
            break
        if start is not None and now < start:
            continue
        engine.handle(event)
        for extra in signals(event) if signals is not None else ():
            engine.handle(extra)
        for ex in engine.executions.values():
            ex.poll(now)
        if next_tick is None or now >= next_tick:
            engine.tick(now)
            next_tick = now + tick_every
        handled += 1
        if handled % 2000 == 0:
            rows = sum(m.j for m in replay.markets)
            bar.update(rows - done)
            done = rows
    bar.update(sum(m.j for m in replay.markets) - done)
    bar.close()
    return handled


def _combined(per_market: dict[str, dict[str, Any]]) -> dict[str, Any]:
    totals = {k: sum(s[k] for s in per_market.values()) for k in _ADDITIVE}
    orders = totals["orders"]
    filled = sum(s["fill_rate"] * s["orders"] for s in per_market.values())
    totals["fill_rate"] = filled / orders if orders else 0.0
    span = {name: s["end_ns"] - s["start_ns"] for name, s in per_market.items()}
    whole = sum(span.values())
    for key in _UPTIMES:  # time-weighted over the markets
        totals[key] = sum(s[key] * span[n] for n, s in per_market.items()) / whole if whole else 0.0
    return totals


def run_backtest(
    settings: Settings, spec: BacktestSpec, *, signals_factory: Callable[[TradingEngine], SignalSource] | None = None
) -> BacktestResult:
    markets = build_markets(spec, settings.lake_dir)
    spec = initial_inventory(spec, next(iter(markets.values())))
    replay = SimReplay(list(markets.values()))
    entry = strategy_entry(spec, markets)
    engine, _ = build_backtest_engine(settings, replay, [entry], spec.out / "engine", spec.starting_balances,
                                      spec.phase)
    engine.start(background=False)
    signals = signals_factory(engine) if signals_factory is not None else None
    try:
        handled = drive(engine, replay, start=spec.start, end=spec.end, signals=signals, progress=spec.progress)
    finally:
        engine.shutdown()
    per_market = {
        name: write_report(records_from_market(m), spec.out / name, spec.bar_s) for name, m in markets.items()
    }
    strategy = engine.strategies[entry.id]
    snapshot = getattr(strategy, "status", None) or getattr(strategy, "snapshot", None)
    summary = {
        "strategy": entry.kind,
        "strategy_id": entry.id,
        "params": entry.params,
        "sim": spec.sim.model_dump(),
        "fees": {name: {"maker": m.fees.maker, "taker": m.fees.taker} for name, m in markets.items()},
        "starting_balances": {asset: str(v) for asset, v in spec.starting_balances.items()},
        "events": handled,
        "total": _combined(per_market),
        "markets": per_market,
        "strategy_status": _jsonable(snapshot()) if callable(snapshot) else {},
    }
    spec.out.mkdir(parents=True, exist_ok=True)
    (spec.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return BacktestResult(summary, engine, list(markets.values()), spec.out)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
