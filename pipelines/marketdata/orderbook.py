"""A local L2 order book kept from a snapshot plus diffs in update-id order, with a trust status.

Sync rules (Binance's "how to manage a local order book correctly"):

- ``SyncRule.SPOT`` (Binance spot): diffs with ``u <= lastUpdateId`` are already in the snapshot and are
  dropped; the first applied diff must have ``U <= lastUpdateId + 1 <= u``; afterwards each diff's ``U``
  must equal the previous diff's ``u + 1``.
- ``SyncRule.FUTURES`` (Binance USD-M / COIN-M): diffs with ``u < lastUpdateId`` are dropped; the first
  applied diff must have ``U <= lastUpdateId <= u``; afterwards each diff's ``pu`` must equal the previous
  diff's ``u`` (ids are not contiguous between futures diffs, so ``U`` cannot be checked).

Anything else is a gap: the book goes to ``NEEDS_RESYNC`` and refuses to serve prices
(`BookNotSyncedError`) until a new snapshot is applied. Diffs received while waiting for a snapshot are
buffered (bounded) and replayed when it arrives, as Binance prescribes, because the stream must be opened
before the snapshot is requested and the snapshot is usually older than the first diffs received.

A snapshot without an update id (Upbit sends whole 15-level books) is complete by itself: the book is
synced at once, and a diff arriving afterwards is a gap (there is no sequence to chain it to).

Trust (SPEC section 2): a book is served only when synced, but a synced book is still *not trusted* when
it is crossed (best bid >= best ask) or stale (its last exchange update older than ``max_age_us``);
`OrderBook.status` says which, so features computed from it can be marked stale.

Prices and quantities are floats (see `pipelines.domain.marketdata`); times are exchange time in µs UTC.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sortedcontainers import SortedList

from pipelines.domain.marketdata import BookDiff, BookLevel, BookSnapshot
from pipelines.errors import RetryableError

DEFAULT_MAX_AGE_US = 3_000_000  # "older than a few seconds is not trusted" (SPEC section 2)
DEFAULT_MAX_BUFFER = 10_000  # diffs kept while waiting for a snapshot (~17 min of spot @100ms)


class SyncRule(StrEnum):
    """How consecutive diffs chain: by contiguous ids (spot) or by ``pu`` (futures)."""

    SPOT = "spot"
    FUTURES = "futures"


class BookState(StrEnum):
    """Where the book is in the sync procedure. Prices are served only in ``SYNCED``."""

    AWAITING_SNAPSHOT = "awaiting_snapshot"  # nothing yet: diffs are buffered
    AWAITING_FIRST_DIFF = "awaiting_first_diff"  # snapshot applied, no diff has bridged it yet
    SYNCED = "synced"
    NEEDS_RESYNC = "needs_resync"  # a gap or an invalidation: waiting for a new snapshot, diffs buffered


class DiffResult(StrEnum):
    """What `OrderBook.apply_diff` did with a diff."""

    APPLIED = "applied"
    DROPPED = "dropped"  # entirely at or before the book's last update id: already reflected
    BUFFERED = "buffered"  # kept for the next snapshot
    GAP = "gap"  # out of sequence: the book now needs a resync (the diff is buffered for it)


@dataclass(frozen=True, slots=True)
class BookStatus:
    """Whether the book can be trusted now, and if not, why (``reason`` is empty when trusted)."""

    state: BookState
    trusted: bool
    reason: str


class BookNotSyncedError(RetryableError):
    """The book is not in sync with the venue (no snapshot yet, or a gap): resync, then ask again."""


def _apply_levels(side: dict[float, float], keys: SortedList, levels: Iterable[BookLevel]) -> None:
    # The dict answers "is this price present" in O(1); the SortedList keeps prices ordered for the
    # best price and the top-N walk. A quantity is absolute: 0 removes the level.
    for price, qty in levels:
        if qty > 0.0:
            if price not in side:
                keys.add(price)
            side[price] = qty
        elif side.pop(price, None) is not None:
            keys.remove(price)


class OrderBook:
    """L2 book of one symbol on one venue, kept from snapshot + diffs; see the module docstring.

    Not thread-safe: one owner (one stream task) applies updates and reads it.
    """

    __slots__ = (
        "_ask_keys",
        "_asks",
        "_bid_keys",
        "_bids",
        "_buffer",
        "_last_event_us",
        "_last_update_id",
        "_reason",
        "_state",
        "max_age_us",
        "rule",
        "symbol",
    )

    def __init__(
        self,
        symbol: str,
        rule: SyncRule = SyncRule.SPOT,
        *,
        max_age_us: int = DEFAULT_MAX_AGE_US,
        max_buffer: int = DEFAULT_MAX_BUFFER,
    ) -> None:
        """``max_age_us``: default staleness limit (µs); ``max_buffer``: diffs kept while unsynced."""
        if max_age_us <= 0 or max_buffer <= 0:
            raise ValueError("max_age_us and max_buffer must be positive")
        self.symbol = symbol
        self.rule = rule
        self.max_age_us = max_age_us
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_keys = SortedList()
        self._ask_keys = SortedList()
        # Oldest diffs fall out first: a snapshot taken later than them cannot use them anyway.
        self._buffer: deque[BookDiff] = deque(maxlen=max_buffer)
        self._state = BookState.AWAITING_SNAPSHOT
        self._reason = "no snapshot yet"
        self._last_update_id: int | None = None
        self._last_event_us: int | None = None

    # ---- updates -----------------------------------------------------------------------------------
    def apply_snapshot(self, snapshot: BookSnapshot) -> None:
        """Replace the book with ``snapshot``, then replay the diffs buffered while it was awaited.

        With an update id the book waits for a diff that bridges it (``AWAITING_FIRST_DIFF``, or
        ``SYNCED`` if a buffered diff already did); without one (whole-book venues) it is ``SYNCED``.
        """
        self._bids = {p: q for p, q in snapshot.bids if q > 0.0}
        self._asks = {p: q for p, q in snapshot.asks if q > 0.0}
        self._bid_keys = SortedList(self._bids)
        self._ask_keys = SortedList(self._asks)
        self._last_update_id = snapshot.last_update_id
        if snapshot.ts_us is not None:
            self._last_event_us = snapshot.ts_us
        if snapshot.last_update_id is None:
            self._state, self._reason = BookState.SYNCED, ""
            self._buffer.clear()
            return
        self._state = BookState.AWAITING_FIRST_DIFF
        self._reason = f"snapshot {snapshot.last_update_id} applied, waiting for a diff that bridges it"
        pending = list(self._buffer)
        self._buffer.clear()
        for i, diff in enumerate(pending):
            if self.apply_diff(diff) is DiffResult.GAP:
                # The gap diff is already buffered; keep the later ones too for the next snapshot.
                self._buffer.extend(pending[i + 1 :])
                break

    def apply_diff(self, diff: BookDiff) -> DiffResult:
        """Apply ``diff`` if it is next in sequence; see `DiffResult` for the other outcomes."""
        state = self._state
        if state is BookState.AWAITING_SNAPSHOT or state is BookState.NEEDS_RESYNC:
            self._buffer.append(diff)
            return DiffResult.BUFFERED
        last = self._last_update_id
        first, final = diff.first_update_id, diff.final_update_id
        if last is None:
            return self._gap(diff, "a diff arrived for a book kept from whole snapshots (no update ids)")
        if state is BookState.AWAITING_FIRST_DIFF:
            if self.rule is SyncRule.SPOT:
                if final <= last:
                    return DiffResult.DROPPED
                if first > last + 1:
                    return self._gap(diff, f"first diff U={first} > snapshot lastUpdateId+1={last + 1}")
            else:
                if final < last:
                    return DiffResult.DROPPED
                if first > last:
                    return self._gap(diff, f"first diff U={first} > snapshot lastUpdateId={last}")
        elif final <= last:
            return DiffResult.DROPPED  # a repeat of something already applied (e.g. after a reconnect)
        elif self.rule is SyncRule.SPOT:
            if first != last + 1:
                return self._gap(diff, f"gap: expected U={last + 1}, got U={first} (u={final})")
        elif diff.prev_final_update_id != last:
            return self._gap(diff, f"gap: expected pu={last}, got pu={diff.prev_final_update_id} (u={final})")
        _apply_levels(self._bids, self._bid_keys, diff.bids)
        _apply_levels(self._asks, self._ask_keys, diff.asks)
        self._last_update_id = final
        self._last_event_us = diff.ts_us
        if state is not BookState.SYNCED:
            self._state, self._reason = BookState.SYNCED, ""
        return DiffResult.APPLIED

    def invalidate(self, reason: str) -> None:
        """Mark the book out of sync (e.g. the WebSocket reconnected): it needs a new snapshot."""
        self._state, self._reason = BookState.NEEDS_RESYNC, reason
        self._buffer.clear()

    def _gap(self, diff: BookDiff, reason: str) -> DiffResult:
        self._state, self._reason = BookState.NEEDS_RESYNC, reason
        # Diffs before the gap cannot help a future snapshot; this one (and later ones) may bridge it.
        self._buffer.clear()
        self._buffer.append(diff)
        return DiffResult.GAP

    # ---- state -------------------------------------------------------------------------------------
    @property
    def state(self) -> BookState:
        return self._state

    @property
    def is_synced(self) -> bool:
        return self._state is BookState.SYNCED

    @property
    def last_update_id(self) -> int | None:
        """Update id the book reflects (snapshot's or last applied diff's ``u``); None for id-less books."""
        return self._last_update_id

    @property
    def last_event_us(self) -> int | None:
        """Exchange time (µs UTC) of the last applied update that carried one; None if none did."""
        return self._last_event_us

    @property
    def buffered(self) -> int:
        """Diffs waiting for the next snapshot."""
        return len(self._buffer)

    def _require_synced(self) -> None:
        if self._state is not BookState.SYNCED:
            raise BookNotSyncedError(f"{self.symbol} book is {self._state}: {self._reason}")

    # ---- reads (raise BookNotSyncedError unless synced) -----------------------------------------------
    def best_bid(self) -> BookLevel | None:
        """Highest bid (price, qty), None if the bid side is empty."""
        self._require_synced()
        if not self._bid_keys:
            return None
        price = self._bid_keys[-1]
        return BookLevel(price, self._bids[price])

    def best_ask(self) -> BookLevel | None:
        """Lowest ask (price, qty), None if the ask side is empty."""
        self._require_synced()
        if not self._ask_keys:
            return None
        price = self._ask_keys[0]
        return BookLevel(price, self._asks[price])

    def mid(self) -> float | None:
        """(best bid + best ask) / 2, None if a side is empty."""
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return None
        return (bid.price + ask.price) / 2.0

    def top_levels(self, n: int) -> tuple[list[BookLevel], list[BookLevel]]:
        """Up to ``n`` best levels per side: (bids best-first descending, asks best-first ascending)."""
        self._require_synced()
        if n <= 0:
            return [], []
        bids, asks, bid_keys = self._bids, self._asks, self._bid_keys
        return (
            [BookLevel(p, bids[p]) for p in bid_keys.islice(max(len(bid_keys) - n, 0), reverse=True)],
            [BookLevel(p, asks[p]) for p in self._ask_keys.islice(0, n)],
        )

    # ---- trust (readable in any state: diagnostics, not prices) --------------------------------------
    def is_crossed(self) -> bool:
        """Best bid >= best ask (crossed or locked): impossible on one venue, so the book is wrong."""
        return bool(self._bid_keys) and bool(self._ask_keys) and self._bid_keys[-1] >= self._ask_keys[0]

    def is_stale(self, now_us: int, max_age_us: int | None = None) -> bool:
        """True when the last update is older than ``max_age_us`` (default: the book's) at ``now_us``.

        ``now_us`` must be on the exchange's clock (µs UTC), e.g. the local clock corrected by the measured
        offset, or the newest exchange time seen on any stream. A book with no known update time is stale.
        """
        if self._last_event_us is None:
            return True
        limit = self.max_age_us if max_age_us is None else max_age_us
        return now_us - self._last_event_us > limit

    def status(self, now_us: int | None = None, max_age_us: int | None = None) -> BookStatus:
        """Trusted only when synced, both sides non-empty, not crossed and (if ``now_us`` given) fresh."""
        if self._state is not BookState.SYNCED:
            return BookStatus(self._state, False, self._reason)
        if not self._bid_keys or not self._ask_keys:
            return BookStatus(self._state, False, "one side of the book is empty")
        if self.is_crossed():
            return BookStatus(
                self._state, False, f"crossed: best bid {self._bid_keys[-1]} >= best ask {self._ask_keys[0]}"
            )
        if now_us is not None and self.is_stale(now_us, max_age_us):
            last = self._last_event_us
            age = "unknown" if last is None else f"{(now_us - last) / 1e6:.3f} s"
            return BookStatus(self._state, False, f"stale: last update age {age}")
        return BookStatus(self._state, True, "")
