"""Labels (SPEC section 6), computed per symbol from candles. They look ahead by design: never features."""

from __future__ import annotations

import polars as pl

from pipelines.research_config import LabelMode


def direction_label(
    candles: pl.DataFrame,
    horizon_bars: int = 1,
    *,
    mode: LabelMode = "exclude_ties",
    round_trip_cost: float = 0.0,
) -> pl.DataFrame:
    """The directional label `direction_<h>` (SPEC 6), null for the last h bars of each symbol.

    - ``exclude_ties``: 1 if close[t+h] > close[t], 0 if lower, null if unchanged (a tie is neither up nor
      down: callers drop it from training and metrics and count it, see `tie_share`).
    - ``cost_aware``: 1 if close[t+h] / close[t] - 1 > `round_trip_cost` (the move pays for a round
      trip), else 0; never null before the end.

    Returns `symbol`, `ts`, the label column (Int8) and `is_tie` (Boolean, null at the end), one row per
    input bar.
    """
    if horizon_bars < 1:
        raise ValueError("horizon_bars must be >= 1")
    if mode not in ("exclude_ties", "cost_aware"):
        raise ValueError(f"unknown label mode {mode!r}")
    if round_trip_cost < 0:
        raise ValueError("round_trip_cost must be >= 0")
    future = pl.col("close").shift(-horizon_bars).over("symbol")
    value: pl.Expr
    if mode == "exclude_ties":
        value = pl.when(future > pl.col("close")).then(1).when(future < pl.col("close")).then(0)
    else:
        value = pl.when(future / pl.col("close") - 1.0 > round_trip_cost).then(1).otherwise(0)
    return candles.sort("symbol", "ts").select(
        "symbol",
        "ts",
        pl.when(future.is_null()).then(None).otherwise(value).cast(pl.Int8).alias(f"direction_{horizon_bars}"),
        pl.when(future.is_null()).then(None).otherwise(future == pl.col("close")).alias("is_tie"),
    )


def window_direction_label(windows: pl.DataFrame) -> pl.DataFrame:
    """Window markets (SPEC 13b, Polymarket 5-minute up/down): the venue's rule, close >= open is Up (1).

    `windows` holds one row per window with `symbol`, `ts` (window start), `open` (reference price at the
    start) and `close` (at the end). A tie resolves Up here: that is how the market settles, unlike
    `direction_label`. Returns `symbol`, `ts`, `window_up` (Int8; null when either price is missing).
    """
    return windows.select(
        "symbol",
        "ts",
        pl.when(pl.col("open").is_null() | pl.col("close").is_null())
        .then(None)
        .otherwise(pl.col("close") >= pl.col("open"))
        .cast(pl.Int8)
        .alias("window_up"),
    )


def tie_share(labels: pl.DataFrame) -> float:
    """Share of bars with a known outcome whose close did not move over the horizon (0.0 when none)."""
    known = labels["is_tie"].drop_nulls()
    return float(known.mean()) if len(known) else 0.0  # type: ignore[arg-type]


def barrier_bars(horizon_minutes: float, timeframe_minutes: float) -> int:
    """How many following bars a "within `horizon_minutes`" barrier looks at on bars of `timeframe_minutes`.

    The reference price is close[t], known at the end of bar t; the barrier window is the next
    `horizon_minutes`. Bars cover it whole or in part: ceil(horizon / bar). For 8 minutes on 5m bars that
    is 2 bars (t+1 fully, t+2 of which only the first 3 minutes are inside the window). Bars give no
    intrabar timing, so a touch inside the partial bar counts; this is the standard candle approximation.
    """
    if horizon_minutes <= 0 or timeframe_minutes <= 0:
        raise ValueError("horizon_minutes and timeframe_minutes must be positive")
    return max(1, -(-round(horizon_minutes * 60) // round(timeframe_minutes * 60)))


def barrier_label(
    candles: pl.DataFrame,
    *,
    target: float = 0.004,
    stop: float = 0.008,
    horizon_minutes: float = 8.0,
    timeframe_minutes: float = 5.0,
) -> pl.DataFrame:
    """`barrier_<n>` = 1 if the price reaches close[t] x (1 + target) within the window before it
    touches close[t] x (1 - stop); else 0 (neither touched, or the stop first). SPEC 6: +0.4% within
    8 minutes before the (majors') hard stop of 0.8%.

    The window is the next `n = barrier_bars(horizon_minutes, timeframe_minutes)` bars, read through
    their high and low, in time order. A bar that touches both barriers is resolved conservatively as
    the stop first: candles do not say which came first, and a label that assumed the favourable order
    would teach the model trades that the backtest (which also takes the stop first) loses.
    Null for the last n bars of each symbol (the window is incomplete). Returns `symbol`, `ts`, label.
    """
    if target <= 0 or not 0 < stop < 1:
        raise ValueError("target must be > 0 and stop in (0, 1)")
    bars = barrier_bars(horizon_minutes, timeframe_minutes)
    name = f"barrier_{bars}"
    up = pl.col("close") * (1.0 + target)
    down = pl.col("close") * (1.0 - stop)
    # Walk the window backwards so the earliest bar's outcome wins: result = first decisive bar.
    outcome: pl.Expr = pl.lit(0, dtype=pl.Int8)
    for k in range(bars, 0, -1):
        high = pl.col("high").shift(-k).over("symbol")
        low = pl.col("low").shift(-k).over("symbol")
        outcome = (
            pl.when(low <= down)
            .then(pl.lit(0, dtype=pl.Int8))
            .when(high >= up)
            .then(pl.lit(1, dtype=pl.Int8))
            .otherwise(outcome)
        )
    complete = pl.col("close").shift(-bars).over("symbol").is_not_null()
    return candles.sort("symbol", "ts").select(
        "symbol", "ts", pl.when(complete).then(outcome).otherwise(None).cast(pl.Int8).alias(name)
    )
