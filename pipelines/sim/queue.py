"""Queue-position models for resting orders on an L2 (market-by-price) book.

An L2 feed tells how much rests at a price, not where our order stands in that queue, so the position
is estimated (the models of hftbacktest, `docs/order_fill.rst` and `src/backtest/models/queue.rs`):

- every model starts an order with ``front`` = the level's size when the order reaches the exchange
  (it joins the back of the queue);
- a trade at our price of size ``q`` consumes the front: ``front -= q``; once ``front`` goes negative,
  ``round(-front)`` lots of ours are filled (partial fills for larger orders);
- a decrease of the level not explained by trades is a cancellation somewhere in the queue:
  `RiskAverseQueue` puts every cancellation behind us (only trades move us forward; ``front`` is only
  capped at the level's new size), while `ProbQueue` splits the decrease between ahead and behind with
  probability ``p = f(back) / (f(back) + f(front))`` for `PowerProb` (``f(x) = x**n``) and `LogProb`
  (``f(x) = log(1 + x)``), and ``f(back) / f(back + front)`` for the ``*2`` variants.

Sizes are in lots (floats: a probabilistic split is fractional). Orders carry ``front`` and
``cum_trade`` (trades at the level since its last size change, so a trade is not counted twice when the
depth update that reflects it arrives).
"""

from __future__ import annotations

import math
from typing import Protocol


class QueueOrder(Protocol):
    front: float
    cum_trade: float


class QueueModel(Protocol):
    name: str

    def new_order(self, order: QueueOrder, level_qty: int) -> None: ...

    def trade(self, order: QueueOrder, qty: int) -> None: ...

    def depth(self, order: QueueOrder, prev_qty: int, new_qty: int) -> None: ...


def filled_lots(order: QueueOrder) -> int:
    """Lots of ours the queue has reached (0 while someone is still ahead); resets ``front`` when > 0."""
    exec_lots = round(-order.front)
    if exec_lots > 0:
        order.front = 0.0
        return exec_lots
    return 0


class RiskAverseQueue:
    """Queue ahead = the level's size on arrival, reduced only by trades at that price."""

    name = "risk_averse"

    def new_order(self, order: QueueOrder, level_qty: int) -> None:
        order.front = float(level_qty)
        order.cum_trade = 0.0

    def trade(self, order: QueueOrder, qty: int) -> None:
        order.front -= qty

    def depth(self, order: QueueOrder, prev_qty: int, new_qty: int) -> None:
        if order.front > new_qty:
            order.front = float(new_qty)


class ProbQueue:
    """A level's decrease (beyond the trades seen) is split between ahead of us and behind us."""

    name = "prob"

    def new_order(self, order: QueueOrder, level_qty: int) -> None:
        order.front = float(level_qty)
        order.cum_trade = 0.0

    def trade(self, order: QueueOrder, qty: int) -> None:
        order.front -= qty
        order.cum_trade += qty

    def prob(self, front: float, back: float) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def depth(self, order: QueueOrder, prev_qty: int, new_qty: int) -> None:
        chg = prev_qty - new_qty - order.cum_trade
        order.cum_trade = 0.0
        if chg < 0:
            if order.front > new_qty:
                order.front = float(new_qty)
            return
        front = order.front
        back = prev_qty - front
        try:
            p = self.prob(front, back)
        except (ZeroDivisionError, ValueError, OverflowError):
            p = 1.0
        if math.isinf(p) or math.isnan(p):
            p = 1.0
        est = front - (1.0 - p) * chg + min(back - p * chg, 0.0)
        order.front = min(est, float(new_qty))


class PowerProb(ProbQueue):
    """``p = back**n / (back**n + front**n)`` (hftbacktest `PowerProbQueueFunc`)."""

    def __init__(self, n: float = 2.0) -> None:
        self.n = n
        self.name = f"power{n:g}"

    def prob(self, front: float, back: float) -> float:
        fb, ff = _pow(back, self.n), _pow(front, self.n)
        return fb / (fb + ff)


class PowerProb2(PowerProb):
    """``p = back**n / (back + front)**n`` (hftbacktest `PowerProbQueueFunc2`)."""

    def __init__(self, n: float = 2.0) -> None:
        super().__init__(n)
        self.name = f"power2_{n:g}"

    def prob(self, front: float, back: float) -> float:
        return _pow(back, self.n) / _pow(back + front, self.n)


class LogProb(ProbQueue):
    """``p = log(1+back) / (log(1+back) + log(1+front))`` (hftbacktest `LogProbQueueFunc`).

    Unlike the power family the log is not scale-free: sizes enter it in base units (lots x ``unit``,
    the lot size), as in hftbacktest, whose queue holds quantities, not lots.
    """

    name = "log"

    def __init__(self, unit: float = 1.0) -> None:
        self.unit = unit

    def prob(self, front: float, back: float) -> float:
        fb, ff = math.log1p(back * self.unit), math.log1p(front * self.unit)
        return fb / (fb + ff)


class LogProb2(LogProb):
    """``p = log(1+back) / log(1+back+front)`` (hftbacktest `LogProbQueueFunc2`), sizes in base units."""

    name = "log2"

    def prob(self, front: float, back: float) -> float:
        return math.log1p(back * self.unit) / math.log1p((back + front) * self.unit)


def _pow(x: float, n: float) -> float:
    # Rust's powf of a negative base with a fractional exponent is NaN; keep the same (caught above).
    return x**n if x >= 0 else float("nan")


def queue_model(spec: str, lot_size: float = 1.0) -> QueueModel:
    """``risk_averse`` | ``power:N`` | ``power2:N`` | ``log`` | ``log2`` -> a model (``lot_size``: the
    base units of one lot, for the log models)."""
    name, _, arg = spec.partition(":")
    if name == "risk_averse":
        return RiskAverseQueue()
    if name == "power":
        return PowerProb(float(arg or 2))
    if name == "power2":
        return PowerProb2(float(arg or 2))
    if name == "log":
        return LogProb(lot_size)
    if name == "log2":
        return LogProb2(lot_size)
    raise ValueError(f"unknown queue model {spec!r}: risk_averse, power:N, power2:N, log, log2")
