"""Order-book side of the features: the book's state after each update, as the features see it.

The state machine (snapshot + diffs in update-id order, gaps, resync) is
`pipelines.marketdata.orderbook.OrderBook`; `BookTracker` drives one per symbol and reduces each applied
diff to a `BookUpdate`: the top ``L`` levels, whether they can be trusted, and the quantities added and
removed within the top ``L`` (for cancel_rate_1m). The batch path (`flow.frames_from_events`) records one
row per update; the live engine keeps the latest one. Both run this same code, so the book they see is
the same by construction; the features on top of it are computed twice (polars / Python) and compared.

Rules:

- A snapshot with an update id (Binance REST) does not make a row: the book is served from the first
  diff applied after it, whose row has ``resync=True`` (its change from the previous state is a resync,
  not market activity).
- Venues that send whole books without update ids (Upbit) make a row per snapshot that carries an
  exchange time; consecutive snapshots are consecutive states (OFI counts), but without diffs the
  added/removed quantities are unknown: cancel_rate_1m stays null for them.
- A gap (or a crossed book, or an empty side) makes an invalid row: book features are null until the
  next valid one.
- OFI and cancel terms count only for a valid update whose previous state was valid (``resync=False``).
- Missing levels (a book shallower than ``L``) have a null price and quantity 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines.domain.marketdata import BookDiff, BookSnapshot
from pipelines.marketdata.orderbook import DiffResult, OrderBook, SyncRule

_NEG_INF = -math.inf
_POS_INF = math.inf


@dataclass(frozen=True, slots=True)
class BookTop:
    """The best ``L`` levels of each side: bids best (highest) first, asks best (lowest) first."""

    bid_px: tuple[float, ...]
    bid_qty: tuple[float, ...]
    ask_px: tuple[float, ...]
    ask_qty: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """What one applied (or failed) diff did to the book, at exchange time ``ts_us`` (µs UTC)."""

    ts_us: int
    valid: bool  # synced, both sides non-empty, not crossed
    resync: bool  # first valid state after a snapshot or an invalid state
    top: BookTop | None  # None when not valid
    added: float  # base quantity added within the top L (0 unless counted)
    removed: float  # base quantity removed (cancelled or filled) within the top L


def sync_rule_for(venue: str) -> SyncRule:
    """Binance futures chain diffs by ``pu``; every other venue here by contiguous ids."""
    return SyncRule.FUTURES if venue in ("binanceusdm", "binancecoinm") else SyncRule.SPOT


def cancel_terms(prev: BookTop, diff: BookDiff, levels: int) -> tuple[float, float]:
    """(added, removed) base quantity of ``diff`` at prices within the previous top ``levels``.

    "Within" means at or better than the previous L-th level (any price if a side had fewer levels):
    every existing level there is in ``prev``, so its old quantity is known. L2 diffs cannot tell a
    cancel from a fill, so "removed" counts both (SPEC: "cancelled or reduced book volume").
    """
    added = removed = 0.0
    floor = prev.bid_px[levels - 1] if len(prev.bid_px) >= levels else _NEG_INF
    old = dict(zip(prev.bid_px, prev.bid_qty, strict=True))
    for price, qty in diff.bids:
        if price >= floor:
            delta = qty - old.get(price, 0.0)
            if delta > 0.0:
                added += delta
            elif delta < 0.0:
                removed -= delta
    ceiling = prev.ask_px[levels - 1] if len(prev.ask_px) >= levels else _POS_INF
    old = dict(zip(prev.ask_px, prev.ask_qty, strict=True))
    for price, qty in diff.asks:
        if price <= ceiling:
            delta = qty - old.get(price, 0.0)
            if delta > 0.0:
                added += delta
            elif delta < 0.0:
                removed -= delta
    return added, removed


def ofi_terms(prev: BookTop, new: BookTop, depths: tuple[int, ...]) -> list[float]:
    """Multi-level order-flow imbalance of one update, summed over levels 1..d for each d in ``depths``.

    Per level m (Cont, Kukanov & Stoikov; Xu et al. for levels beyond 1), with P, q before (old) and
    after (new): e_m = q_b,new 1{P_b,new >= P_b,old} - q_b,old 1{P_b,new <= P_b,old}
    + q_a,old 1{P_a,new >= P_a,old} - q_a,new 1{P_a,new <= P_a,old}. Positive = buying pressure. A
    missing level has price -inf (bid) / +inf (ask) and quantity 0, so a new level counts as added.
    Summed left to right (level 1 first): the batch implementation adds in the same order.
    """
    top = depths[-1]
    if min(len(prev.bid_px), len(new.bid_px), len(prev.ask_px), len(new.ask_px)) >= top:
        # The usual case, every level present: the same arithmetic without the padding branches.
        out: list[float] = []
        acc = 0.0
        want = iter(depths)
        target = next(want)
        levels = zip(
            prev.bid_px,
            prev.bid_qty,
            new.bid_px,
            new.bid_qty,
            prev.ask_px,
            prev.ask_qty,
            new.ask_px,
            new.ask_qty,
            strict=False,  # sides may hold more levels than `top`
        )
        for m, (pbo, qbo, pbn, qbn, pao, qao, pan, qan) in enumerate(levels, 1):
            e_bid = (qbn if pbn >= pbo else 0.0) - (qbo if pbn <= pbo else 0.0)
            e_ask = (qao if pan >= pao else 0.0) - (qan if pan <= pao else 0.0)
            acc = acc + (e_bid + e_ask)
            if m == target:
                out.append(acc)
                target = next(want, 0)
                if m == top:
                    break
        return out
    out = []
    acc = 0.0
    nb_old, nb_new, na_old, na_new = len(prev.bid_px), len(new.bid_px), len(prev.ask_px), len(new.ask_px)
    want = iter(depths)
    target = next(want)
    for m in range(top):
        pbo, qbo = (prev.bid_px[m], prev.bid_qty[m]) if m < nb_old else (_NEG_INF, 0.0)
        pbn, qbn = (new.bid_px[m], new.bid_qty[m]) if m < nb_new else (_NEG_INF, 0.0)
        pao, qao = (prev.ask_px[m], prev.ask_qty[m]) if m < na_old else (_POS_INF, 0.0)
        pan, qan = (new.ask_px[m], new.ask_qty[m]) if m < na_new else (_POS_INF, 0.0)
        e_bid = (qbn if pbn >= pbo else 0.0) - (qbo if pbn <= pbo else 0.0)
        e_ask = (qao if pan >= pao else 0.0) - (qan if pan <= pao else 0.0)
        acc = acc + (e_bid + e_ask)
        if m + 1 == target:
            out.append(acc)
            target = next(want, 0)
    return out


def depth(top: BookTop, levels: int) -> float:
    """Bid plus ask quantity over levels 1..``levels``, summed level by level (bid then ask)."""
    acc = 0.0
    nb, na = len(top.bid_qty), len(top.ask_qty)
    for m in range(levels):
        acc = acc + ((top.bid_qty[m] if m < nb else 0.0) + (top.ask_qty[m] if m < na else 0.0))
    return acc


class BookTracker:
    """One symbol's `OrderBook` plus the previous top state; see the module docstring."""

    __slots__ = ("_prev", "book", "levels")

    def __init__(self, symbol: str, venue: str, levels: int) -> None:
        self.book = OrderBook(symbol, sync_rule_for(venue))
        self.levels = levels
        self._prev: BookTop | None = None  # last valid top, None after an invalid state or a snapshot

    def on_snapshot(self, snapshot: BookSnapshot, ts_us: int | None = None) -> BookUpdate | None:
        """Apply a snapshot at (clamped) time ``ts_us``.

        With an update id it is a (re)sync: None, and the next applied diff starts a new valid run. A
        whole-book snapshot (no update id) with a time is itself the next state: its `BookUpdate`.
        """
        self.book.apply_snapshot(snapshot)
        if snapshot.last_update_id is not None or ts_us is None:
            self._prev = None
            return None
        prev = self._prev
        top = self._top() if self.book.status().trusted else None
        self._prev = top
        if top is None:
            return BookUpdate(ts_us, False, False, None, 0.0, 0.0)
        return BookUpdate(ts_us, True, prev is None, top, 0.0, 0.0)

    def on_diff(self, diff: BookDiff, ts_us: int) -> BookUpdate | None:
        """Apply ``diff`` at (clamped) time ``ts_us``; None when nothing observable changed."""
        result = self.book.apply_diff(diff)
        if result is DiffResult.APPLIED:
            prev = self._prev
            top = self._top() if self.book.status().trusted else None
            if top is None:
                self._prev = None
                return BookUpdate(ts_us, False, False, None, 0.0, 0.0)
            self._prev = top
            if prev is None:
                return BookUpdate(ts_us, True, True, top, 0.0, 0.0)
            added, removed = cancel_terms(prev, diff, self.levels)
            return BookUpdate(ts_us, True, False, top, added, removed)
        if result is DiffResult.GAP:
            self._prev = None
            return BookUpdate(ts_us, False, False, None, 0.0, 0.0)
        return None  # dropped (already in the book) or buffered (waiting for a snapshot)

    def _top(self) -> BookTop:
        bids, asks = self.book.top_levels(self.levels)
        # Transpose the (price, qty) levels into price and quantity tuples in one pass per side.
        bid_px, bid_qty = zip(*bids, strict=True) if bids else ((), ())
        ask_px, ask_qty = zip(*asks, strict=True) if asks else ((), ())
        return BookTop(bid_px, bid_qty, ask_px, ask_qty)
