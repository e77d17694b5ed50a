"""Window-market backtests: the registered `window` / `window_mm` strategy on seeded window books.

`run_window_backtest(settings, spec)` runs the real engine (`build_engine`) with one `WindowSimVenue`
("polymarket") and, window after window, the tick-level simulator (`SimReplay`, `drive`) over three
markets: the window's Up and Down tokens (books and trades from `pipelines.sim.window_books`, seeded)
and the reference BTC prints that resolve it (venue "binance"). The strategy object is the one the
serving engine runs; it sees the books, the prints and the window model's probability (`signals`: the
latest `p_up` scored at or before each instant of the window, re-sent every book refresh as a
`SignalEvent` "btc-updown-5m"). After each window the venue redeems it (`WindowSimVenue.settle`).

Report (`summary`, also ``out/summary.json`` and ``out/windows.csv``): per window the settled side, the
strategy's PnL and fees as its store rows hold them (`TradingStore.window_pnls`, written through
`ctx.window_settled` exactly as on paper), the venue-side PnL of the same fills, and totals.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.config import Settings
from pipelines.domain.window_market import Outcome, outcome_handle, window_slug
from pipelines.sim.feed import finish_feed
from pipelines.sim.fees import FeeSchedule
from pipelines.sim.latency import ConstantLatency
from pipelines.sim.market import SimMarket
from pipelines.sim.queue import queue_model
from pipelines.sim.window_books import GeneratedWindow, WindowBookConfig, generate_windows
from serving.backtest.runner import drive
from serving.brokers.sim.replay import SimReplay
from serving.brokers.sim.venue import SimulatedVenue
from serving.brokers.sim.window_venue import WindowSimVenue
from serving.engine import TradingStore, build_engine
from serving.engine.config import StrategyEntry
from serving.engine.engine import TradingEngine
from serving.engine.events import BookEvent, EngineEvent, ReplayClock, SignalEvent, TradeEvent

VENUE, REFERENCE_VENUE, REFERENCE_SYMBOL, SIGNAL = "polymarket", "binance", "BTC/USDT", "btc-updown-5m"
FEED_LATENCY_NS = 50_000_000


@dataclass(frozen=True)
class WindowBacktestSpec:
    strategy: str  # "window" | "window_mm"
    candles: pl.DataFrame  # BTC candles: ts (aware UTC), open, high, low, close (1m or 5m bars)
    signals: pl.DataFrame  # ts (aware UTC, scoring time), p_up
    out: Path = Path("backtest-window")
    books: WindowBookConfig = field(default_factory=WindowBookConfig)
    starts: list[int] | None = None  # window starts (unix s); None = every window with a signal
    params: dict[str, Any] = field(default_factory=dict)
    cash: Decimal = Decimal(1000)
    latency_ms: float = 10.0
    phase: int | None = None


@dataclass
class WindowBacktestResult:
    summary: dict[str, Any]
    windows: list[dict[str, Any]]
    engine: TradingEngine


def _feed_market(venue: str, symbol: str, rows: list[tuple[int, int, float, float]], cfg: WindowBookConfig,
                 latency_ns: int, seed: int, feed_latency_ns: int = FEED_LATENCY_NS) -> SimMarket:
    kind, ets, px, qty = zip(*rows, strict=True) if rows else ((), (), (), ())
    feed = finish_feed(venue, symbol, kind, ets, [t + feed_latency_ns for t in ets], px, qty,
                       tick_size=cfg.tick_size, lot_size=cfg.lot_size, clock_offset_ns=0)
    market = SimMarket(feed, queue_model("risk_averse", float(cfg.lot_size)),
                       ConstantLatency(latency_ns, latency_ns, 0, seed), FeeSchedule(0.0, 0.0), venue=venue)
    market.min_size = cfg.min_size
    return market


def window_markets(w: GeneratedWindow, cfg: WindowBookConfig, latency_ns: int) -> list[SimMarket]:
    """The window's Up and Down token markets and its reference prints as simulated markets."""
    from pipelines.sim.feed import BUY_TRADE

    tokens = [_feed_market(VENUE, outcome_handle(w.start_s, o), w.books[o], cfg, latency_ns, cfg.seed) for o in Outcome]
    prints = [(BUY_TRADE, ts, price, 0.01) for ts, price in w.reference]
    ref_cfg = cfg.model_copy(update={"tick_size": Decimal("0.01"), "lot_size": Decimal("0.01")})
    # the reference prints carry their own time (a print before the boundary must stay before it)
    reference = _feed_market(REFERENCE_VENUE, REFERENCE_SYMBOL, prints, ref_cfg, latency_ns, cfg.seed, 0)
    return [*tokens, reference]


class _Signals:
    """The window model's latest probability at or before each instant, as a fresh `SignalEvent`."""

    def __init__(self, signals: pl.DataFrame) -> None:
        frame = signals.sort("ts")
        self._ts = [t.timestamp() for t in frame["ts"].to_list()]
        self._p = [float(p) for p in frame["p_up"].to_list()]
        self.window_start = 0

    def __call__(self, event: BookEvent | TradeEvent) -> list[EngineEvent]:
        if not isinstance(event, BookEvent) or event.venue != VENUE or not event.symbol.endswith(":UP"):
            return []
        import bisect

        i = bisect.bisect_right(self._ts, event.ts.timestamp()) - 1
        if i < 0 or self._ts[i] < self.window_start:
            return []
        return [SignalEvent(SIGNAL, self._p[i], event.ts, kind="window")]


def _engine(settings: Settings, spec: WindowBacktestSpec, clock: ReplayClock) -> tuple[TradingEngine, WindowSimVenue]:
    home = spec.out / "engine"
    home.mkdir(parents=True, exist_ok=True)
    (home / "engine.db").unlink(missing_ok=True)
    quote = settings.universe.quote
    venue = WindowSimVenue(VENUE, spec.cash, fee_rate=spec.books.fee_rate, fee_exponent=spec.books.fee_exponent,
                           cash_asset=quote)
    cfg = settings.engine.model_copy(update={"pause_file": home / "PAUSE", "reconcile_interval_s": 10**7})
    if spec.phase is not None:
        kill = cfg.trading.kill
        deployment = kill.deployment.model_copy(update={"active_phase": spec.phase or None})
        kill = kill.model_copy(update={"deployment": deployment})
        cfg = cfg.model_copy(update={"trading": cfg.trading.model_copy(update={"kill": kill})})
    params = {"reference_venue": REFERENCE_VENUE, **spec.params}
    entry = StrategyEntry(id=spec.strategy.replace("_", "-"), kind=spec.strategy, venue=VENUE, params=params)
    brokers = {"": SimulatedVenue("", [], {quote: spec.cash}), VENUE: venue}
    engine = build_engine(settings.model_copy(update={"engine": cfg}), clock=clock,
                          store=TradingStore.sqlite_file(home / "engine.db"), brokers=brokers, strategies=[entry])
    return engine, venue


def run_window_backtest(settings: Settings, spec: WindowBacktestSpec) -> WindowBacktestResult:
    signals = _Signals(spec.signals)
    starts = spec.starts
    if starts is None:
        window_s = spec.books.window_s
        starts = sorted({int(t) - int(t) % window_s for t in signals._ts})
    generated = generate_windows(spec.candles, starts, spec.books)
    if not generated:
        raise ValueError("no window with complete candles among the requested starts")
    clock = ReplayClock(datetime.fromtimestamp(generated[0].start_s, UTC))
    engine, venue = _engine(settings, spec, clock)
    engine.start(background=False)
    latency_ns = int(spec.latency_ms * 1e6)
    events = 0
    try:
        for w in generated:
            markets = window_markets(w, spec.books, latency_ns)
            replay = SimReplay(markets)
            replay.clock = clock
            venue.load_window(markets[:2])
            signals.window_start = w.start_s
            events += drive(engine, replay, signals=signals, progress=False)
            venue.settle(w.start_s, w.winner)
        # the first print after the last window's end settles it
        last = generated[-1]
        engine.handle(TradeEvent(REFERENCE_SYMBOL, Decimal(repr(last.close)), Decimal("0.01"),
                                 datetime.fromtimestamp(last.start_s + spec.books.window_s + 1, UTC),
                                 venue=REFERENCE_VENUE))
    finally:
        engine.shutdown()
    return _report(spec, engine, venue, generated, events)


def _report(spec: WindowBacktestSpec, engine: TradingEngine, venue: WindowSimVenue,
            generated: list[GeneratedWindow], events: int) -> WindowBacktestResult:
    sid = next(iter(engine.strategies))
    rows = {r.market: r for r in engine.store.window_pnls(sid, limit=10**9)}
    windows: list[dict[str, Any]] = []
    for w in generated:
        slug = window_slug(w.start_s)
        r = rows.get(slug)
        ledger = venue.ledgers.get(w.start_s)
        windows.append({
            "market": slug, "start": w.start_s, "winner": w.winner.value,
            "settled_side": r.settled_side if r else None,
            "pnl": str(r.pnl) if r else "0", "fees": str(r.fees) if r else "0",
            "cost": str(r.cost) if r else "0", "payout": str(r.payout) if r else "0",
            "venue_pnl": str(ledger.cash) if ledger else "0",
            "fees_venue": str(ledger.fees_paid_usdc) if ledger else "0",
        })
    orders = engine.store.load_orders(strategy_id=sid)
    traded = [x for x in windows if x["settled_side"] is not None]
    total = {
        "windows": len(windows), "traded_windows": len(traded),
        "pnl": str(sum((Decimal(x["pnl"]) for x in windows), Decimal(0))),
        "fees": str(sum((Decimal(x["fees"]) for x in windows), Decimal(0))),
        "venue_pnl": str(sum((Decimal(x["venue_pnl"]) for x in windows), Decimal(0))),
        "orders": len(orders),
        "filled_orders": sum(1 for o in orders if o.order.filled > 0),
        "wins": sum(1 for x in traded if Decimal(x["pnl"]) > 0),
    }
    summary = {"strategy": spec.strategy, "strategy_id": sid, "events": events,
               "books": spec.books.model_dump(mode="json"), "params": spec.params, "total": total}
    spec.out.mkdir(parents=True, exist_ok=True)
    (spec.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    with (spec.out / "windows.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(windows[0]))
        writer.writeheader()
        writer.writerows(windows)
    return WindowBacktestResult(summary, windows, engine)


def run_cli(args: Any, settings: Settings) -> int:
    """`alphatide backtest --strategy window|window_mm --candles FILE --signals FILE [--windows N]`."""
    from pipelines.domain.candles import normalize_candles
    from pipelines.errors import OperatorError

    if args.candles is None or args.signals is None:
        raise OperatorError("the window backtest needs --candles FILE (BTC candles) and --signals FILE (ts, p_up: "
                            "the window model's probabilities, e.g. the signals.parquet `python -m bench.window` "
                            "writes)")
    raw = pl.read_parquet(args.candles)
    if "symbol" in raw.columns:
        raw = raw.filter(pl.col("symbol") == REFERENCE_SYMBOL)
    candles = normalize_candles(raw, ts_column="open_time" if "open_time" in raw.columns else "ts")
    signals = pl.read_parquet(args.signals).select("ts", "p_up").sort("ts")
    if args.windows is not None:
        signals = signals.tail(args.windows)
    books = WindowBookConfig(seed=args.seed, noise=args.noise, fee_bps=args.fee_bps)
    spec = WindowBacktestSpec(strategy=args.strategy, candles=candles, signals=signals, out=args.out, books=books,
                              params=json.loads(args.params), latency_ms=args.latency_ms, phase=args.phase)
    result = run_window_backtest(settings, spec)
    print(json.dumps({"out": str(args.out), "total": result.summary["total"]}, indent=2))
    return 0
