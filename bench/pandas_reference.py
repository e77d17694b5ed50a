"""The candle features written the straightforward pandas way: the baseline `bench.features` times.

Same definitions and parameters as `pipelines.features.batch` (TA-Lib seeding, nulls for undefined
ratios), computed per symbol with ``groupby(...).apply`` and pandas' own rolling / ewm. Written as a
competent pandas user would, with built-ins and no per-row Python loop: OBV's regression slope is a
rolling covariance with the bar index. It is a benchmark baseline, not production code; the benchmark
also checks that it agrees with the polars implementation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl

from pipelines.features.spec import (
    CANDLE_FEATURES,
    DEFAULT_PARAMS,
    US_PER_S,
    FeatureParams,
    timeframe_us,
    window_market_applies,
)


def _wilder(x: pd.Series, period: int, seed_at: int, seed_len: int) -> pd.Series:
    idx = np.arange(len(x))
    seed = x.rolling(seed_len).sum() / period
    seeded = pd.Series(np.where(idx == seed_at, seed, np.where(idx > seed_at, x, np.nan)), index=x.index)
    out = seeded.ewm(alpha=1.0 / period, adjust=False, ignore_na=True).mean()
    return out.where(seeded.notna() | (idx > seed_at))


def _div(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a / b.where(b != 0.0)).replace([np.inf, -np.inf], np.nan)


def _one_symbol(d: pd.DataFrame, bar_us: int, p: FeatureParams) -> pd.DataFrame:
    o, h, lo, c, v = d["open"], d["high"], d["low"], d["close"], d["volume"]
    idx = pd.Series(np.arange(len(d)), index=d.index)
    pc = c.shift(1)
    tr = pd.concat([h - lo, (h - pc).abs(), (lo - pc).abs()], axis=1).max(axis=1).where(pc.notna())
    change = c - pc
    gain = change.clip(lower=0.0).where(pc.notna())
    loss = (-change).clip(lower=0.0).where(pc.notna())
    out = pd.DataFrame(index=d.index)
    ag = _wilder(gain, p.rsi_period, p.rsi_period, p.rsi_period)
    al = _wilder(loss, p.rsi_period, p.rsi_period, p.rsi_period)
    out["rsi_14"] = _div(100.0 * ag, ag + al)
    out["roc_1"] = _div(c, c.shift(p.roc_short)) - 1.0
    out["roc_5"] = _div(c, c.shift(p.roc_long)) - 1.0
    out["bb_width"] = _div(2.0 * p.bb_sigmas * c.rolling(p.bb_period).std(ddof=0), c.rolling(p.bb_period).mean())
    out["atr_pct"] = _div(_wilder(tr, p.atr_period, p.atr_period, p.atr_period), c)

    n = p.adx_period
    up, down = h - h.shift(1), lo.shift(1) - lo
    pdm = up.where((up > 0.0) & (up > down), 0.0).where(pc.notna())
    mdm = down.where((down > 0.0) & (down > up), 0.0).where(pc.notna())
    s_p, s_m, s_t = _wilder(pdm, n, n - 1, n - 1), _wilder(mdm, n, n - 1, n - 1), _wilder(tr, n, n - 1, n - 1)
    pdi, mdi = 100.0 * (s_p / s_t), 100.0 * (s_m / s_t)
    dsum = mdi + pdi
    dx = (100.0 * ((mdi - pdi).abs() / dsum)).where((idx >= n) & (s_t != 0.0) & (dsum != 0.0))
    seed = dx.fillna(0.0).rolling(n).sum() / n
    adx_in = pd.Series(np.where(idx == 2 * n - 1, seed, np.where(idx > 2 * n - 1, dx, np.nan)), index=d.index)
    out["adx_14"] = adx_in.ewm(alpha=1.0 / n, adjust=False, ignore_na=True).mean().where(idx >= 2 * n - 1).ffill()

    tp = (h + lo + c) / 3.0
    tp_prev = tp.shift(1)
    mf = tp * v
    tie = p.mfi_tie_rel * tp_prev
    pos = mf.where(tp - tp_prev > tie, 0.0).where(tp_prev.notna())
    neg = mf.where(tp_prev - tp > tie, 0.0).where(tp_prev.notna())
    ps, ns = pos.rolling(p.mfi_period).sum(), neg.rolling(p.mfi_period).sum()
    out["mfi_14"] = _div(100.0 * ps, ps + ns)

    # OBV's least-squares slope over N bars: cov(OBV, bar index) / var(bar index).
    obv = (np.sign(change).fillna(0.0) * v).cumsum()
    w = p.obv_slope_window
    slope = obv.rolling(w).cov(idx.astype(float)) / idx.astype(float).rolling(w).var()
    out["obv_slope"] = _div(slope, v.rolling(w).mean())

    out["vol_regime"] = _div(
        _wilder(tr, p.regime_fast, p.regime_fast, p.regime_fast),
        _wilder(tr, p.regime_slow, p.regime_slow, p.regime_slow),
    )
    sf, ss = c.rolling(p.regime_fast).mean(), c.rolling(p.regime_slow).mean()
    gap, band = sf - ss, p.trend_dead_band * ss.abs()
    out["trend_regime"] = np.where(gap > band, 1.0, np.where(gap < -band, -1.0, 0.0))
    out["trend_regime"] = out["trend_regime"].where(ss.notna())
    out["volume_regime"] = _div(v.rolling(p.regime_fast).mean(), v.rolling(p.regime_slow).mean())
    hours = d["ts"].dt.hour
    out["time_regime"] = hours.map({hour: p.session_code(hour) for hour in range(24)}).astype(float)

    logc = np.log(c)
    hurst = pd.Series(0.0, index=d.index)
    ok = pd.Series(True, index=d.index)
    for lag, weight in zip(p.hurst_lags, p.hurst_weights(), strict=True):
        std = (logc - logc.shift(lag)).rolling(p.hurst_window - lag).std(ddof=1)
        ok &= std > 0.0
        hurst = hurst + weight * np.log(std.where(std > 0.0))
    out["hurst"] = hurst.where(ok)

    if window_market_applies(bar_us, p):
        w_us = p.window_market_s * US_PER_S
        ts_us = d["ts"].astype("int64") // 1000 if d["ts"].dt.unit == "ns" else d["ts"].astype("int64")
        win = ts_us - ts_us % w_us
        first_open = (
            o.where(ts_us == win).groupby(win).transform("first").where((ts_us == win).groupby(win).transform("any"))
        )
        out["price_vs_open"] = _div(c, first_open) - 1.0
        out["time_decay"] = (win + w_us - (ts_us + bar_us)) / w_us
    else:
        out["price_vs_open"] = np.nan
        out["time_decay"] = np.nan
    return out


def pandas_candle_features(
    candles: pd.DataFrame, timeframe: str = "5m", params: FeatureParams = DEFAULT_PARAMS
) -> pd.DataFrame:
    """``candles`` (pandas: symbol, ts, open, high, low, close, volume) -> symbol, ts and the candle
    features (`spec.CANDLE_FEATURES`), NaN where polars has null."""
    bar_us = timeframe_us(timeframe)
    d = candles.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
    feats = d.groupby("symbol", group_keys=False, sort=False)[list(d.columns)].apply(
        lambda g: _one_symbol(g, bar_us, params)
    )
    return pd.concat([d[["symbol", "ts"]], feats[list(CANDLE_FEATURES)]], axis=1)


def max_abs_diff(polars_out: pl.DataFrame, pandas_out: pd.DataFrame) -> dict[str, float]:
    """Largest |polars - pandas| per feature over rows where both have a value, and (key
    ``<name>:null_mismatch``) the rows where exactly one is null. pandas' rolling sums add and subtract
    (a few 1e-8 of drift on these data), so agreement is judged in absolute terms."""
    out: dict[str, float] = {}
    for name in CANDLE_FEATURES:
        a = polars_out[name].to_numpy().astype(float)
        b = pandas_out[name].to_numpy().astype(float)
        both = ~np.isnan(a) & ~np.isnan(b)
        out[name] = float(np.max(np.abs(a[both] - b[both]))) if both.any() else 0.0
        out[f"{name}:null_mismatch"] = float(np.sum(np.isnan(a) != np.isnan(b)))
    return out
