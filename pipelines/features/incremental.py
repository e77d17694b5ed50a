"""Incremental (live stream) features: per-symbol state updated one event at a time.

The same features as `pipelines.features.batch` (definitions and parameters from
`pipelines.features.spec`), for a process that sees market events as they happen. The parity tests
feed recorded data through both and require the same values (relative difference <= 1e-9, same nulls).

Use::

    engine = FeatureEngine("5m")                       # bars built from trades
    for event in stream:                               # Trade, BookSnapshot, BookDiff, Liquidation, ...
        for row in engine.on_event(event):             # a FeatureRow per bar the event closed
            publish(row)
    engine.features_at("BTC/USDT", now_us)             # intra-bar values at any later time

    engine = FeatureEngine("5m", bars="candles")       # bars given as candles (klines)
    row = engine.on_candle("BTC/USDT", ts_us, o, h, l, c, v)

Time: exchange time in µs UTC. Per symbol the engine keeps a clock, the latest exchange time seen; an
event older than the clock (streams of one symbol interleave a few ms out of order) is taken to happen
at the clock. A bar ``[ts, ts + timeframe)`` closes when an event at or after its end arrives (or
`advance_to` says time has passed), before that event is applied: its values use events strictly
before the close. Spot book tickers carry no exchange time and are ignored (the depth book is the book
source, as in the batch path).

Cost: O(1) per trade, book diff or liquidation (a book diff also walks the top ``book_levels`` levels,
a constant); windowed sums over time use running totals and checkpoint lists trimmed as the windows
move. At each bar close the bar-window statistics are recomputed from ring buffers of at most
`FeatureParams.hurst_window` (128) bars: O(window) per bar, i.e. per 5 minutes, not per event. They are
recomputed with exactly rounded sums (`math.fsum`) rather than kept as running sums, so they do not
drift over a long-running process and do not depend on how long it has been running. The Hurst
exponent is the costliest: O(window x lags) per bar (numpy, ~50 µs).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipelines.domain.marketdata import BookDiff, BookSnapshot, BookTicker, CaptureEvent, Trade
from pipelines.features.bars import Bar, TimeBarBuilder, VolumeBucketer
from pipelines.features.book import BookTop, BookTracker, BookUpdate, depth, ofi_terms
from pipelines.features.flow import AnyEvent, Liquidation
from pipelines.features.spec import (
    AGGRESSOR_COLUMNS,
    DEFAULT_PARAMS,
    FEATURE_COLUMNS,
    OFI_LEVELS,
    US_PER_S,
    FeatureParams,
    timeframe_us,
    window_market_applies,
)

Value = float | None
_US_PER_HOUR = 3600 * US_PER_S
_OFI_DEPTHS = tuple(d for _, d in OFI_LEVELS)


@dataclass(frozen=True, slots=True)
class FeatureRow:
    """Features of one closed bar: open ``ts_us``, close ``event_ts_us`` (µs UTC), and ``values`` for
    every name of `FEATURE_COLUMNS` (None = null)."""

    symbol: str
    ts_us: int
    event_ts_us: int
    values: dict[str, Value]


def _div(num: float, den: float) -> Value:
    return num / den if den != 0.0 else None


def _finite(x: Value) -> Value:
    return x if x is not None and math.isfinite(x) else None


class _Ewm:
    """polars ``ewm_mean(alpha, adjust=False)`` step by step, seeded like `batch._wilder`.

    The first value is ``sum(first seed_len inputs) / period``; then the weighted update in the same
    arithmetic form polars uses, so both round alike.
    """

    __slots__ = ("_old", "_seed", "alpha", "period", "seed_len", "value")

    def __init__(self, period: int, seed_len: int) -> None:
        self.period = period
        self.seed_len = seed_len
        self.alpha = 1.0 / period
        self._old = 1.0 - self.alpha
        self._seed: list[float] | None = []
        self.value: float | None = None

    def push(self, x: float) -> Value:
        seed = self._seed
        if seed is not None:
            seed.append(x)
            if len(seed) == self.seed_len:
                self.value = math.fsum(seed) / self.period
                self._seed = None
            return self.value
        assert self.value is not None
        self.value = (self._old * self.value + self.alpha * x) / (self._old + self.alpha)
        return self.value


def _mean(buf: deque[float]) -> float:
    return math.fsum(buf) / len(buf)


def _var(values: Sequence[float], ddof: int) -> float:
    """Two-pass variance with exactly rounded sums (no cancellation from sums of squares); exactly 0
    for a constant window (whose rounded mean may be an ulp off the value)."""
    n = len(values)
    if min(values) == max(values):
        return 0.0
    mean = math.fsum(values) / n
    return math.fsum([(x - mean) * (x - mean) for x in values]) / (n - ddof)


class BarFeatures:
    """The candle-based features (`spec.CANDLE_FEATURES`) and Kyle's lambda of one symbol, bar by bar."""

    def __init__(self, bar_us: int, params: FeatureParams = DEFAULT_PARAMS) -> None:
        p = self.p = params
        self.bar_us = bar_us
        self.n = 0
        self.prev_close: float | None = None
        self.prev_high = 0.0
        self.prev_low = 0.0
        self.prev_tp: float | None = None
        self.closes: deque[float] = deque(maxlen=max(p.roc_long + 1, p.bb_period, p.regime_slow))
        self.volumes: deque[float] = deque(maxlen=max(p.obv_slope_window, p.regime_slow))
        self.avg_gain, self.avg_loss = _Ewm(p.rsi_period, p.rsi_period), _Ewm(p.rsi_period, p.rsi_period)
        self.atr = _Ewm(p.atr_period, p.atr_period)
        self.atr_fast = _Ewm(p.regime_fast, p.regime_fast)
        self.atr_slow = _Ewm(p.regime_slow, p.regime_slow)
        n = p.adx_period
        self.s_pdm, self.s_mdm, self.s_tr = _Ewm(n, n - 1), _Ewm(n, n - 1), _Ewm(n, n - 1)
        self.adx_seed: list[float] = []
        self.adx: float | None = None
        self.adx_ewm_old = 1.0 - 1.0 / n
        self.pmf: deque[float] = deque(maxlen=p.mfi_period)
        self.nmf: deque[float] = deque(maxlen=p.mfi_period)
        self.obv_weights = p.obv_slope_weights()
        self.obv_incr: deque[float] = deque(maxlen=len(self.obv_weights))
        self.log_closes: deque[float] = deque(maxlen=p.hurst_window)
        self.hurst_weights = p.hurst_weights()
        self.kyle_r: deque[Value] = deque(maxlen=p.kyle_window)
        self.kyle_sv: deque[Value] = deque(maxlen=p.kyle_window)
        self.window_open: tuple[int, float] | None = None
        self.window_applies = window_market_applies(bar_us, p)

    def update(
        self, ts_us: int, o: float, h: float, lo: float, c: float, v: float, signed_quote: Value = None
    ) -> dict[str, Value]:
        """Add a closed bar (open time ``ts_us``); returns its candle features and ``kyle_lambda``.

        ``signed_quote``: the bar's aggressive buy minus sell quote volume, None when unknown.
        """
        p = self.p
        i = self.n
        self.n += 1
        pc = self.prev_close
        out: dict[str, Value] = {}
        tr: Value = None
        if pc is not None:
            tr = max(h - lo, abs(h - pc), abs(lo - pc))
            change = c - pc
            self.avg_gain.push(change if change > 0.0 else 0.0)
            self.avg_loss.push(-change if change < 0.0 else 0.0)
            self.atr.push(tr)
            self.atr_fast.push(tr)
            self.atr_slow.push(tr)
            up, down = h - self.prev_high, self.prev_low - lo
            self.s_pdm.push(up if up > 0.0 and up > down else 0.0)
            self.s_mdm.push(down if down > 0.0 and down > up else 0.0)
            self.s_tr.push(tr)
            obv_step = v if change > 0.0 else (-v if change < 0.0 else 0.0)
        else:
            obv_step = 0.0
        self.closes.append(c)
        self.volumes.append(v)
        self.obv_incr.append(obv_step)

        # RSI, ATR.
        g, lo_avg = self.avg_gain.value, self.avg_loss.value
        out["rsi_14"] = _div(100.0 * g, g + lo_avg) if g is not None and lo_avg is not None else None
        closes = self.closes
        out["roc_1"] = _rel_change(closes, p.roc_short)
        out["roc_5"] = _rel_change(closes, p.roc_long)
        if len(closes) >= p.bb_period:
            window = list(closes)[-p.bb_period :]
            sma = math.fsum(window) / p.bb_period
            out["bb_width"] = _div(2.0 * p.bb_sigmas * math.sqrt(_var(window, 0)), sma)
        else:
            out["bb_width"] = None
        atr = self.atr.value
        out["atr_pct"] = _div(atr, c) if atr is not None else None

        # ADX (TA-Lib): DX from bar n, first ADX the mean of n DX (undefined counted as 0), then Wilder
        # with an undefined DX leaving the ADX unchanged.
        n = p.adx_period
        dx: Value = None
        s_tr, s_pdm, s_mdm = self.s_tr.value, self.s_pdm.value, self.s_mdm.value
        if i >= n and s_tr is not None and s_pdm is not None and s_mdm is not None and s_tr != 0.0:
            plus_di, minus_di = 100.0 * (s_pdm / s_tr), 100.0 * (s_mdm / s_tr)
            di_sum = minus_di + plus_di
            if di_sum != 0.0:
                dx = 100.0 * (abs(minus_di - plus_di) / di_sum)
        if n <= i < 2 * n - 1:
            self.adx_seed.append(0.0 if dx is None else dx)
        elif i == 2 * n - 1:
            self.adx_seed.append(0.0 if dx is None else dx)
            self.adx = math.fsum(self.adx_seed) / n
        elif i > 2 * n - 1 and dx is not None:
            assert self.adx is not None
            a, old = 1.0 / n, self.adx_ewm_old
            self.adx = (old * self.adx + a * dx) / (old + a)
        out["adx_14"] = self.adx

        # MFI.
        tp = (h + lo + c) / 3.0
        tp_prev = self.prev_tp
        if tp_prev is not None:
            mf = tp * v
            tie = p.mfi_tie_rel * tp_prev
            self.pmf.append(mf if tp - tp_prev > tie else 0.0)
            self.nmf.append(mf if tp_prev - tp > tie else 0.0)
        if len(self.pmf) == p.mfi_period:
            pos, neg = math.fsum(self.pmf), math.fsum(self.nmf)
            out["mfi_14"] = _div(100.0 * pos, pos + neg)
        else:
            out["mfi_14"] = None

        # OBV slope per mean volume (FeatureParams.obv_slope_weights).
        volumes = self.volumes
        if i >= p.obv_slope_window - 1:
            num = math.fsum([w * s for w, s in zip(self.obv_weights, self.obv_incr, strict=True)])
            out["obv_slope"] = _div(num, math.fsum(list(volumes)[-p.obv_slope_window :]) / p.obv_slope_window)
        else:
            out["obv_slope"] = None

        # Regime.
        fast, slow = self.atr_fast.value, self.atr_slow.value
        out["vol_regime"] = _div(fast, slow) if fast is not None and slow is not None else None
        if len(closes) >= p.regime_slow:
            all_closes = list(closes)
            sma_fast = math.fsum(all_closes[-p.regime_fast :]) / p.regime_fast
            sma_slow = math.fsum(all_closes[-p.regime_slow :]) / p.regime_slow
            gap, band = sma_fast - sma_slow, p.trend_dead_band * abs(sma_slow)
            out["trend_regime"] = 1.0 if gap > band else (-1.0 if gap < -band else 0.0)
            all_vol = list(volumes)
            out["volume_regime"] = _div(
                math.fsum(all_vol[-p.regime_fast :]) / p.regime_fast,
                math.fsum(all_vol[-p.regime_slow :]) / p.regime_slow,
            )
        else:
            out["trend_regime"] = out["volume_regime"] = None
        out["time_regime"] = p.session_code((ts_us // _US_PER_HOUR) % 24)

        # Hurst over the last hurst_window log closes: O(window x lags), once per bar.
        self.log_closes.append(math.log(c) if c > 0.0 else math.nan)
        out["hurst"] = self._hurst()

        # Window markets.
        if self.window_applies:
            w_us = p.window_market_s * US_PER_S
            win = ts_us - ts_us % w_us
            aligned = ts_us % self.bar_us == 0
            if aligned and ts_us == win:
                self.window_open = (win, o)
            wo = self.window_open
            open_price = wo[1] if wo is not None and wo[0] == win else None
            ratio = _div(c, open_price) if aligned and open_price is not None else None
            out["price_vs_open"] = None if ratio is None else ratio - 1.0
            out["time_decay"] = (win + w_us - (ts_us + self.bar_us)) / w_us if aligned else None
        else:
            out["price_vs_open"] = out["time_decay"] = None

        # Kyle's lambda: cov(return, signed volume) / var(signed volume) over the last kyle_window bars.
        self.kyle_r.append(out["roc_1"])
        self.kyle_sv.append(signed_quote)
        out["kyle_lambda"] = self._kyle()

        self.prev_close, self.prev_high, self.prev_low, self.prev_tp = c, h, lo, tp
        return {k: _finite(v_) for k, v_ in out.items()}

    def _hurst(self) -> Value:
        p = self.p
        if len(self.log_closes) < p.hurst_window:
            return None
        x = np.fromiter(self.log_closes, dtype=np.float64, count=p.hurst_window)
        h = 0.0
        for lag, w in zip(p.hurst_lags, self.hurst_weights, strict=True):
            d = x[lag:] - x[:-lag]
            if d.min() == d.max():  # a constant window: the std is exactly 0 and H undefined
                return None
            # numpy's var is two-pass with pairwise sums: accurate to ~1e-16 on these 100-odd values.
            var = float(d.var(ddof=1))
            if not var > 0.0:
                return None
            h = h + w * math.log(math.sqrt(var))
        return h

    def _kyle(self) -> Value:
        n = self.p.kyle_window
        if len(self.kyle_sv) < n or any(x is None for x in self.kyle_sv) or any(x is None for x in self.kyle_r):
            return None
        r: list[float] = list(self.kyle_r)  # type: ignore[arg-type]  # checked above: no None
        s: list[float] = list(self.kyle_sv)  # type: ignore[arg-type]
        var = _var(s, 1)
        if var == 0.0:
            return None
        mr, ms = math.fsum(r) / n, math.fsum(s) / n
        cov = math.fsum([(a - mr) * (b - ms) for a, b in zip(r, s, strict=True)]) / (n - 1)
        return cov / var


def _rel_change(closes: deque[float], k: int) -> Value:
    if len(closes) <= k:
        return None
    r = _div(closes[-1], closes[-1 - k])
    return None if r is None else r - 1.0


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


class _Symbol:
    """All state of one symbol."""

    def __init__(self, symbol: str, bar_us: int, p: FeatureParams, build_bars: bool) -> None:
        self.symbol = symbol
        self.clock: int | None = None
        self.bars = BarFeatures(bar_us, p)
        self.builder = TimeBarBuilder(bar_us) if build_bars else None
        self.trades = _TradeFlow(p, symbol)
        self.book: _BookFlow | None = None
        self.liq = _LiqFlow(p)
        self.liq_start: int | None = None
        # Signed-quote running total at the last few bar boundaries the clock crossed (Kyle's lambda).
        self.boundaries: deque[tuple[int, float]] = deque(maxlen=8)
        self.next_boundary: int | None = None


class FeatureEngine:
    """Incremental features for any number of symbols; see the module docstring.

    ``bars="trades"``: time bars are built from trades (`bars.TimeBarBuilder`) and every event may close
    bars. ``bars="candles"``: bars come from `on_candle`; trades, book and liquidation events (if any)
    still feed the flow features evaluated at each candle's close.
    """

    def __init__(
        self,
        timeframe: str = "5m",
        params: FeatureParams = DEFAULT_PARAMS,
        *,
        bars: Literal["trades", "candles"] = "trades",
    ) -> None:
        self.timeframe = timeframe
        self.bar_us = timeframe_us(timeframe)
        self.params = params
        self.build_bars = bars == "trades"
        self._symbols: dict[str, _Symbol] = {}
        self._last_bar_values: dict[str, dict[str, Value]] = {}  # per symbol, for features_at

    # ---- state --------------------------------------------------------------------------------------
    def _state(self, symbol: str) -> _Symbol:
        st = self._symbols.get(symbol)
        if st is None:
            st = self._symbols[symbol] = _Symbol(symbol, self.bar_us, self.params, self.build_bars)
        return st

    def symbols(self) -> list[str]:
        return list(self._symbols)

    def clock(self, symbol: str) -> int | None:
        """Latest exchange time (µs UTC) seen for ``symbol``."""
        st = self._symbols.get(symbol)
        return None if st is None else st.clock

    # ---- events -------------------------------------------------------------------------------------
    def on_event(self, event: AnyEvent) -> list[FeatureRow]:
        """Dispatch any market event; returns the rows of the bars it closed (usually none)."""
        ev = event.event if isinstance(event, CaptureEvent) else event
        if isinstance(ev, Trade):
            return self.on_trade(ev)
        if isinstance(ev, BookDiff):
            return self.on_book_diff(ev)
        if isinstance(ev, BookTicker):
            return []
        if isinstance(ev, BookSnapshot):
            return self.on_book_snapshot(ev)
        if isinstance(ev, Liquidation):
            return self.on_liquidation(ev)
        raise TypeError(f"unsupported event {type(ev).__name__}")

    def on_events(self, events: Iterable[AnyEvent]) -> list[FeatureRow]:
        """`on_event` over ``events``; all closed-bar rows, in order."""
        rows: list[FeatureRow] = []
        for ev in events:
            rows.extend(self.on_event(ev))
        return rows

    def on_trade(self, trade: Trade) -> list[FeatureRow]:
        """A public trade (its ``ts_us`` is the match time); the first one of a symbol starts its trade
        feed (bars, trade windows and VPIN buckets count from it). O(1)."""
        st = self._state(trade.symbol)
        now, rows = self._advance(st, trade.ts_us)
        is_buy = trade.aggressor_side == "buy"
        st.trades.add(now, trade.price, trade.qty, is_buy)
        if st.liq_start is None:
            st.liq_start = now
        if st.builder is not None:
            st.builder.add_trade(now, trade.price, trade.qty, is_buy)
        if st.next_boundary is None:
            self._start_boundaries(st, now)
        return rows

    def on_book_diff(self, diff: BookDiff) -> list[FeatureRow]:
        """An order-book diff, applied through the symbol's `OrderBook` (gaps invalidate the book until
        the next snapshot). O(levels in the diff + book_levels)."""
        st = self._state(diff.symbol)
        now, rows = self._advance(st, diff.ts_us)
        book = st.book
        if book is None:
            book = st.book = _BookFlow(self.params, diff.symbol, diff.venue)
        upd = book.tracker.on_diff(diff, now)
        if upd is not None:
            book.add(upd)
        return rows

    def on_book_snapshot(self, snapshot: BookSnapshot) -> list[FeatureRow]:
        """A REST (re)snapshot with an update id, or a whole-book snapshot of a venue without diffs."""
        st = self._state(snapshot.symbol)
        rows: list[FeatureRow] = []
        now: int | None = None
        if snapshot.ts_us is not None:
            now, rows = self._advance(st, snapshot.ts_us)
        book = st.book
        if book is None:
            book = st.book = _BookFlow(self.params, snapshot.symbol, snapshot.venue)
        upd = book.tracker.on_snapshot(snapshot, now)
        if upd is not None:
            book.add(upd)
        return rows

    def on_liquidation(self, liq: Liquidation) -> list[FeatureRow]:
        """A forced order on a perpetual (feeds liquidation_imbalance). O(1)."""
        st = self._state(liq.symbol)
        now, rows = self._advance(st, liq.ts_us)
        if st.liq_start is None:
            st.liq_start = now
        st.liq.add(now, liq.price * liq.qty, liq.side == "buy")
        return rows

    def advance_to(self, symbol: str, ts_us: int) -> list[FeatureRow]:
        """Tell the engine no event of ``symbol`` before ``ts_us`` is still to come: closes due bars."""
        st = self._state(symbol)
        _, rows = self._advance(st, ts_us)
        return rows

    def on_candle(
        self, symbol: str, ts_us: int, open: float, high: float, low: float, close: float, volume: float
    ) -> FeatureRow:
        """A closed candle ``[ts_us, ts_us + timeframe)`` (``bars="candles"``); returns its features.

        Candles of a symbol must come in time order; events of the symbol at or after the candle's close
        must not have been applied yet (flow values are taken at the close).
        """
        if self.build_bars:
            raise ValueError('on_candle needs FeatureEngine(bars="candles")')
        st = self._state(symbol)
        end = ts_us + self.bar_us
        if st.clock is not None and st.clock >= end:
            raise ValueError(f"{symbol}: candle closing at {end} arrived after an event at {st.clock}")
        if st.next_boundary is not None:
            self._cross_boundaries(st, end)
        return self._close_bar(st, ts_us, open, high, low, close, volume)

    def seed_bar(
        self, symbol: str, ts_us: int, open: float, high: float, low: float, close: float, volume: float
    ) -> dict[str, Value]:
        """A closed bar from history (e.g. the lake's candles), fed before the symbol's first live event.

        Warms the bar-window features (RSI, ATR, ADX, Bollinger, regimes, Hurst, ...) so a stream that
        just started scores real values instead of nulls. The bar's signed volume is unknown (Kyle's
        lambda gets None for it). Returns the bar's candle features.
        """
        st = self._state(symbol)
        if st.clock is not None:
            raise ValueError(f"{symbol}: seed_bar after live events (clock {st.clock})")
        values = st.bars.update(ts_us, open, high, low, close, volume, None)
        self._last_bar_values[symbol] = values
        return values

    def features_at(self, symbol: str, t_us: int) -> dict[str, Value]:
        """Every feature of ``symbol`` at time ``t_us`` (> its clock): flow and book values at ``t_us``,
        bar values of the last closed bar. For scoring between bar closes."""
        st = self._symbols.get(symbol)
        if st is None:
            return dict(_NULL_ROW)
        if st.clock is not None and t_us <= st.clock:
            raise ValueError(f"{symbol}: features_at({t_us}) must be after the latest event ({st.clock})")
        out = dict(self._last_bar_values.get(symbol, _NULL_ROW))
        self._flow_values(st, t_us, out)
        return {name: out[name] for name in FEATURE_COLUMNS}

    # ---- internals ----------------------------------------------------------------------------------
    def _advance(self, st: _Symbol, ts_us: int) -> tuple[int, list[FeatureRow]]:
        clock = st.clock
        now = ts_us if clock is None or ts_us > clock else clock
        rows: list[FeatureRow] = []
        if clock is None or now > clock:
            if st.next_boundary is not None and now >= st.next_boundary:
                if st.builder is not None:
                    for bar in st.builder.advance(now):
                        self._cross_boundaries(st, bar.ts_us + self.bar_us)
                        rows.append(self._close_built_bar(st, bar))
                self._cross_boundaries(st, now)
            st.clock = now
        return now, rows

    def _start_boundaries(self, st: _Symbol, now: int) -> None:
        first = now - now % self.bar_us
        st.boundaries.append((first, 0.0))  # nothing was traded before the first event
        st.next_boundary = first + self.bar_us

    def _cross_boundaries(self, st: _Symbol, now: int) -> None:
        """Record the signed-quote total at every bar boundary up to ``now`` (the last few suffice)."""
        nb = st.next_boundary
        if nb is None or now < nb:
            return
        last = now - now % self.bar_us
        first = max(nb, last - (st.boundaries.maxlen or 8) * self.bar_us)
        total = st.trades.sq
        for b in range(first, last + 1, self.bar_us):
            st.boundaries.append((b, total))
        st.next_boundary = last + self.bar_us

    def _boundary_total(self, st: _Symbol, b: int) -> Value:
        for ts, total in reversed(st.boundaries):
            if ts == b:
                return total
        return None

    def _close_built_bar(self, st: _Symbol, bar: Bar) -> FeatureRow:
        return self._close_bar(st, bar.ts_us, bar.open, bar.high, bar.low, bar.close, bar.volume)

    def _close_bar(self, st: _Symbol, ts_us: int, o: float, h: float, lo: float, c: float, v: float) -> FeatureRow:
        end = ts_us + self.bar_us
        signed: Value = None
        start = st.trades.start
        if start is not None and ts_us >= start:
            at_open, at_close = self._boundary_total(st, ts_us), self._boundary_total(st, end)
            if at_open is not None and at_close is not None:
                signed = at_close - at_open
        values = st.bars.update(ts_us, o, h, lo, c, v, signed)
        self._last_bar_values[st.symbol] = values
        out = dict(values)
        self._flow_values(st, end, out)
        return FeatureRow(st.symbol, ts_us, end, {name: out[name] for name in FEATURE_COLUMNS})

    def _flow_values(self, st: _Symbol, t_us: int, out: dict[str, Value]) -> None:
        st.trades.values(t_us, out)
        if st.book is None:
            for name in ("spread_pct", "bid_ask_imbalance", "lob_depth_imbalance", "microprice_dev"):
                out[name] = None
            out["cancel_rate_1m"] = None
            for name, _ in OFI_LEVELS:
                out[name] = None
        else:
            st.book.values(t_us, out)
        out["liquidation_imbalance"] = st.liq.value(t_us, st.liq_start)
        for k, v in out.items():
            if v is not None and not math.isfinite(v):
                out[k] = None


_NULL_ROW: dict[str, Value] = dict.fromkeys(FEATURE_COLUMNS)
