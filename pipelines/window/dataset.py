"""Labels and scoring rows of the 5-minute window model (SPEC 5 window extras, SPEC 6 window label).

Label: a window [W, W + window_s) resolves Up when its close (the close of its last bar) >= its open
(the open of its first bar): the venue's rule, ties Up. A window whose bars are not all present (any
missing bar, a null price) is dropped, never guessed.

Scoring rows: the model is scored at every bar boundary t inside the window, W <= t < W + window_s
(1-minute bars: t = W, W+1m, ..., W+4m; 5-minute bars: only t = W, the window's open). The features of
a row are the directional model's batch features of the last closed bar (`event_ts == t`, so they use
data strictly before t: `pipelines.features.build_features`, not re-implemented here) plus the window
extras at t: time_decay = seconds left / window_s and price_vs_open = close at t / window open - 1
(0 at t = W, when nothing of the window has traded yet; the batch feature of the bar closing at W
belongs to the previous window and is replaced).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from pipelines.features import build_features
from pipelines.features.spec import CANDLE_FEATURES, DEFAULT_PARAMS, US_PER_S, FeatureParams, timeframe_us

WINDOW_EXTRAS = ("price_vs_open", "time_decay")
LABEL = "up"
# The directional model's candle features at the moment of scoring (the extras are computed here).
DIRECTIONAL_FEATURES: tuple[str, ...] = tuple(c for c in CANDLE_FEATURES if c not in WINDOW_EXTRAS)
WINDOW_FEATURES: tuple[str, ...] = (*WINDOW_EXTRAS, *DIRECTIONAL_FEATURES)


def _window_expr(ts: pl.Expr, window_us: int) -> pl.Expr:
    epoch = ts.dt.epoch("us")
    return pl.from_epoch(epoch - epoch % window_us, time_unit="us").dt.replace_time_zone("UTC")


def check_tiles(timeframe: str, window_s: int = DEFAULT_PARAMS.window_market_s) -> None:
    """Raise ValueError when `timeframe` bars do not tile a `window_s` window (e.g. 1h bars, 5-minute
    windows): the window model has no scoring rows on such bars."""
    bar_us, window_us = timeframe_us(timeframe), window_s * US_PER_S
    if bar_us > window_us or window_us % bar_us:
        raise ValueError(f"{timeframe} bars do not tile a {window_s}s window")


def scoring_extras(t: pl.Expr, bar_price_vs_open: pl.Expr, window_us: int) -> dict[str, pl.Expr]:
    """The window columns of a scoring row at bar boundary `t` (a UTC datetime column): window_start,
    price_vs_open and time_decay.

    `bar_price_vs_open` is the feature `price_vs_open` of the bar that closed at `t` (close / window open
    - 1); at t = W nothing of the window has traded and that bar belongs to the previous window, so it is
    0. The one definition of these rules: `window_dataset` (training) and `scoring_row` (serving) use it.
    """
    start = _window_expr(t, window_us)
    return {
        "window_start": start,
        "price_vs_open": pl.when(t == start).then(pl.lit(0.0)).otherwise(bar_price_vs_open),
        "time_decay": (start.dt.epoch("us") + window_us - t.dt.epoch("us")) / window_us,
    }


def scoring_row(
    t_us: int, bar_features: Mapping[str, float | None], window_s: int = DEFAULT_PARAMS.window_market_s
) -> dict[str, float | None]:
    """The WINDOW_FEATURES of the scoring row at bar boundary `t_us` (µs UTC), from the features of the
    bar that closed at `t_us` (`FeatureRow.values` of the stream's FeatureEngine, the batch features'
    incremental twin): what `window_dataset` builds for the same bar and time, by the same expressions.
    `price_vs_open` is None when the window's opening bar is unknown (no training row has that).
    """
    frame = pl.DataFrame(
        {"event_ts": [t_us], "_pvo": [bar_features.get("price_vs_open")]},
        schema={"event_ts": pl.Int64, "_pvo": pl.Float64},
    ).with_columns(pl.from_epoch("event_ts", time_unit="us").dt.replace_time_zone("UTC"))
    extras = frame.select(**scoring_extras(pl.col("event_ts"), pl.col("_pvo"), window_s * US_PER_S)).row(0, named=True)
    row: dict[str, float | None] = {name: bar_features.get(name) for name in DIRECTIONAL_FEATURES}
    row["price_vs_open"], row["time_decay"] = extras["price_vs_open"], extras["time_decay"]
    return {name: row[name] for name in WINDOW_FEATURES}


def window_labels(
    candles: pl.DataFrame, timeframe: str, window_s: int = DEFAULT_PARAMS.window_market_s
) -> pl.DataFrame:
    """One row per complete window: symbol, window_start, window_open, window_close, up (1/0), bars.

    Raises ValueError when the bars do not tile the window (e.g. 1h bars for 5-minute windows).
    """
    check_tiles(timeframe, window_s)
    bar_us, window_us = timeframe_us(timeframe), window_s * US_PER_S
    per_window = window_us // bar_us
    last_offset = window_us - bar_us
    ts = pl.col("ts")
    grouped = (
        candles.select("symbol", "ts", "open", "close")
        .with_columns(_window_expr(ts, window_us).alias("window_start"))
        .sort("symbol", "ts")
        .group_by("symbol", "window_start", maintain_order=True)
        .agg(
            pl.col("open").first().alias("window_open"),
            pl.col("close").last().alias("window_close"),
            pl.len().alias("bars"),
            ts.first().alias("_first"),
            ts.last().alias("_last"),
            (pl.col("open").null_count() + pl.col("close").null_count()).alias("_nulls"),
            ts.n_unique().alias("_unique"),
        )
    )
    complete = (
        (pl.col("bars") == per_window)
        & (pl.col("_unique") == per_window)
        & (pl.col("_first") == pl.col("window_start"))
        & (pl.col("_last") == pl.col("window_start") + pl.duration(microseconds=last_offset))
        & (pl.col("_nulls") == 0)
    )
    return (
        grouped.filter(complete)
        .with_columns((pl.col("window_close") >= pl.col("window_open")).cast(pl.Int8).alias(LABEL))
        .select("symbol", "window_start", "window_open", "window_close", LABEL, "bars")
    )


def window_dataset(
    candles: pl.DataFrame,
    timeframe: str,
    *,
    features: pl.DataFrame | None = None,
    params: FeatureParams = DEFAULT_PARAMS,
    market_prices: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Scoring rows of complete windows: symbol, ts (scoring time t), window_start, WINDOW_FEATURES, up.

    `features`: the batch features of `candles` (built here when None). `market_prices` (optional:
    symbol, ts, price_up = the recorded price of the Up token) adds `market_price`, the last recorded
    price at or before t within the same window (null when there is none).
    """
    window_us = params.window_market_s * US_PER_S
    built = features if features is not None else build_features(candles, timeframe, params=params)
    labels = window_labels(candles, timeframe, params.window_market_s)
    rows = (
        built.select("symbol", "event_ts", *DIRECTIONAL_FEATURES, pl.col("price_vs_open").alias("_pvo"))
        .with_columns(**scoring_extras(pl.col("event_ts"), pl.col("_pvo"), window_us))
        .join(labels.select("symbol", "window_start", LABEL), on=["symbol", "window_start"], how="inner")
        .filter(pl.col("price_vs_open").is_not_null())
        .rename({"event_ts": "ts"})
        .select("symbol", "ts", "window_start", *WINDOW_FEATURES, LABEL)
        .sort("ts", "symbol")
    )
    if market_prices is None:
        return rows
    prices = market_prices.select("symbol", "ts", pl.col("price_up").alias("market_price")).sort("ts")
    joined = rows.join_asof(
        prices.with_columns(pl.col("ts").alias("_price_ts")),
        on="ts",
        by="symbol",
        strategy="backward",
        check_sortedness=False,
    )
    in_window = pl.col("_price_ts") >= pl.col("window_start")
    return joined.with_columns(pl.when(in_window).then(pl.col("market_price")).alias("market_price")).drop("_price_ts")
