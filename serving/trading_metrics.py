"""Prometheus metrics of the trading half (SPEC 14): event counters plus a collector read on scrape.

Two kinds of metric:

- events, counted where they happen (serving.engine.execution): orders by strategy/side/status
  (`alphatide_orders_total`), the venue's answer time to a placement (`alphatide_order_latency_seconds`),
  fills (`alphatide_fills_total`). The per-strategy fill rate is derived from the same tally.
- state, read from the engine's status, portfolio and strategies only when Prometheus scrapes
  (`TradingCollector`): PnL, exposure, drawdown, bankroll, kill switches, reconciliation, the market
  maker's inventory/spread/quotes, the window strategies' PnL, and the health monitor's rolling accuracy
  of resolved signals. Nothing of this runs on the trading hot path.

The collector is one module-level object registered in the default registry once; the serving lifespan
binds the running engine and health monitor to it (`bind`) and unbinds them on shutdown.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter as Tally
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

ORDERS = Counter(
    "alphatide_orders_total",
    "Orders by strategy, side and status (submitted, then each state the venue reports).",
    ["strategy", "side", "status"],
)
ORDER_LATENCY = Histogram(
    "alphatide_order_latency_seconds",
    "Time from sending an order to the venue's answer (broker.place), seconds.",
    ["venue"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
WINDOW_PNL = Histogram(
    "alphatide_window_pnl_usdc",
    "PnL of each settled window-market window, by strategy (USDC; labelled by strategy only, never by window).",
    ["strategy"],
    buckets=(-20.0, -10.0, -5.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0),
)
WINDOW_LAST_PNL = Gauge("alphatide_window_last_pnl_usdc", "PnL of the last settled window, by strategy.", ["strategy"])
WINDOW_FEES = Counter("alphatide_window_fees_usdc_total", "Fees paid in settled windows, by strategy.", ["strategy"])
WINDOWS_SETTLED = Counter(
    "alphatide_windows_settled_total", "Settled windows by strategy and winning side.", ["strategy", "side"]
)
FILLS = Counter("alphatide_fills_total", "Fills (partial fills included) by strategy and side.", ["strategy", "side"])

_tally: Tally[tuple[str, str]] = Tally()  # (strategy, status) -> orders; for the fill rate
_tally_lock = threading.Lock()


def record_order(strategy: str, side: str, status: str) -> None:
    """One order reaching `status` ("submitted" when sent, then the venue's states)."""
    ORDERS.labels(strategy or "-", side, status).inc()
    with _tally_lock:
        _tally[(strategy or "-", status)] += 1


def record_fill(strategy: str, side: str) -> None:
    FILLS.labels(strategy or "-", side).inc()


def record_window_settlement(strategy: str, pnl: float, fees: float, side: str) -> None:
    """A window-market strategy settled one window (the per-window row goes to the trading store)."""
    WINDOW_PNL.labels(strategy or "-").observe(pnl)
    WINDOW_LAST_PNL.labels(strategy or "-").set(pnl)
    WINDOW_FEES.labels(strategy or "-").inc(max(fees, 0.0))
    WINDOWS_SETTLED.labels(strategy or "-", side).inc()


def fill_rates() -> dict[str, float]:
    """Per strategy: orders filled completely / orders submitted (strategies with a submission)."""
    with _tally_lock:
        submitted = {s: n for (s, status), n in _tally.items() if status == "submitted" and n}
        return {s: _tally[(s, "filled")] / n for s, n in submitted.items()}


def _f(value: Decimal | float | int | None) -> float:
    return float(value) if value is not None else float("nan")


class TradingCollector(Collector):
    """Reads the bound engine (and health monitor) on each scrape; yields nothing while unbound."""

    def __init__(self) -> None:
        self.engine: Any = None
        self.monitor: Any = None
        self.app: Any = None

    def bind(self, engine: Any, monitor: Any = None, app: Any = None) -> None:
        """`app`: the FastAPI app, whose `state.stream` (when running) gives the market-data freshness."""
        self.engine, self.monitor, self.app = engine, monitor, app

    def unbind(self) -> None:
        self.engine = self.monitor = self.app = None

    def describe(self) -> list[Any]:
        return []  # dynamic: not checked at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        engine, monitor = self.engine, self.monitor
        if engine is not None:
            status = engine.status()
            yield from _account(status, engine)
            yield from _strategies(status)
            with getattr(engine, "_lock", contextlib.nullcontext()):  # strategies change on the engine thread
                families = [*_market_makers(engine), *_windows(engine)]
            yield from families
        yield from _fill_rate()
        if monitor is not None:
            yield from _accuracy(monitor)
        stream = getattr(getattr(self.app, "state", None), "stream", None)
        yield from _freshness(stream.pipeline.freshness if stream is not None else None)


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    if labels is None:
        return GaugeMetricFamily(name, doc, value=value)
    g = GaugeMetricFamily(name, doc, labels=list(labels))
    g.add_metric(list(labels.values()), value)
    return g


def _account(status: Any, engine: Any) -> Iterator[GaugeMetricFamily]:
    peak = status.peak_equity
    drawdown = float(1 - status.equity / peak) if peak and peak > 0 else 0.0
    yield _gauge("alphatide_equity", "Account equity (cash + marked positions), quote currency.", _f(status.equity))
    yield _gauge("alphatide_cash", "Free cash of the account, quote currency.", _f(status.cash))
    yield _gauge("alphatide_peak_equity", "Highest equity seen (the drawdown's reference).", _f(peak))
    yield _gauge("alphatide_drawdown_ratio", "1 - equity / peak equity.", max(drawdown, 0.0))
    yield _gauge(
        "alphatide_day_pnl", "Equity change since the UTC day start.", _f(status.equity - status.day_start_equity)
    )
    yield _gauge("alphatide_engine_running", "1 while the engine runs.", float(status.running))
    yield _gauge("alphatide_entries_allowed", "1 while new entries are allowed.", float(status.entries_allowed))
    yield _gauge("alphatide_manual_kill", "1 while the manual kill switch is engaged.", float(status.manual_kill))
    yield _gauge("alphatide_halted", "1 while a halting kill switch holds the engine.", float(status.halted))
    yield _gauge("alphatide_reconciled", "0 when the last reconciliation found a mismatch.", float(status.reconciled))
    yield _gauge("alphatide_open_positions", "Open positions, all strategies.", float(status.open_positions))
    yield _gauge("alphatide_live_orders", "Orders live at the venue, all strategies.", float(status.live_orders))
    yield _gauge("alphatide_dropped_events", "Events dropped by the engine queue.", float(status.dropped_events))
    phase = status.deployment_phase
    yield _gauge("alphatide_deployment_phase", "Active deployment phase (0 = graduated).", float(phase or 0))
    switches = GaugeMetricFamily(
        "alphatide_kill_switch_active", "1 for each kill switch the last risk verdict fired.", labels=["switch"]
    )
    for name in status.active_switches:
        switches.add_metric([name], 1.0)
    if status.manual_kill:
        switches.add_metric(["manual"], 1.0)
    yield switches
    last = status.last_reconcile
    yield _gauge("alphatide_last_reconcile_timestamp_seconds", "When the engine last reconciled.", _ts(last))
    yield _gauge("alphatide_kelly_fraction", "Kelly fraction of the default strategy.", float(status.kelly_fraction))


def _ts(value: Any) -> float:
    return value.timestamp() if value is not None else float("nan")


_PER_STRATEGY = (
    ("alphatide_strategy_equity", "Equity of a strategy (its allocation plus its PnL).", "equity"),
    ("alphatide_realized_pnl", "Realized PnL of a strategy, quote currency.", "realized_pnl"),
    ("alphatide_unrealized_pnl", "Unrealized (marked) PnL of a strategy, quote currency.", "unrealized_pnl"),
    ("alphatide_exposure", "Notional of the open positions of a strategy, quote currency.", "exposure"),
    ("alphatide_strategy_open_positions", "Open positions of a strategy.", "open_positions"),
    ("alphatide_strategy_live_orders", "Live orders of a strategy.", "live_orders"),
)


def _strategies(status: Any) -> Iterator[GaugeMetricFamily]:
    for name, doc, attr in _PER_STRATEGY:
        g = GaugeMetricFamily(name, doc, labels=["strategy", "kind"])
        for s in status.strategies:
            g.add_metric([s.strategy_id, s.kind], _f(getattr(s, attr)))
        yield g
    bankroll = GaugeMetricFamily(
        "alphatide_bankroll_available",
        "Equity of a strategy not tied in positions (equity - exposure).",
        labels=["strategy", "kind"],
    )
    allowed = GaugeMetricFamily(
        "alphatide_strategy_entries_allowed", "1 while a strategy may open new positions.", labels=["strategy", "kind"]
    )
    for s in status.strategies:
        bankroll.add_metric([s.strategy_id, s.kind], max(_f(s.equity - s.exposure), 0.0))
        allowed.add_metric([s.strategy_id, s.kind], float(s.entries_allowed))
    yield bankroll
    yield allowed


def _market_makers(engine: Any) -> Iterator[GaugeMetricFamily]:
    labels = ["strategy", "symbol"]
    inventory = GaugeMetricFamily("alphatide_mm_inventory_clips", "Market maker's inventory, in clips.", labels=labels)
    spread = GaugeMetricFamily("alphatide_mm_spread", "Planned quoted spread (price units).", labels=labels)
    reservation = GaugeMetricFamily("alphatide_mm_reservation_price", "MM reservation price.", labels=labels)
    quoting = GaugeMetricFamily("alphatide_mm_quoting", "1 while the market maker has quotes out.", labels=labels)
    side_labels = [*labels, "side"]
    price = GaugeMetricFamily("alphatide_mm_quote_price", "Price of a live quote.", labels=side_labels)
    size = GaugeMetricFamily("alphatide_mm_quote_size", "Size of a live quote, base units.", labels=side_labels)
    for sid, strategy in list(engine.strategies.items()):
        snap = strategy.snapshot() if hasattr(strategy, "snapshot") else None
        if not isinstance(snap, dict) or "quotes" not in snap or "spread" not in snap:
            continue  # not a market maker
        key = [sid, str(snap.get("symbol", ""))]
        inventory.add_metric(key, _f(snap.get("q_clips")))
        spread.add_metric(key, _f(snap.get("spread")))
        reservation.add_metric(key, _f(snap.get("reservation")))
        quoting.add_metric(key, float(bool(snap.get("quoting"))))
        for side, quote in (snap.get("quotes") or {}).items():
            price.add_metric([*key, side], float(quote["price"]))
            size.add_metric([*key, side], float(quote["size"]))
    yield from (inventory, spread, reservation, quoting, price, size)


def _windows(engine: Any) -> Iterator[GaugeMetricFamily]:
    pnl = GaugeMetricFamily(
        "alphatide_window_pnl_today",
        "PnL booked today by a window-market strategy (settled windows).",
        labels=["strategy", "day"],
    )
    for sid, strategy in list(engine.strategies.items()):
        if hasattr(strategy, "pnl_today") and hasattr(strategy, "pnl_day"):
            pnl.add_metric([sid, str(strategy.pnl_day)], _f(strategy.pnl_today))
    yield pnl


def _fill_rate() -> Iterator[GaugeMetricFamily]:
    g = GaugeMetricFamily("alphatide_fill_rate", "Orders filled completely / orders submitted.", labels=["strategy"])
    for sid, rate in sorted(fill_rates().items()):
        g.add_metric([sid], rate)
    yield g


def _accuracy(monitor: Any) -> Iterator[GaugeMetricFamily]:
    calibration = monitor.calibration
    yield _gauge(
        "alphatide_signal_accuracy_rolling",
        "Share of resolved signals whose direction (p_up > 0.5) was right.",
        _f(calibration.accuracy()),
    )
    yield _gauge("alphatide_signals_resolved", "Resolved signals in the window.", float(calibration.resolved))
    yield _gauge("alphatide_calibration_error", "Live expected calibration error.", _f(calibration.error()))


def _freshness(freshness: Any) -> Iterator[GaugeMetricFamily]:
    """Market data the features are computed from: age of the last trade/book update, and stale or not.

    Without a stream (`stream.source=off`) both families are declared with no sample.
    """
    ages = GaugeMetricFamily(
        "alphatide_market_data_age_seconds", "Seconds since the last update of a kind (trade, book).", labels=["kind"]
    )
    stale = GaugeMetricFamily(
        "alphatide_market_data_stale", "1 while no trade/book arrived within the limit.", labels=[]
    )
    if freshness is not None:
        for kind, age in freshness.ages_s().items():
            if age is not None:
                ages.add_metric([kind], age)
        stale.add_metric([], float(freshness.problem() is not None))
    yield ages
    yield stale


TRADING_COLLECTOR = TradingCollector()
REGISTRY.register(TRADING_COLLECTOR)
