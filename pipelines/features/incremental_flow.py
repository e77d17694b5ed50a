"""Flow state of the incremental engine: windowed running totals over trades, the tracked order book
and liquidations of one symbol, O(1) amortized per event.

Part of `pipelines.features.incremental`; see its module docstring for time, cost and parity contracts.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Sequence

from pipelines.features.bars import VolumeBucketer
from pipelines.features.book import BookTop, BookTracker, BookUpdate, depth, ofi_terms
from pipelines.features.incremental_bars import Value, _div
from pipelines.features.spec import AGGRESSOR_COLUMNS, OFI_LEVELS, US_PER_S, FeatureParams

_OFI_DEPTHS = tuple(d for _, d in OFI_LEVELS)


class _Windows:
    """Sums over ``[t - w, t)`` for several window lengths, from running totals (O(1) amortized).

    ``add(ts, totals)`` records the totals after an event at ``ts`` (times non-decreasing);
    ``start_totals(t, k)`` gives the totals at the last event before ``t - w_k``, to subtract from the
    current totals. Every query must come after the events it counts (``t`` > last event time), which
    the engine guarantees; query times may go back (a `features_at` ahead of the next bar close), so a
    cursor can step back. Entries that no such query can need any more (older than the newest event
    minus the longest window) are dropped in batches.
    """

    __slots__ = ("_base", "_cursor", "_longest", "_tot", "_ts", "width", "windows_us")

    _COMPACT_AT = 4096  # entries dropped at once, at least (list deletion is O(n))

    def __init__(self, windows_us: Sequence[int], width: int) -> None:
        self.windows_us = tuple(windows_us)
        self._longest = max(self.windows_us)
        self.width = width
        self._ts: list[int] = []
        self._tot: list[tuple[float, ...]] = []
        self._cursor = [0] * len(self.windows_us)
        self._base: tuple[float, ...] = (0.0,) * width  # totals of the last dropped entry

    def add(self, ts_us: int, totals: tuple[float, ...]) -> None:
        ts = self._ts
        ts.append(ts_us)
        self._tot.append(totals)
        if len(ts) > 2 * self._COMPACT_AT:
            # Any later query has t > ts_us, so its window starts after ts_us - longest: the last entry
            # before that instant may still be a base; everything before it is unreachable.
            keep_from = bisect_left(ts, ts_us - self._longest) - 1
            if keep_from >= self._COMPACT_AT:
                self._base = self._tot[keep_from - 1]
                del ts[:keep_from], self._tot[:keep_from]
                self._cursor = [max(c - keep_from, 0) for c in self._cursor]

    def start_totals(self, t_us: int, k: int) -> tuple[float, ...]:
        """Totals at the last recorded event strictly before ``t - w_k``."""
        start = t_us - self.windows_us[k]
        ts = self._ts
        i = self._cursor[k]
        n = len(ts)
        while i < n and ts[i] < start:
            i += 1
        while i > 0 and ts[i - 1] >= start:  # an earlier query than the last one
            i -= 1
        self._cursor[k] = i
        return self._tot[i - 1] if i > 0 else self._base


class _TradeFlow:
    """Trade-derived running totals, windows, VPIN buckets and bar-boundary checkpoints of one symbol."""

    def __init__(self, p: FeatureParams, symbol: str) -> None:
        self.p = p
        self.start: int | None = None
        self.last_price: float | None = None
        # Running totals, in this order: signed quote, quote, buy quote, tick return x qty, qty with return.
        self.sq = self.q = self.bq = self.rq = self.qv = 0.0
        self.windows_s = sorted({p.cumdelta_window_s, p.vw_momentum_window_s, *p.aggressor_windows_s})
        self.windows = _Windows([w * US_PER_S for w in self.windows_s], 5)
        self.window_index = {w: k for k, w in enumerate(self.windows_s)}
        self.buckets = VolumeBucketer(p.vpin_bucket_for(symbol))
        self.vpin: deque[float] = deque(maxlen=p.vpin_buckets)

    def add(self, ts_us: int, price: float, qty: float, is_buy: bool) -> None:
        if self.start is None:
            self.start = ts_us
        quote = price * qty
        self.sq += quote if is_buy else -quote
        self.q += quote
        if is_buy:
            self.bq += quote
        last = self.last_price
        if last is not None:
            self.rq += (price / last - 1.0) * qty
            self.qv += qty
        self.last_price = price
        self.windows.add(ts_us, (self.sq, self.q, self.bq, self.rq, self.qv))
        done = self.buckets.add(price, qty, is_buy)
        if done:
            self.vpin.extend(done)

    def values(self, t_us: int, out: dict[str, Value]) -> None:
        p = self.p
        start = self.start
        now = (self.sq, self.q, self.bq, self.rq, self.qv)
        sums: dict[int, tuple[float, ...]] = {}
        for w, k in self.window_index.items():
            if start is not None and t_us - w * US_PER_S >= start:
                base = self.windows.start_totals(t_us, k)
                sums[w] = tuple(a - b for a, b in zip(now, base, strict=True))
        cd = sums.get(p.cumdelta_window_s)
        out["cumdelta_5m"] = cd[0] if cd is not None else None
        vw = sums.get(p.vw_momentum_window_s)
        out["vw_momentum_1m"] = _div(vw[3], vw[4]) if vw is not None else None
        for name, w in zip(AGGRESSOR_COLUMNS, p.aggressor_windows_s, strict=True):
            ag = sums.get(w)
            out[name] = _div(ag[2], ag[1]) if ag is not None else None
        out["vpin"] = math.fsum(self.vpin) / p.vpin_buckets if len(self.vpin) == p.vpin_buckets else None


class _BookFlow:
    """The tracked order book of one symbol, its last state and the OFI / cancel-rate windows."""

    def __init__(self, p: FeatureParams, symbol: str, venue: str) -> None:
        self.p = p
        self.tracker = BookTracker(symbol, venue, p.book_levels)
        self.state: BookUpdate | None = None
        self.since: int | None = None  # time of the first update of the current valid run
        self.prev_top: BookTop | None = None
        self.ofi1 = self.ofi5 = self.ofi10 = self.added = self.removed = 0.0
        windows = sorted({p.ofi_window_s, p.cancel_window_s})
        self.windows = _Windows([w * US_PER_S for w in windows], 5)
        self.window_index = {w: k for k, w in enumerate(windows)}
        self.stale_us = round(p.book_stale_s * US_PER_S)

    def add(self, upd: BookUpdate) -> None:
        self.state = upd
        if not upd.valid:
            self.since = None
            self.prev_top = None
            return
        assert upd.top is not None
        if upd.resync or self.prev_top is None:
            self.since = upd.ts_us
        else:
            e1, e5, e10 = ofi_terms(self.prev_top, upd.top, _OFI_DEPTHS)
            self.ofi1 += e1
            self.ofi5 += e5
            self.ofi10 += e10
            self.added += upd.added
            self.removed += upd.removed
            self.windows.add(upd.ts_us, (self.ofi1, self.ofi5, self.ofi10, self.added, self.removed))
        self.prev_top = upd.top

    def values(self, t_us: int, out: dict[str, Value]) -> None:
        p = self.p
        st = self.state
        names = ("spread_pct", "bid_ask_imbalance", "lob_depth_imbalance", "microprice_dev", "cancel_rate_1m")
        if st is None or not st.valid or t_us - st.ts_us > self.stale_us or st.top is None:
            for name in (*names, *(n for n, _ in OFI_LEVELS)):
                out[name] = None
            return
        top = st.top
        bp1, ap1, bq1, aq1 = top.bid_px[0], top.ask_px[0], top.bid_qty[0], top.ask_qty[0]
        mid = (bp1 + ap1) / 2.0
        micro = _div(bp1 * aq1 + ap1 * bq1, bq1 + aq1)
        bid_sum = ask_sum = 0.0
        for m in range(p.book_levels):
            bid_sum = bid_sum + (top.bid_qty[m] if m < len(top.bid_qty) else 0.0)
            ask_sum = ask_sum + (top.ask_qty[m] if m < len(top.ask_qty) else 0.0)
        out["spread_pct"] = _div(ap1 - bp1, mid)
        out["bid_ask_imbalance"] = _div(bq1 - aq1, bq1 + aq1)
        out["lob_depth_imbalance"] = _div(bid_sum - ask_sum, bid_sum + ask_sum)
        out["microprice_dev"] = _div(micro - mid, mid) if micro is not None else None
        now = (self.ofi1, self.ofi5, self.ofi10, self.added, self.removed)
        since = self.since
        sums: dict[int, tuple[float, ...] | None] = {}
        for w, k in self.window_index.items():
            if since is not None and t_us - w * US_PER_S >= since:
                base = self.windows.start_totals(t_us, k)
                sums[w] = tuple(a - b for a, b in zip(now, base, strict=True))
        ofi = sums.get(p.ofi_window_s)
        for j, (name, d) in enumerate(OFI_LEVELS):
            out[name] = _div(ofi[j], depth(top, d)) if ofi is not None else None
        cancel = sums.get(p.cancel_window_s)
        out["cancel_rate_1m"] = _div(cancel[4], cancel[3]) if cancel is not None else None


class _LiqFlow:
    def __init__(self, p: FeatureParams) -> None:
        self.p = p
        self.buy = self.sell = 0.0
        self.windows = _Windows([p.liquidation_window_s * US_PER_S], 2)

    def add(self, ts_us: int, quote: float, is_buy: bool) -> None:
        if is_buy:
            self.buy += quote
        else:
            self.sell += quote
        self.windows.add(ts_us, (self.buy, self.sell))

    def value(self, t_us: int, start: int | None) -> Value:
        if start is None or t_us - self.p.liquidation_window_s * US_PER_S < start:
            return None
        b0, s0 = self.windows.start_totals(t_us, 0)
        buy, sell = self.buy - b0, self.sell - s0
        return _div(buy - sell, buy + sell)
