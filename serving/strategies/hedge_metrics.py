"""Prometheus metrics of the two-venue hedge (SPEC 13 and the volume/points tracker of SPEC 14).

In prometheus_client's default registry, so the serving tier's `GET /metrics` exports them with the
rest. Module-level singletons (a registry refuses two metrics of one name); labelled by strategy id so
several hedge strategies in one engine stay apart.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from pipelines.trading.hedge.records import CycleRecord

CYCLES = Counter("alphatide_hedge_cycles_total", "Finished hedge cycles, by outcome.", ["strategy", "outcome"])
VOLUME = Counter(
    "alphatide_hedge_volume_quote_total",
    "Traded notional of hedge cycles, quote currency, by venue.",
    ["strategy", "venue"],
)
TRADES = Counter("alphatide_hedge_trades_total", "Fills of hedge cycles, by venue.", ["strategy", "venue"])
FEES = Counter(
    "alphatide_hedge_fees_paid_quote_total",
    "Fees paid by hedge cycles (rebates not netted), by venue.",
    ["strategy", "venue"],
)
REBATES = Counter("alphatide_hedge_rebates_quote_total", "Maker rebates earned, by venue.", ["strategy", "venue"])
FILL_TO_HEDGE = Histogram(
    "alphatide_hedge_fill_to_hedge_seconds",
    "First maker fill to first hedge fill (venue timestamps).",
    ["strategy"],
    buckets=(0.01, 0.025, 0.05, 0.065, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0),
)
SPREAD_COST = Histogram(
    "alphatide_hedge_spread_cost_bps",
    "Spread cost of the hedge against the maker price, bps (negative = a gain).",
    ["strategy"],
    buckets=(-10, -5, -2, -1, 0, 1, 2, 5, 10, 25, 50),
)
IMBALANCE = Gauge(
    "alphatide_hedge_imbalance_base", "Absolute net position change left by the last cycle.", ["strategy"]
)
PHASE_NOTIONAL = Gauge("alphatide_hedge_phase_notional", "Target notional of the current sizing phase.", ["strategy"])
FILL_RATE = Gauge(
    "alphatide_hedge_fill_rate", "Share of quoted cycles whose maker order filled (this process).", ["strategy"]
)
HALTED = Gauge(
    "alphatide_hedge_halted", "1 while the hedge strategy is halted by an imbalance it could not fix.", ["strategy"]
)


def observe_cycle(record: CycleRecord) -> None:
    sid = record.strategy_id
    CYCLES.labels(sid, record.outcome).inc()
    for leg in (record.primary, record.hedge):
        VOLUME.labels(sid, leg.venue).inc(float(leg.notional))
        TRADES.labels(sid, leg.venue).inc(leg.trades)
        paid = leg.fees + leg.rebates  # fees net of rebates, plus the rebates = what was paid
        FEES.labels(sid, leg.venue).inc(max(float(paid), 0.0))
        REBATES.labels(sid, leg.venue).inc(float(leg.rebates))
    if record.fill_to_hedge_ms is not None:
        FILL_TO_HEDGE.labels(sid).observe(record.fill_to_hedge_ms / 1000)
    if record.spread_cost_bps is not None:
        SPREAD_COST.labels(sid).observe(record.spread_cost_bps)
    IMBALANCE.labels(sid).set(abs(float(record.net_after)))


def observe_state(strategy_id: str, phase_notional: float, fill_rate: float | None, halted: bool) -> None:
    PHASE_NOTIONAL.labels(strategy_id).set(phase_notional)
    if fill_rate is not None:
        FILL_RATE.labels(strategy_id).set(fill_rate)
    HALTED.labels(strategy_id).set(1.0 if halted else 0.0)
