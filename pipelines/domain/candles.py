"""Candles as polars frames: the one schema every source, lake table and feature builder agrees on.

Columns: `symbol` (ccxt form, "BTC/USDT"), `ts` (bar open time, UTC, microseconds), `open`, `high`,
`low`, `close` (quote currency per base unit), `volume` (base units traded in the bar).
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

TS_DTYPE = pl.Datetime("us", "UTC")
CANDLE_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "ts": TS_DTYPE,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
}
CANDLE_COLUMNS = tuple(CANDLE_SCHEMA)

TIMEFRAME_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14_400, "1d": 86_400}


def timeframe_delta(timeframe: str) -> timedelta:
    """Bar length of a ccxt timeframe string ("5m", "1h", "1d")."""
    try:
        return timedelta(seconds=TIMEFRAME_SECONDS[timeframe])
    except KeyError:
        raise ValueError(f"unknown timeframe {timeframe!r}; known: {', '.join(TIMEFRAME_SECONDS)}") from None


def empty_candles() -> pl.DataFrame:
    return pl.DataFrame(schema=CANDLE_SCHEMA)


def normalize_candles(frame: pl.DataFrame, ts_column: str = "ts") -> pl.DataFrame:
    """Cast to the candle schema (microsecond UTC timestamps), sorted by symbol then time."""
    if ts_column != "ts":
        frame = frame.rename({ts_column: "ts"})
    missing = [c for c in CANDLE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"candle frame lacks column(s) {missing}")
    ts = pl.col("ts")
    dtype = frame.schema["ts"]
    if dtype.is_integer():
        ts = pl.from_epoch(ts, time_unit="ms")  # ccxt and Binance speak epoch milliseconds
    elif isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        ts = ts.dt.replace_time_zone("UTC")  # naive times in our sources are UTC by contract
    else:
        ts = ts.dt.convert_time_zone("UTC")
    out = frame.select(
        pl.col("symbol").cast(pl.String),
        ts.cast(TS_DTYPE).alias("ts"),
        *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")),
    )
    return out.sort("symbol", "ts")


def resample_candles(frame: pl.DataFrame, timeframe: str) -> pl.DataFrame:
    """Aggregate candles to a coarser timeframe; a bar is labelled by its open time (UTC)."""
    every = f"{int(timeframe_delta(timeframe).total_seconds())}s"
    return (
        frame.sort("symbol", "ts")
        .group_by_dynamic("ts", every=every, group_by="symbol", closed="left", label="left")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
        .select(CANDLE_COLUMNS)
        .sort("symbol", "ts")
    )


def symbol_to_path(symbol: str) -> str:
    """ "BTC/USDT" -> "BTC-USDT" (safe as a folder name)."""
    return symbol.replace("/", "-").replace(":", "_")


def path_to_symbol(name: str) -> str:
    return name.replace("_", ":").replace("-", "/")
