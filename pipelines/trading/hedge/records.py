"""What each finished cycle leaves behind, and the volume/points tracker built from it (SPEC 13, 14).

`CycleRecord.from_cycle` flattens a DONE cycle: sides, average prices, sizes, fees and rebates per leg
(quote currency; a negative fee is a rebate, `rebates` is its positive amount), the spread cost of the
hedge against the maker price in bps (positive = paid), the fill-to-hedge latency (first maker fill to
first hedge fill, venue timestamps), the net position change after the cycle and its outcome.
`summarize` aggregates records: fill rate (cycles whose maker filled / cycles quoted), volume per venue
per UTC day and per month (quote notional of every fill), trade counts, fees, rebates and imbalance.
Pure functions over plain records; `store.HedgeStore` persists them.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipelines.trading.hedge.cycle import ZERO, Cycle, Role
from pipelines.trading.hedge.machine import HEDGE, PRIMARY
from pipelines.trading.hedge.phases import Outcome
from pipelines.trading.hedge.pricing import spread_cost_bps


@dataclass(frozen=True)
class LegVolume:
    """One venue's part of a cycle: every fill on that venue, whatever its role."""

    venue: str
    symbol: str
    size: Decimal
    notional: Decimal
    fees: Decimal  # net: positive paid, negative received
    rebates: Decimal  # rebates received (positive)
    trades: int


@dataclass(frozen=True)
class CycleRecord:
    strategy_id: str
    cycle_id: str
    started_at: datetime
    ended_at: datetime
    outcome: str
    reason: str
    phase_index: int
    target_notional: Decimal
    maker_side: str
    hedge_side: str
    maker_price: Decimal | None  # average fill price (the quote price when nothing filled)
    maker_size: Decimal
    hedge_price: Decimal | None
    hedge_size: Decimal
    unwind_price: Decimal | None
    unwind_size: Decimal
    maker_fee: Decimal
    hedge_fee: Decimal
    unwind_fee: Decimal
    spread_cost_bps: float | None
    expected_spread_bps: float
    fill_to_hedge_ms: float | None
    hedge_attempts: int
    net_after: Decimal
    recovered: bool
    primary: LegVolume
    hedge: LegVolume

    @classmethod
    def from_cycle(
        cls, strategy_id: str, cycle: Cycle, symbols: tuple[str, str], venues: tuple[str, str] = (PRIMARY, HEDGE)
    ) -> CycleRecord:
        """`symbols` / `venues`: (primary, hedge) unified symbols and engine venue names."""
        maker_px, maker_sz, maker_fee = _leg(cycle, Role.MAKER)
        hedge_px, hedge_sz, hedge_fee = _leg(cycle, Role.HEDGE)
        unwind_px, unwind_sz, unwind_fee = _leg(cycle, Role.UNWIND)
        first_maker, first_hedge = cycle.first_fill_ts(Role.MAKER), cycle.first_fill_ts(Role.HEDGE)
        latency = None
        if first_maker is not None and first_hedge is not None:
            latency = (first_hedge - first_maker).total_seconds() * 1000
        spread = None
        if maker_px is not None and hedge_px is not None:
            spread = spread_cost_bps(cycle.maker_side, maker_px, hedge_px)
        return cls(
            strategy_id=strategy_id,
            cycle_id=cycle.cycle_id,
            started_at=cycle.started_at,
            ended_at=cycle.ended_at or cycle.started_at,
            outcome=(cycle.outcome or Outcome.FAILED).value,
            reason=cycle.reason,
            phase_index=cycle.phase_index,
            target_notional=cycle.target_notional,
            maker_side=cycle.maker_side.value,
            hedge_side=cycle.maker_side.opposite.value,
            maker_price=maker_px if maker_px is not None else cycle.maker_price,
            maker_size=maker_sz,
            hedge_price=hedge_px,
            hedge_size=hedge_sz,
            unwind_price=unwind_px,
            unwind_size=unwind_sz,
            maker_fee=maker_fee,
            hedge_fee=hedge_fee,
            unwind_fee=unwind_fee,
            spread_cost_bps=spread,
            expected_spread_bps=cycle.expected_spread_bps,
            fill_to_hedge_ms=latency,
            hedge_attempts=cycle.hedge_attempts,
            net_after=cycle.net_after if cycle.net_after is not None else ZERO,
            recovered=cycle.recovered,
            primary=_venue_volume(cycle, PRIMARY, venues[0], symbols[0]),
            hedge=_venue_volume(cycle, HEDGE, venues[1], symbols[1]),
        )

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CycleRecord:
        def dec(v: Any) -> Decimal | None:
            return None if v is None else Decimal(v)

        legs = {
            k: LegVolume(**{**d[k], **{f: Decimal(d[k][f]) for f in ("size", "notional", "fees", "rebates")}})
            for k in ("primary", "hedge")
        }
        values = dict(d)
        for name in ("started_at", "ended_at"):
            values[name] = datetime.fromisoformat(d[name])
        for name in (
            "target_notional",
            "maker_size",
            "hedge_size",
            "unwind_size",
            "maker_fee",
            "hedge_fee",
            "unwind_fee",
            "net_after",
        ):
            values[name] = Decimal(d[name])
        for name in ("maker_price", "hedge_price", "unwind_price"):
            values[name] = dec(d[name])
        values.update(legs)
        return cls(**values)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _leg(cycle: Cycle, role: Role) -> tuple[Decimal | None, Decimal, Decimal]:
    fills = [f for o in cycle.orders_of(role) for f in o.fills]
    size = sum((f.size for f in fills), ZERO)
    fee = sum((f.fee for f in fills), ZERO)
    price = sum((f.size * f.price for f in fills), ZERO) / size if size > 0 else None
    return price, size, fee


def _venue_volume(cycle: Cycle, key: str, venue: str, symbol: str) -> LegVolume:
    fills = [f for o in cycle.orders.values() if o.venue == key for f in o.fills]
    fees = sum((f.fee for f in fills), ZERO)
    rebates = sum((-f.fee for f in fills if f.fee < 0), ZERO)
    return LegVolume(
        venue,
        symbol,
        sum((f.size for f in fills), ZERO),
        sum((f.size * f.price for f in fills), ZERO),
        fees,
        rebates,
        len(fills),
    )


def summarize(records: Iterable[CycleRecord]) -> dict[str, Any]:
    """The tracker: fill rate, outcomes, volume per venue per day and month, fees, rebates, imbalance."""
    rows = list(records)
    daily: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    monthly: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    venues: dict[str, dict[str, Any]] = {}
    for r in rows:
        day, month = r.ended_at.date().isoformat(), r.ended_at.strftime("%Y-%m")
        for leg in (r.primary, r.hedge):
            daily[day][leg.venue] += leg.notional
            monthly[month][leg.venue] += leg.notional
            v = venues.setdefault(leg.venue, {"volume": ZERO, "size": ZERO, "trades": 0, "fees": ZERO, "rebates": ZERO})
            v["volume"] += leg.notional
            v["size"] += leg.size
            v["trades"] += leg.trades
            v["fees"] += leg.fees
            v["rebates"] += leg.rebates
    outcomes: dict[str, int] = defaultdict(int)
    for r in rows:
        outcomes[r.outcome] += 1
    filled = [r for r in rows if r.maker_size > 0]
    latencies = sorted(r.fill_to_hedge_ms for r in rows if r.fill_to_hedge_ms is not None)
    spreads = [r.spread_cost_bps for r in rows if r.spread_cost_bps is not None]
    return _jsonable(
        {
            "cycles": len(rows),
            "outcomes": dict(outcomes),
            "fill_rate": len(filled) / len(rows) if rows else None,
            "trade_count": sum(v["trades"] for v in venues.values()),
            "fees": sum((v["fees"] for v in venues.values()), ZERO),
            "rebates": sum((v["rebates"] for v in venues.values()), ZERO),
            "max_abs_imbalance": max((abs(r.net_after) for r in rows), default=ZERO),
            "imbalanced_cycles": sum(1 for r in rows if r.net_after != 0),
            "spread_cost_bps_mean": statistics.fmean(spreads) if spreads else None,
            "fill_to_hedge_p50_ms": _quantile(latencies, 0.5),
            "fill_to_hedge_p99_ms": _quantile(latencies, 0.99),
            "venues": venues,
            "volume_by_day": {d: dict(v) for d, v in sorted(daily.items())},
            "volume_by_month": {m: dict(v) for m, v in sorted(monthly.items())},
        }
    )


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]
