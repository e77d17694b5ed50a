"""The candle-feature plan of `pipelines.features.batch`: polars expressions in stages, one builder per
feature group, and the exact window-sum kernels they use.

`_candle_plan(bar_us, params)` returns the ``with_columns`` stages (moves from the previous bar, per-bar
terms, Wilder averages and chunk sums, window means), the final select of `spec.CANDLE_FEATURES` and
its clean; `_candle_stages` applies it to ONE symbol's bars. The conventions (TA-Lib seeding, exact
zeros on constant windows, nulls for undefined ratios) are documented in `pipelines.features.batch`,
which re-exports `_candle_plan` and `_candle_stages`.
"""

from __future__ import annotations

import polars as pl

from pipelines.features.spec import CANDLE_FEATURES, US_PER_S, FeatureParams, window_market_applies


def _clean(expr: pl.Expr) -> pl.Expr:
    """inf and NaN become null: they must never reach a model.

    It also makes the candle ratios null where their denominator is 0 (an undefined ratio is missing,
    not 0 or inf): x / 0 is inf or NaN, so no separate zero test is needed.
    """
    # |x| < inf is false for inf and NaN (and null for null): the same test as `is_finite`, cheaper.
    return pl.when(expr.abs() < float("inf")).then(expr)


def _bar_index() -> pl.Expr:
    """The bar index within the symbol (0 = its first bar), column ``_i``."""
    return pl.col("_i")


def _seeded(x: pl.Expr, period: int, seed_at: int, seed_len: int) -> pl.Expr:
    """Input of a Wilder average: null before bar ``seed_at``, the seed at it, ``x`` after it.

    The seed is ``sum(x over the seed_len bars ending at seed_at) / period``: with ``seed_len == period``
    that is TA-Lib's simple-mean seed (RSI, ATR); ADX's DM/TR sums use ``seed_len = period - 1``. One
    sum per symbol (a slice). The column is assembled from its three pieces (nulls, seed, tail) instead
    of a per-row ``when`` on the bar index, a full pass with two comparisons per row for every average;
    the final slice cuts it to the symbol's length when that is ``seed_at`` bars or fewer (all null).
    """
    seed = x.slice(seed_at - seed_len + 1, seed_len).sum() / period
    nulls = pl.repeat(None, seed_at, dtype=pl.Float64)
    return nulls.append(seed).append(x.slice(seed_at + 1)).slice(0, pl.len())


def _ewm(seeded: pl.Expr, period: int) -> pl.Expr:
    """Wilder smoothing y_t = y_{t-1} + (x_t - y_{t-1}) / period of a `_seeded` column."""
    return seeded.ewm_mean(alpha=1.0 / period, adjust=False, ignore_nulls=True)


def _lag(x: pl.Expr, k: int) -> pl.Expr:
    """``x`` k bars back (null for the first k bars)."""
    return x.shift(k)


def _from(first: int, x: pl.Expr) -> pl.Expr:
    """``x`` from bar ``first`` on, null before (for windows whose first bar has no valid input)."""
    return pl.when(_bar_index() >= first).then(x)


def _sum_nonneg(x: pl.Expr, window: int) -> pl.Expr:
    """Rolling sum of a non-negative series that is exactly 0 when every value is 0.

    polars keeps rolling sums by adding and subtracting, so a window of zeros after non-zero values can
    read +-1e-14 (a negative money flow, a volume ratio of noise). An exact count of the non-zero values
    in the window tells those windows (cheaper than a rolling max).
    """
    nonzero = (x != 0.0).cast(pl.Int32).rolling_sum(window)
    return pl.when(nonzero == 0).then(0.0).otherwise(x.rolling_sum(window))


# Longest window summed as a dot product with unit weights (see `_candle_plan`): up to about this
# length polars' weighted kernel beats its add-and-subtract rolling sum (~2x at 14-20 bars, ~2x slower
# at 60).
_MAX_DOT_WINDOW = 24


def _chunk_len(window: int) -> int | None:
    """The chunk length `_window_sum` splits ``window`` into (``window`` itself when short), or None."""
    if window <= _MAX_DOT_WINDOW:
        return window
    for k in range(_MAX_DOT_WINDOW, 7, -1):
        if window % k == 0 and window // k <= 4:
            return k
    return None


def _weighted_sum(x: pl.Expr, weights: list[float], null_free: bool) -> pl.Expr:
    """Weighted sum over the last ``len(weights)`` bars; null where the window holds a null.

    polars' weighted kernel panics on nulls, so with unvalidated input (a null volume) the nulls are
    summed as 0 and the windows that held one are masked afterwards (a missing input gives null, not 0).
    """
    if null_free:
        return x.rolling_sum(len(weights), weights=weights)
    holes = x.is_null().cast(pl.Int32).rolling_sum(len(weights), min_samples=1)
    return pl.when(holes == 0).then(x.fill_null(0.0).rolling_sum(len(weights), weights=weights))


def _window_sum(chunk: pl.Expr, window: int, k: int) -> pl.Expr:
    """Rolling sum of ``window`` values from the rolling sums ``chunk`` of ``k`` values (k divides it).

    A long window is a few shifted chunk sums added up: the chunk column is shared by every window of
    the input that it divides, and adding three columns is far cheaper than another rolling kernel.
    Null until the window is full; exactly 0 where every chunk is (both chunk kernels are).
    """
    total = chunk
    for j in range(1, window // k):
        total = total + chunk.shift(j * k)
    return total


def _std(x: pl.Expr, window: int, ddof: int) -> pl.Expr:
    """Rolling standard deviation that is exactly 0 on a constant window (see `_sum_nonneg`).

    A window is constant when its first and last values lie in the same run of equal values (`rle_id`;
    a null value starts a run of its own, and a window ending on a value runs back over no null): one
    pass and a shift, cheaper than counting the changes in each window with a rolling sum.
    """
    run = x.rle_id()
    constant = (run == run.shift(window - 1)) & x.is_not_null()
    return pl.when(constant).then(0.0).otherwise(x.rolling_std(window, ddof=ddof))


_Plan = list[list[pl.Expr]]


def _candle_stages(frame: pl.LazyFrame, plan: _Plan) -> pl.LazyFrame:
    """The candle features of ONE symbol's bars (candle columns, sorted by ts): `_candle_plan` applied."""
    *stages, final, clean = plan
    for stage in stages:
        frame = frame.with_columns(stage)
    return frame.select(final).with_columns(clean)


def _candle_plan(bar_us: int, p: FeatureParams, dot_sums: bool = True) -> _Plan:
    """The expressions of `_candle_stages`: ``with_columns`` stages, then the final select and its clean.

    Built in stages of named intermediate columns: each is computed once (a single nested expression
    would repeat shared sub-expressions such as the true range many times over). Built once per call
    and applied to every symbol's frame: the expressions do not depend on the data, and building them
    in Python for each of 50-odd symbols took longer than some of the stages take to run.

    ``dot_sums=False`` sums every window with running sums: polars' weighted kernel rejects nulls, which
    only unvalidated candles (null prices or volumes) bring.
    """
    features = _candle_features_exprs(bar_us, p)
    return [
        _moves_stage(),
        _terms_stage(p),
        _smoothing_stage(p, dot_sums),
        _window_stage(p),
        # Materialize, then clean the named columns: `_clean` mentions its input twice, and a column
        # reference is cheaper to repeat than the expression behind it. The regime codes and time decay
        # are built from constants and integers, never inf or NaN, so they skip it.
        [features[name].cast(pl.Float64).alias(name) for name in CANDLE_FEATURES],
        [_clean(pl.col(name)).alias(name) for name in CANDLE_FEATURES if name not in _FINITE],
    ]


# Candle features that are finite by construction (see the end of `_candle_plan`).
_FINITE = frozenset({"trend_regime", "time_regime", "time_decay"})

_OHLCV = tuple(pl.col(n) for n in ("open", "high", "low", "close", "volume"))


def _moves_stage() -> list[pl.Expr]:
    """Stage 1: bar index, epoch µs and the moves from the previous bar as columns.

    The plans run without common-subexpression elimination (see `candle_features`), so a repeated
    sub-expression would be computed again.
    """
    _, h, lo, c, _ = _OHLCV
    ts_us = pl.col("ts").dt.epoch("us")
    return [
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"),
        ts_us.alias("_ts"),
        _lag(c, 1).alias("_pc"),
        (c - _lag(c, 1)).alias("_chg"),
        (h - _lag(h, 1)).alias("_up"),
        (_lag(lo, 1) - lo).alias("_down"),
        ((h + lo + c) / 3.0).alias("_tp"),
        c.log().alias("_logc"),
    ]


def _terms_stage(p: FeatureParams) -> list[pl.Expr]:
    """Stage 2: per-bar terms (true range, gains/losses, directional moves, money flows, OBV, Hurst
    differences) from stage 1's columns."""
    col = pl.col
    _, h, lo, _, v = _OHLCV
    pc = col("_pc")
    has_prev = pc.is_not_null()
    change = col("_chg")
    up, down = col("_up"), col("_down")
    tp, tp_prev = col("_tp"), _lag(col("_tp"), 1)
    mf = col("_tp") * v
    tie = p.mfi_tie_rel * tp_prev
    logc = col("_logc")
    return [
        # True range from the second bar on (TA-Lib's TRANGE is undefined on the first bar).
        pl.when(has_prev).then(pl.max_horizontal(h - lo, (h - pc).abs(), (lo - pc).abs())).alias("_tr"),
        pl.when(has_prev).then(pl.when(change > 0.0).then(change).otherwise(0.0)).alias("_gain"),
        pl.when(has_prev).then(pl.when(change < 0.0).then(-change).otherwise(0.0)).alias("_loss"),
        # TA-Lib's DM rule: the larger positive move wins, ties count for neither.
        pl.when(has_prev).then(pl.when((up > 0.0) & (up > down)).then(up).otherwise(0.0)).alias("_pdm"),
        pl.when(has_prev).then(pl.when((down > 0.0) & (down > up)).then(down).otherwise(0.0)).alias("_mdm"),
        # Money flow: typical price x volume, positive when the typical price rose (beyond a tie).
        pl.when(tp_prev.is_not_null()).then(pl.when(tp - tp_prev > tie).then(mf).otherwise(0.0)).alias("_pmf"),
        pl.when(tp_prev.is_not_null()).then(pl.when(tp_prev - tp > tie).then(mf).otherwise(0.0)).alias("_nmf"),
        # OBV increments (0 on the first bar: it is masked out of every window below).
        pl.when(change > 0.0).then(v).when(change < 0.0).then(-v).otherwise(0.0).alias("_sv"),
        # Lag-L differences of ln close for the Hurst stds, named once: each is read three times.
        *((logc - _lag(logc, lag)).alias(f"_hd{lag}") for lag in p.hurst_lags),
    ]


def _smoothing_stage(p: FeatureParams, dot_sums: bool) -> list[pl.Expr]:
    """Stage 3: Wilder averages, window chunk sums, standard deviations, OBV slope numerator, lags."""
    col = pl.col
    c = _OHLCV[3]
    tr = col("_tr")
    n = p.adx_period
    weights = list(p.obv_slope_weights())
    wilders = {
        "_avg_gain": (col("_gain"), p.rsi_period, p.rsi_period, p.rsi_period),
        "_avg_loss": (col("_loss"), p.rsi_period, p.rsi_period, p.rsi_period),
        "_atr": (tr, p.atr_period, p.atr_period, p.atr_period),
        "_atr_fast": (tr, p.regime_fast, p.regime_fast, p.regime_fast),
        "_atr_slow": (tr, p.regime_slow, p.regime_slow, p.regime_slow),
        "_s_pdm": (col("_pdm"), n, n - 1, n - 1),
        "_s_mdm": (col("_mdm"), n, n - 1, n - 1),
        "_s_tr": (tr, n, n - 1, n - 1),
    }
    # Windows are null until full and every input but the money flows and OBV increments is null-free
    # from bar 0 (or null exactly where its window must not reach), so only those need `_from`.
    stage = [
        *(
            _ewm(_seeded(x, period, at, length), period).alias(name)
            for name, (x, period, at, length) in wilders.items()
        ),
        *(expr.alias(name) for name, expr in _chunk_sums(p, dot_sums).items()),
        _std(c, p.bb_period, 0).alias("_std_bb"),
        # Slope of OBV over N bars as fixed weights on its last N-1 increments (spec.obv_slope_weights);
        # windows touching bar 0 (no increment) are masked.
        _from(p.obv_slope_window - 1, _weighted_sum(col("_sv"), weights, dot_sums)).alias("_obv_num"),
        _lag(c, p.roc_short).alias("_c_short"),
        _lag(c, p.roc_long).alias("_c_long"),
    ]
    for lag in p.hurst_lags:
        stage.append(_std(col(f"_hd{lag}"), p.hurst_window - lag, 1).alias(f"_hstd{lag}"))
    return stage


def _chunk_sums(p: FeatureParams, dot_sums: bool) -> dict[str, pl.Expr]:
    """The chunk-sum columns `_wsum` reads, by name.

    Window sums (SMAs, money flows, volumes) come from chunk sums (`_window_sum`), one column per input
    and chunk length, so equal windows share one (Bollinger's and the fast regime's 20 closes, OBV's and
    the fast regime's 20 volumes). Closes and money flows sum each chunk afresh, a dot product with
    unit weights: cheaper than the running sum for short chunks, and exactly 0 on a window of zeros
    without `_sum_nonneg`'s count. The kernel takes no null: the money flows' only one (bar 0, no
    previous price) becomes 0, and `_from` masks the windows over it. Volumes keep `_sum_nonneg`'s
    running sum: obv_slope divides by it, and its values stay bit for bit as they were.
    """
    col = pl.col
    sum_inputs = {
        "close": (p.bb_period, p.regime_fast, p.regime_slow),
        "_pmf": (p.mfi_period,),
        "_nmf": (p.mfi_period,),
        "volume": (p.obv_slope_window, p.regime_fast, p.regime_slow),
    }
    chunks: dict[str, pl.Expr] = {}
    for name, lengths in sum_inputs.items():
        for w in lengths:
            k = _chunk_len(w)
            if name == "volume" or k is None or not dot_sums:
                k = w if k is None else k
                chunks[f"_chunk_{name}_{k}"] = _sum_nonneg(col(name), k)
            else:
                chunks[f"_chunk_{name}_{k}"] = col(name).fill_null(0.0).rolling_sum(k, weights=[1.0] * k)
    return chunks


def _wsum(name: str, w: int) -> pl.Expr:
    """Sum of input ``name`` over the last ``w`` bars, from its chunk-sum column (`_chunk_sums`)."""
    k = _chunk_len(w) or w
    return _window_sum(pl.col(f"_chunk_{name}_{k}"), w, k)


def _window_stage(p: FeatureParams) -> list[pl.Expr]:
    """Stage 4: DX, and the window sums and means (Bollinger SMA, money flows, OBV and regime means)."""
    col = pl.col
    n = p.adx_period
    idx = _bar_index()
    # ADX: DX from bar n; the first ADX averages n DX values counting undefined ones as 0 (TA-Lib), later
    # an undefined DX leaves the ADX unchanged (ewm skips the null, forward_fill repeats the last value).
    plus_di, minus_di = 100.0 * (col("_s_pdm") / col("_s_tr")), 100.0 * (col("_s_mdm") / col("_s_tr"))
    di_sum = minus_di + plus_di
    return [
        pl.when((idx >= n) & (col("_s_tr") != 0.0) & (di_sum != 0.0))
        .then(100.0 * ((minus_di - plus_di).abs() / di_sum))
        .alias("_dx"),
        (_wsum("close", p.bb_period) / p.bb_period).alias("_sma_bb"),
        # Inputs from bar 1 (they need the previous bar), so a window of w ends inside the symbol from bar w.
        _from(p.mfi_period, _wsum("_pmf", p.mfi_period)).alias("_pmf_sum"),
        _from(p.mfi_period, _wsum("_nmf", p.mfi_period)).alias("_nmf_sum"),
        (_wsum("volume", p.obv_slope_window) / p.obv_slope_window).alias("_obv_vol"),
        (_wsum("close", p.regime_fast) / p.regime_fast).alias("_sma_fast"),
        (_wsum("close", p.regime_slow) / p.regime_slow).alias("_sma_slow"),
        (_wsum("volume", p.regime_fast) / p.regime_fast).alias("_vol_fast"),
        (_wsum("volume", p.regime_slow) / p.regime_slow).alias("_vol_slow"),
    ]


def _adx(p: FeatureParams) -> pl.Expr:
    """ADX from `_dx`: the first at bar 2n - 1 (`_seeded`'s layout, seeded with the mean of DX over bars
    n..2n-1), then Wilder smoothing with undefined DX values carried over."""
    n = p.adx_period
    dx = pl.col("_dx")
    adx_seeded = (
        pl.repeat(None, 2 * n - 1, dtype=pl.Float64)
        .append(dx.fill_null(0.0).slice(n, n).sum() / n)
        .append(dx.slice(2 * n))
        .slice(0, pl.len())
    )
    return _ewm(adx_seeded, n).forward_fill()


def _trend(p: FeatureParams) -> pl.Expr:
    """Trend regime: sign of SMA fast - SMA slow, with a dead band against floating-point noise."""
    sma_fast, sma_slow = pl.col("_sma_fast"), pl.col("_sma_slow")
    gap, band = sma_fast - sma_slow, p.trend_dead_band * sma_slow.abs()
    return (
        pl.when(sma_slow.is_null() | sma_fast.is_null())
        .then(None)
        .when(gap > band)
        .then(1.0)
        .when(gap < -band)
        .then(-1.0)
        .otherwise(0.0)
    )


def _session(p: FeatureParams) -> pl.Expr:
    """Session code by UTC hour, looked up in a 24-entry table (epoch arithmetic, no time-zone machinery)."""
    hour = (pl.col("_ts") // (3600 * US_PER_S)) % 24
    return pl.lit(pl.Series([p.session_code(h) for h in range(24)], dtype=pl.Float64)).gather(hour)


def _hurst(p: FeatureParams) -> pl.Expr:
    """Hurst: H = sum_L w_L ln(std of lag-L differences of ln close). A std of 0 (flat prices) makes a
    term infinite and the sum inf or NaN, which `_clean` turns into null: undefined."""
    hurst_terms = [w * pl.col(f"_hstd{lag}").log() for lag, w in zip(p.hurst_lags, p.hurst_weights(), strict=True)]
    hurst = hurst_terms[0]
    for term in hurst_terms[1:]:
        hurst = hurst + term
    return hurst


def _window_market(bar_us: int, p: FeatureParams) -> tuple[pl.Expr, pl.Expr]:
    """``(price_vs_open, time_decay)``. The 5-minute window containing the bar [ts, ts + bar); its open
    is the open of its first bar, unknown when that bar is not in the data."""
    o, _, _, c, _ = _OHLCV
    ts = pl.col("_ts")
    price_vs_open: pl.Expr
    time_decay: pl.Expr
    if window_market_applies(bar_us, p) and bar_us == p.window_market_s * US_PER_S:
        # One bar per window (the nightly 5m bars): the window is the bar, closed at the bar's close.
        aligned = ts % bar_us == 0
        price_vs_open = pl.when(aligned).then(c / o - 1.0)
        time_decay = pl.when(aligned).then(pl.lit(0.0))
    elif window_market_applies(bar_us, p):
        w_us = p.window_market_s * US_PER_S
        win = ts - ts % w_us
        aligned = ts % bar_us == 0
        opens_window = aligned & (ts == win)
        # The last window-opening bar at or before this one in the symbol: its window and its open.
        opener_win = pl.when(opens_window).then(win).forward_fill()
        opener_open = pl.when(opens_window).then(o).forward_fill()
        window_open: pl.Expr = pl.when(opener_win == win).then(opener_open)
        price_vs_open = pl.when(aligned).then(c / window_open - 1.0)
        time_decay = pl.when(aligned).then((win + w_us - (ts + bar_us)).cast(pl.Float64) / float(w_us))
    else:
        price_vs_open = time_decay = pl.lit(None, dtype=pl.Float64)
    return price_vs_open, time_decay


def _candle_features_exprs(bar_us: int, p: FeatureParams) -> dict[str, pl.Expr]:
    """Every candle feature by name, from the stage columns (before the final cast and `_clean`)."""
    col = pl.col
    c = _OHLCV[3]
    avg_gain, avg_loss = col("_avg_gain"), col("_avg_loss")
    price_vs_open, time_decay = _window_market(bar_us, p)
    # Ratios divide plainly: a zero denominator gives inf or NaN, which the `_clean` below turns into
    # null, as a `when(den != 0)` guard would (one pass per column instead of two).
    return {
        # RSI (Wilder): 100 * avg_gain / (avg_gain + avg_loss); flat prices (both 0) are undefined.
        "rsi_14": 100.0 * avg_gain / (avg_gain + avg_loss),
        "roc_1": c / col("_c_short") - 1.0,
        "roc_5": c / col("_c_long") - 1.0,
        # (upper - lower) / middle = 2 k sigma / SMA, population sigma (TA-Lib BBANDS).
        "bb_width": 2.0 * p.bb_sigmas * col("_std_bb") / col("_sma_bb"),
        "atr_pct": col("_atr") / c,
        "adx_14": _adx(p),
        "mfi_14": 100.0 * col("_pmf_sum") / (col("_pmf_sum") + col("_nmf_sum")),
        # Per mean bar volume, so it compares across coins.
        "obv_slope": col("_obv_num") / col("_obv_vol"),
        "vol_regime": col("_atr_fast") / col("_atr_slow"),
        "trend_regime": _trend(p),
        "volume_regime": col("_vol_fast") / col("_vol_slow"),
        "time_regime": _session(p),
        "hurst": _hurst(p),
        "price_vs_open": price_vs_open,
        "time_decay": time_decay,
    }
