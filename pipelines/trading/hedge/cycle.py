"""The state of one hedge cycle: its orders, fills and status. Pure data, JSON-serialisable.

A cycle is one maker order on the primary venue and everything done because of it: hedge orders on the
hedge venue, unwind orders back on the primary venue, corrections after a position check. Quantities are
derived from the orders' de-duplicated fills, never from counters that could drift:

    filled   = maker fills                      (base units, Decimal)
    hedged   = hedge (and correction) fills on the hedge venue
    unwound  = unwind fills on the primary venue
    exposure = filled - hedged - unwound        (what is still unhedged, in the maker's direction)

Statuses: ACTIVE (maker working and/or fills being hedged), UNWINDING (hedge attempts exhausted: the
primary fill is being flattened on the primary venue), VERIFYING (every order is done: both venues'
positions must show a zero net change against the baselines read when the cycle opened), DONE.
`to_dict` / `from_dict` round-trip every field, so a cycle persisted after each event survives `kill -9`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pipelines.trading.hedge.phases import Outcome
from pipelines.trading.instruments import Side

ZERO = Decimal(0)


class Status(StrEnum):
    ACTIVE = "active"
    UNWINDING = "unwinding"
    VERIFYING = "verifying"
    DONE = "done"


class Role(StrEnum):
    MAKER = "maker"  # post-only on the primary venue
    HEDGE = "hedge"  # IOC taker on the hedge venue, opposite side
    UNWIND = "unwind"  # IOC taker on the primary venue, undoing the maker fill
    CORRECT = "correct"  # IOC after a position check found a non-zero net


@dataclass(frozen=True)
class LegFill:
    fill_id: str
    size: Decimal
    price: Decimal
    fee: Decimal  # quote currency, negative = rebate
    ts: datetime


@dataclass
class LegOrder:
    order_id: str
    role: Role
    venue: str  # "primary" or "hedge" (the cycle's own names; the strategy maps them to brokers)
    side: Side
    price: Decimal
    size: Decimal
    sent_at: datetime
    attempt: int = 1
    fills: list[LegFill] = field(default_factory=list)
    terminal: bool = False
    final_state: str = ""
    cancel_requested_at: datetime | None = None
    lost: bool = False  # no answer from the venue: its fate is read from positions instead
    venue_filled: Decimal = ZERO  # the venue's cumulative filled size from order updates

    @property
    def filled(self) -> Decimal:
        return sum((f.size for f in self.fills), ZERO)

    @property
    def open_size(self) -> Decimal:
        """What may still fill: the rest of a live order; once terminal, fills the venue reported
        (`venue_filled`) whose fill events have not arrived yet. A lost order counts as closed."""
        if self.lost:
            return ZERO
        if self.terminal:
            return max(self.venue_filled - self.filled, ZERO)
        return self.size - self.filled


@dataclass
class Cycle:
    cycle_id: str
    started_at: datetime
    phase_index: int
    target_notional: Decimal
    maker_side: Side
    maker_price: Decimal
    maker_size: Decimal
    baseline_primary: Decimal
    baseline_hedge: Decimal
    hedge_reference: Decimal  # the hedge venue's touch when quoting (the slippage band is around it)
    expected_edge_bps: float
    expected_spread_bps: float
    status: Status = Status.ACTIVE
    orders: dict[str, LegOrder] = field(default_factory=dict)
    fill_ids: set[str] = field(default_factory=set)
    hedge_attempts: int = 0  # hedge orders sent
    hedge_failures: int = 0  # hedge orders that ended short (rejected, expired, refused, lost)
    unwind_attempts: int = 0
    unwind_failures: int = 0
    correct_attempts: int = 0
    verify_started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: Outcome | None = None
    reason: str = ""
    net_after: Decimal | None = None
    recovered: bool = False

    # ---- derived quantities --------------------------------------------------------------------
    def orders_of(self, *roles: Role) -> list[LegOrder]:
        return [o for o in self.orders.values() if o.role in roles]

    def filled_of(self, *roles: Role) -> Decimal:
        return sum((o.filled for o in self.orders_of(*roles)), ZERO)

    def open_of(self, *roles: Role) -> Decimal:
        return sum((o.open_size for o in self.orders_of(*roles)), ZERO)

    @property
    def filled(self) -> Decimal:
        return self.filled_of(Role.MAKER)

    @property
    def hedged(self) -> Decimal:
        return self.filled_of(Role.HEDGE)

    @property
    def unwound(self) -> Decimal:
        return self.filled_of(Role.UNWIND)

    @property
    def exposure(self) -> Decimal:
        return self.filled - self.hedged - self.unwound

    @property
    def maker(self) -> LegOrder | None:
        makers = self.orders_of(Role.MAKER)
        return makers[0] if makers else None

    @property
    def maker_live(self) -> bool:
        maker = self.maker
        return maker is not None and not maker.terminal

    def first_fill_ts(self, role: Role) -> datetime | None:
        stamps = [f.ts for o in self.orders_of(role) for f in o.fills]
        return min(stamps) if stamps else None

    # ---- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "cycle_id": self.cycle_id,
            "started_at": self.started_at.isoformat(),
            "phase_index": self.phase_index,
            "target_notional": str(self.target_notional),
            "maker_side": self.maker_side.value,
            "maker_price": str(self.maker_price),
            "maker_size": str(self.maker_size),
            "baseline_primary": str(self.baseline_primary),
            "baseline_hedge": str(self.baseline_hedge),
            "hedge_reference": str(self.hedge_reference),
            "expected_edge_bps": self.expected_edge_bps,
            "expected_spread_bps": self.expected_spread_bps,
            "status": self.status.value,
            "orders": [_order_to_dict(o) for o in self.orders.values()],
            "fill_ids": sorted(self.fill_ids),
            "hedge_attempts": self.hedge_attempts,
            "hedge_failures": self.hedge_failures,
            "unwind_attempts": self.unwind_attempts,
            "unwind_failures": self.unwind_failures,
            "correct_attempts": self.correct_attempts,
            "verify_started_at": _ts_out(self.verify_started_at),
            "ended_at": _ts_out(self.ended_at),
            "outcome": self.outcome.value if self.outcome else None,
            "reason": self.reason,
            "net_after": None if self.net_after is None else str(self.net_after),
            "recovered": self.recovered,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cycle:
        orders = [_order_from_dict(o) for o in d["orders"]]
        return cls(
            cycle_id=d["cycle_id"],
            started_at=datetime.fromisoformat(d["started_at"]),
            phase_index=int(d["phase_index"]),
            target_notional=Decimal(d["target_notional"]),
            maker_side=Side(d["maker_side"]),
            maker_price=Decimal(d["maker_price"]),
            maker_size=Decimal(d["maker_size"]),
            baseline_primary=Decimal(d["baseline_primary"]),
            baseline_hedge=Decimal(d["baseline_hedge"]),
            hedge_reference=Decimal(d["hedge_reference"]),
            expected_edge_bps=float(d["expected_edge_bps"]),
            expected_spread_bps=float(d["expected_spread_bps"]),
            status=Status(d["status"]),
            orders={o.order_id: o for o in orders},
            fill_ids=set(d["fill_ids"]),
            hedge_attempts=int(d["hedge_attempts"]),
            hedge_failures=int(d["hedge_failures"]),
            unwind_attempts=int(d["unwind_attempts"]),
            unwind_failures=int(d["unwind_failures"]),
            correct_attempts=int(d["correct_attempts"]),
            verify_started_at=_ts_in(d.get("verify_started_at")),
            ended_at=_ts_in(d.get("ended_at")),
            outcome=Outcome(d["outcome"]) if d.get("outcome") else None,
            reason=d.get("reason", ""),
            net_after=None if d.get("net_after") is None else Decimal(d["net_after"]),
            recovered=bool(d.get("recovered", False)),
        )


def _ts_out(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat()


def _ts_in(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _order_to_dict(o: LegOrder) -> dict[str, Any]:
    return {
        "order_id": o.order_id,
        "role": o.role.value,
        "venue": o.venue,
        "side": o.side.value,
        "price": str(o.price),
        "size": str(o.size),
        "sent_at": o.sent_at.isoformat(),
        "attempt": o.attempt,
        "fills": [
            {
                "fill_id": f.fill_id,
                "size": str(f.size),
                "price": str(f.price),
                "fee": str(f.fee),
                "ts": f.ts.isoformat(),
            }
            for f in o.fills
        ],
        "terminal": o.terminal,
        "final_state": o.final_state,
        "cancel_requested_at": _ts_out(o.cancel_requested_at),
        "lost": o.lost,
        "venue_filled": str(o.venue_filled),
    }


def _order_from_dict(d: dict[str, Any]) -> LegOrder:
    fills = [
        LegFill(
            f["fill_id"], Decimal(f["size"]), Decimal(f["price"]), Decimal(f["fee"]), datetime.fromisoformat(f["ts"])
        )
        for f in d["fills"]
    ]
    return LegOrder(
        order_id=d["order_id"],
        role=Role(d["role"]),
        venue=d["venue"],
        side=Side(d["side"]),
        price=Decimal(d["price"]),
        size=Decimal(d["size"]),
        sent_at=datetime.fromisoformat(d["sent_at"]),
        attempt=int(d["attempt"]),
        fills=fills,
        terminal=bool(d["terminal"]),
        final_state=d.get("final_state", ""),
        cancel_requested_at=_ts_in(d.get("cancel_requested_at")),
        lost=bool(d.get("lost", False)),
        venue_filled=Decimal(d.get("venue_filled", "0")),
    )
