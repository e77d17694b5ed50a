"""What the simulator's two sides say about orders: codes, the exchange's and our copies, fills, answers.

Prices are ticks and sizes lots (ints). Status codes follow one order from our side's point of view
(it learns the exchange's status after the response latency).
"""

from __future__ import annotations

from dataclasses import dataclass

INF = 1 << 62
BUY, SELL = 1, -1
GTC, GTX, IOC = 0, 1, 2  # GTX = post-only
# order status (our view follows the exchange's after the response latency)
NONE, NEW, PARTIAL, FILLED, CANCELED, EXPIRED = 0, 1, 2, 3, 4, 5
# pending request on our side
REQ_NONE, REQ_NEW, REQ_CANCEL = 0, 1, 2


class SimOrder:
    """An order as the exchange holds it."""

    __slots__ = ("cum_trade", "front", "leaves", "oid", "px", "qty", "side", "status", "tif")

    def __init__(self, oid: int, side: int, px: int, qty: int, tif: int) -> None:
        self.oid, self.side, self.px, self.qty, self.tif = oid, side, px, qty, tif
        self.leaves = qty
        self.status = NONE
        self.front = 0.0
        self.cum_trade = 0.0


class LocalOrder:
    """An order as we know it (updated when the exchange's answers reach us)."""

    __slots__ = ("closed_ts", "filled", "oid", "px", "qty", "reason", "req", "sent_ts", "side", "status", "tif")

    def __init__(self, oid: int, side: int, px: int, qty: int, tif: int, sent_ts: int = 0) -> None:
        self.oid, self.side, self.px, self.qty, self.tif = oid, side, px, qty, tif
        self.sent_ts = sent_ts
        self.closed_ts = 0
        self.filled = 0
        self.status = NONE
        self.req = REQ_NEW
        self.reason = ""


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution, as the exchange made it (``exch_ts``) and as we learned it (``local_ts``)."""

    venue: str
    symbol: str
    oid: int
    side: int
    px: int
    qty: int
    maker: bool
    fee: float
    exch_ts: int
    local_ts: int


@dataclass(frozen=True, slots=True)
class Response:
    """The exchange's answer about one order, delivered at ``local_ts``."""

    local_ts: int
    exch_ts: int
    oid: int
    status: int
    leaves: int
    exec_px: int
    exec_qty: int
    maker: bool
    fee: float
    reason: str = ""
