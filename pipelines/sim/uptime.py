"""Quote uptime: the share of a run's time the strategy had orders resting on the venue (pure).

The exchange side of `SimMarket` logs every change of our resting orders as ``(exchange ns, side, +1 | -1)``
(an order starts resting when the exchange accepts it, stops when it is filled in full or cancelled there:
what the venue holds, not what we believe). `quote_uptime(log, start, end)` returns, over ``[start, end)``:

- ``quote_uptime``: the share of the time with at least one bid *and* at least one ask resting;
- ``bid_uptime`` / ``ask_uptime``: the share with at least one order of that side resting.

Orders resting before ``start`` count from ``start``; changes after ``end`` are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

BUY = 1


def quote_uptime(log: Iterable[tuple[int, int, int]], start: int, end: int) -> dict[str, float]:
    if end <= start:
        return {"quote_uptime": 0.0, "bid_uptime": 0.0, "ask_uptime": 0.0}
    bids = asks = 0
    t_prev = start
    up = {"both": 0, "bid": 0, "ask": 0}
    for ts, side, delta in sorted(log, key=lambda e: e[0]):
        if ts > start:
            _accrue(up, bids, asks, min(ts, end) - t_prev)
            t_prev = min(ts, end)
        if ts >= end:
            break
        if side == BUY:
            bids += delta
        else:
            asks += delta
    _accrue(up, bids, asks, end - t_prev)
    span = end - start
    return {"quote_uptime": up["both"] / span, "bid_uptime": up["bid"] / span, "ask_uptime": up["ask"] / span}


def _accrue(up: dict[str, int], bids: int, asks: int, dt: int) -> None:
    if dt <= 0:
        return
    if bids > 0:
        up["bid"] += dt
    if asks > 0:
        up["ask"] += dt
    if bids > 0 and asks > 0:
        up["both"] += dt
