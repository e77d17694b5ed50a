"""Bar-window features of the incremental engine: `BarFeatures` (candle features and Kyle's lambda of
one symbol, updated once per closed bar) and the exactly rounded helpers it shares with the flow state.

Part of `pipelines.features.incremental` (which re-exports `BarFeatures` and `Value`); see its module
docstring for time, cost and parity contracts. O(window) per bar close, never per event.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from pipelines.features.spec import DEFAULT_PARAMS, US_PER_S, FeatureParams, window_market_applies

Value = float | None
_US_PER_HOUR = 3600 * US_PER_S


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
        Once per bar close (not per event): the feature groups are steps in a fixed order, each adding
        its names to the result.
        """
        i = self.n
        self.n += 1
        self._push_moves(h, lo, c, v)
        out: dict[str, Value] = {}
        self._momentum(c, out)
        out["adx_14"] = self._adx_step(i)
        tp = self._money_flow(h, lo, c, v, out)
        self._obv_slope(i, out)
        self._regimes(ts_us, out)
        # Hurst over the last hurst_window log closes: O(window x lags), once per bar.
        self.log_closes.append(math.log(c) if c > 0.0 else math.nan)
        out["hurst"] = self._hurst()
        self._window_market(ts_us, o, c, out)
        # Kyle's lambda: cov(return, signed volume) / var(signed volume) over the last kyle_window bars.
        self.kyle_r.append(out["roc_1"])
        self.kyle_sv.append(signed_quote)
        out["kyle_lambda"] = self._kyle()

        self.prev_close, self.prev_high, self.prev_low, self.prev_tp = c, h, lo, tp
        return {k: _finite(v_) for k, v_ in out.items()}

    def _push_moves(self, h: float, lo: float, c: float, v: float) -> None:
        """Feed the bar's moves from the previous close into the Wilder averages and the buffers."""
        pc = self.prev_close
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

    def _momentum(self, c: float, out: dict[str, Value]) -> None:
        """RSI, rates of change, Bollinger width, ATR."""
        p = self.p
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

    def _adx_step(self, i: int) -> Value:
        """ADX after bar ``i`` (TA-Lib): DX from bar n, first ADX the mean of n DX (undefined counted as
        0), then Wilder with an undefined DX leaving the ADX unchanged."""
        n = self.p.adx_period
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
        return self.adx

    def _money_flow(self, h: float, lo: float, c: float, v: float, out: dict[str, Value]) -> float:
        """MFI; returns the bar's typical price (the next bar's previous one)."""
        p = self.p
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
        return tp

    def _obv_slope(self, i: int, out: dict[str, Value]) -> None:
        """OBV slope per mean volume (FeatureParams.obv_slope_weights)."""
        p = self.p
        if i >= p.obv_slope_window - 1:
            num = math.fsum([w * s for w, s in zip(self.obv_weights, self.obv_incr, strict=True)])
            out["obv_slope"] = _div(num, math.fsum(list(self.volumes)[-p.obv_slope_window :]) / p.obv_slope_window)
        else:
            out["obv_slope"] = None

    def _regimes(self, ts_us: int, out: dict[str, Value]) -> None:
        """Volatility, trend, volume and time (session) regimes."""
        p = self.p
        closes, volumes = self.closes, self.volumes
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

    def _window_market(self, ts_us: int, o: float, c: float, out: dict[str, Value]) -> None:
        """price_vs_open and time_decay of the window market containing the bar."""
        p = self.p
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
