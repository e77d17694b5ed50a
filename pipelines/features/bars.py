"""Bars built from trades: time bars (OHLCV per timeframe) and volume buckets (for VPIN).

Each kind has a batch form over a polars trades frame and an incremental form fed one trade at a time;
both follow the rules below, and the parity tests hold them to the same output.

Trades frame (`normalize_trades`): ``symbol`` (str), ``ts`` (exchange time, Datetime µs UTC), ``price``
(quote per base), ``qty`` (base units), ``is_buy`` (the aggressor bought). The Binance capture's
``aggressor_side`` column is accepted in place of ``is_buy``. Rows keep their given order within equal
timestamps (the order trades happened in).

Time bars: ``[ts, ts + timeframe)`` with ``ts`` a multiple of the timeframe since the epoch. A symbol's
bars run from its coverage start (default: its first trade) to its coverage end (default: its last
trade). A bar is emitted only when it lies wholly inside the coverage: the bar in which the feed started
is partial (its volume is understated) and the bar still open at the end is incomplete. A bar without
trades repeats the previous close as open, high, low and close with zero volume, as exchange klines do.

Volume buckets: consecutive slices of exactly ``bucket`` quote volume (price x qty) along the trade
sequence, starting at the symbol's first trade; a trade that straddles a boundary is split across
buckets. A bucket completes at the time of the trade that fills it. Its imbalance is
``|buy - sell| / bucket`` in [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from pipelines.domain.marketdata import Trade
from pipelines.features.spec import timeframe_us

TS_DTYPE = pl.Datetime("us", "UTC")
TRADE_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "ts": TS_DTYPE,
    "price": pl.Float64(),
    "qty": pl.Float64(),
    "is_buy": pl.Boolean(),
}
BAR_EXTRA_COLUMNS = ("buy_quote", "sell_quote", "trades")


def normalize_trades(trades: pl.DataFrame) -> pl.DataFrame:
    """Trades in `TRADE_SCHEMA`, sorted by symbol then ts (stable: equal times keep their order)."""
    if "is_buy" not in trades.columns:
        if "aggressor_side" not in trades.columns:
            raise ValueError("trades need an 'is_buy' or an 'aggressor_side' column")
        trades = trades.with_columns((pl.col("aggressor_side").cast(pl.String) == "buy").alias("is_buy"))
    missing = [c for c in TRADE_SCHEMA if c not in trades.columns]
    if missing:
        raise ValueError(f"trades frame lacks column(s) {missing}")
    ts = pl.col("ts")
    dtype = trades.schema["ts"]
    if dtype.is_integer():
        ts = pl.from_epoch(ts, time_unit="us")
    elif isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        ts = ts.dt.replace_time_zone("UTC")
    else:
        ts = ts.dt.convert_time_zone("UTC")
    out = trades.select(
        pl.col("symbol").cast(pl.String),
        ts.cast(TS_DTYPE).alias("ts"),
        pl.col("price").cast(pl.Float64),
        pl.col("qty").cast(pl.Float64),
        pl.col("is_buy").cast(pl.Boolean),
    )
    return out.sort("symbol", "ts", maintain_order=True)


def trades_frame(trades: Iterable[Trade]) -> pl.DataFrame:
    """`Trade` objects as a `TRADE_SCHEMA` frame (in the given order, then sorted stably)."""
    rows = [(t.symbol, t.ts_us, t.price, t.qty, t.aggressor_side == "buy") for t in trades]
    raw = pl.DataFrame(
        rows,
        schema={"symbol": pl.String, "ts": pl.Int64, "price": pl.Float64, "qty": pl.Float64, "is_buy": pl.Boolean},
        orient="row",
    )
    return normalize_trades(raw)


def coverage_from(frame: pl.DataFrame) -> pl.DataFrame:
    """Default coverage of an event frame: per symbol, its first and last ``ts`` (``start``, ``end``)."""
    return frame.group_by("symbol").agg(pl.col("ts").min().alias("start"), pl.col("ts").max().alias("end"))


def time_bars(trades: pl.DataFrame, timeframe: str, *, coverage: pl.DataFrame | None = None) -> pl.DataFrame:
    """Time bars from trades (see the module docstring for which bars exist and how empty ones look).

    Returns the candle schema (``symbol``, ``ts`` = bar open UTC, ``open``, ``high``, ``low``, ``close``,
    ``volume`` in base units) plus ``buy_quote`` / ``sell_quote`` (aggressive buy / sell quote volume) and
    ``trades`` (count), sorted by symbol then ts. ``coverage``: optional ``symbol``, ``start``, ``end``
    (Datetime) per symbol; default `coverage_from(trades)`.
    """
    bar_us = timeframe_us(timeframe)
    t = normalize_trades(trades)
    cov = coverage_from(t) if coverage is None else coverage
    cov = cov.select(
        "symbol",
        pl.col("start").cast(TS_DTYPE).dt.epoch("us").alias("_start"),
        pl.col("end").cast(TS_DTYPE).dt.epoch("us").alias("_end"),
    )
    ts_us = pl.col("ts").dt.epoch("us")
    quote = pl.col("price") * pl.col("qty")
    agg = (
        t.with_columns((ts_us - ts_us % bar_us).alias("_bar"))
        .group_by("symbol", "_bar", maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("qty").sum().alias("volume"),
            quote.filter(pl.col("is_buy")).sum().alias("buy_quote"),
            quote.filter(~pl.col("is_buy")).sum().alias("sell_quote"),
            pl.len().cast(pl.Float64).alias("trades"),
        )
    )
    # Every bar from the one holding the coverage start up to the last bar that ends by the coverage end.
    grid = (
        cov.with_columns(
            (pl.col("_start") - pl.col("_start") % bar_us).alias("_first"),
            (pl.col("_end") - pl.col("_end") % bar_us).alias("_stop"),  # first bar NOT complete at end
        )
        .filter(pl.col("_stop") > pl.col("_first"))
        .select("symbol", "_start", pl.int_ranges("_first", "_stop", bar_us).alias("_bar"))
        .explode("_bar")
    )
    close = pl.col("close").forward_fill().over("symbol")
    bars = (
        grid.join(agg, on=["symbol", "_bar"], how="left")
        .sort("symbol", "_bar")
        .with_columns(close.alias("_close"))
        .with_columns(
            # An empty bar repeats the last close; the partial bar before the start still sets it.
            pl.coalesce("open", pl.col("_close")).alias("open"),
            pl.coalesce("high", pl.col("_close")).alias("high"),
            pl.coalesce("low", pl.col("_close")).alias("low"),
            pl.col("_close").alias("close"),
            *(pl.col(c).fill_null(0.0) for c in ("volume", *BAR_EXTRA_COLUMNS)),
        )
        .filter((pl.col("_bar") >= pl.col("_start")) & pl.col("close").is_not_null())
    )
    return bars.select(
        "symbol",
        pl.from_epoch("_bar", time_unit="us").cast(TS_DTYPE).alias("ts"),
        "open",
        "high",
        "low",
        "close",
        "volume",
        *BAR_EXTRA_COLUMNS,
    )


@dataclass(slots=True)
class Bar:
    """One closed time bar: open time ``ts_us`` (µs UTC) and the `time_bars` columns."""

    ts_us: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    buy_quote: float
    sell_quote: float
    trades: int


class TimeBarBuilder:
    """Incremental `time_bars` for one symbol: O(1) per trade, plus O(1) per empty bar skipped.

    Call `advance(ts_us)` before handing it any event at ``ts_us`` (trade or not): it returns the bars
    that closed strictly before ``ts_us``. Then `add_trade`. The first trade fixes the coverage start.
    """

    __slots__ = (
        "_bar_end",
        "_bar_ts",
        "_buy",
        "_close",
        "_high",
        "_low",
        "_n",
        "_open",
        "_sell",
        "_volume",
        "bar_us",
        "start_us",
    )

    def __init__(self, bar_us: int) -> None:
        self.bar_us = bar_us
        self.start_us: int | None = None  # coverage start: the first trade's time
        self._bar_ts = 0
        self._bar_end = 0
        self._close: float | None = None  # last traded price (carried into empty bars)
        self._reset_bar()

    def _reset_bar(self) -> None:
        self._open: float | None = None
        self._high = 0.0
        self._low = 0.0
        self._volume = 0.0
        self._buy = 0.0
        self._sell = 0.0
        self._n = 0

    def advance(self, ts_us: int) -> list[Bar]:
        """Close every bar that ends at or before ``ts_us``; returns the complete ones, oldest first."""
        out: list[Bar] = []
        if self.start_us is None:
            return out
        while ts_us >= self._bar_end:
            if self._bar_ts >= self.start_us and self._close is not None:
                if self._open is None:  # no trade in the bar: a flat bar at the last price
                    c = self._close
                    out.append(Bar(self._bar_ts, c, c, c, c, 0.0, 0.0, 0.0, 0))
                else:
                    out.append(
                        Bar(
                            self._bar_ts,
                            self._open,
                            self._high,
                            self._low,
                            self._close,
                            self._volume,
                            self._buy,
                            self._sell,
                            self._n,
                        )
                    )
            self._bar_ts = self._bar_end
            self._bar_end += self.bar_us
            self._reset_bar()
        return out

    def add_trade(self, ts_us: int, price: float, qty: float, is_buy: bool) -> None:
        """Add a trade at ``ts_us`` (call `advance(ts_us)` first)."""
        if self.start_us is None:
            self.start_us = ts_us
            self._bar_ts = ts_us - ts_us % self.bar_us
            self._bar_end = self._bar_ts + self.bar_us
        if self._open is None:
            self._open = self._high = self._low = price
        elif price > self._high:
            self._high = price
        elif price < self._low:
            self._low = price
        self._close = price
        self._volume += qty
        if is_buy:
            self._buy += price * qty
        else:
            self._sell += price * qty
        self._n += 1


def volume_buckets(trades: pl.DataFrame, bucket_quote: float | dict[str, float]) -> pl.DataFrame:
    """Completed volume buckets per symbol: ``symbol``, ``ts`` (completion time), ``bucket`` (index from
    0), ``imbalance`` = |buy - sell| / bucket volume. ``bucket_quote``: size in quote currency (one for
    all symbols, or a dict per symbol). Vectorized: bucket boundaries are located on the cumulative quote
    volume axis, where the buy volume is piecewise linear.
    """
    t = normalize_trades(trades)
    quote = pl.col("price") * pl.col("qty")
    if isinstance(bucket_quote, dict):
        missing = set(t["symbol"].unique().to_list()) - set(bucket_quote)
        if missing:
            raise ValueError(f"no VPIN bucket size for {sorted(missing)}")
        sizes = pl.DataFrame(
            {"symbol": list(bucket_quote), "_size": [float(v) for v in bucket_quote.values()]},
            schema={"symbol": pl.String, "_size": pl.Float64},
        )
        t = t.join(sizes, on="symbol", how="left", maintain_order="left")
    else:
        t = t.with_columns(pl.lit(float(bucket_quote)).alias("_size"))
    cum = t.with_columns(
        quote.alias("_q"),
        pl.when(pl.col("is_buy")).then(quote).otherwise(0.0).alias("_bq"),
    ).with_columns(
        pl.col("_q").cum_sum().over("symbol").alias("_cq"),
        pl.col("_bq").cum_sum().over("symbol").alias("_cb"),
    )
    cum = cum.with_columns(
        pl.col("_cb").shift(1).over("symbol").fill_null(0.0).alias("_cb_prev"),
        pl.col("_cq").shift(1).over("symbol").fill_null(0.0).alias("_cq_prev_exact"),
    )
    # Boundaries k = 1..floor(total / size): boundary k sits at k * size on the volume axis.
    bounds = (
        cum.group_by("symbol")
        .agg(pl.col("_cq").last().alias("_total"), pl.col("_size").first())
        .with_columns((pl.col("_total") / pl.col("_size")).floor().cast(pl.Int64).alias("_nb"))
        .filter(pl.col("_nb") >= 1)
        .select("symbol", "_size", pl.int_ranges(1, pl.col("_nb") + 1).alias("_k"))
        .explode("_k")
        .with_columns((pl.col("_k").cast(pl.Float64) * pl.col("_size")).alias("_edge"))
        .sort("symbol", "_edge")
    )
    # The trade that fills boundary k is the first with cumulative volume >= k * size.
    located = bounds.join_asof(
        cum.select("symbol", "ts", "is_buy", "_cq", "_cb_prev", "_cq_prev_exact").sort("symbol", "_cq"),
        left_on="_edge",
        right_on="_cq",
        by="symbol",
        strategy="forward",
        check_sortedness=False,
    )
    buy_at_edge = pl.col("_cb_prev") + pl.when(pl.col("is_buy")).then(
        pl.col("_edge") - pl.col("_cq_prev_exact")
    ).otherwise(0.0)
    out = (
        located.with_columns(buy_at_edge.alias("_b_edge"))
        .with_columns((pl.col("_b_edge") - pl.col("_b_edge").shift(1).over("symbol").fill_null(0.0)).alias("_b"))
        .select(
            "symbol",
            "ts",
            (pl.col("_k") - 1).alias("bucket"),
            ((2.0 * pl.col("_b") - pl.col("_size")).abs() / pl.col("_size")).alias("imbalance"),
        )
    )
    return out.sort("symbol", "bucket")


class VolumeBucketer:
    """Incremental `volume_buckets` for one symbol: O(1) per trade plus O(1) per bucket it completes.

    Mirrors the batch arithmetic (running cumulative quote and buy-quote volume, boundary at k x size)
    so both locate the same boundaries and agree to the last bit or two.
    """

    __slots__ = ("_b_edge", "_cb", "_cq", "_k", "size")

    def __init__(self, bucket_quote: float) -> None:
        if not bucket_quote > 0:
            raise ValueError("bucket_quote must be positive")
        self.size = float(bucket_quote)
        self._cq = 0.0  # cumulative quote volume
        self._cb = 0.0  # cumulative aggressive-buy quote volume
        self._k = 1  # next boundary index
        self._b_edge = 0.0  # cumulative buy volume at the previous boundary

    def add(self, price: float, qty: float, is_buy: bool) -> list[float]:
        """Add a trade; returns the imbalances of the buckets it completed (usually none or one)."""
        q = price * qty
        cq_prev, cb_prev = self._cq, self._cb
        self._cq = cq_prev + q
        if is_buy:
            self._cb = cb_prev + q
        done: list[float] = []
        while True:
            edge = float(self._k) * self.size
            if edge > self._cq:
                return done
            b_edge = cb_prev + ((edge - cq_prev) if is_buy else 0.0)
            b = b_edge - self._b_edge
            done.append(abs(2.0 * b - self.size) / self.size)
            self._b_edge = b_edge
            self._k += 1
