"""Helpers for the feature tests: frames from engine rows, the parity assertion, synthetic data."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.domain.candles import normalize_candles
from pipelines.domain.marketdata import BookDiff, BookLevel, BookSnapshot, Side, Trade
from pipelines.features.flow import AnyEvent, Liquidation
from pipelines.features.incremental import FeatureEngine, FeatureRow
from pipelines.features.spec import FEATURE_COLUMNS

REL_TOL = 1e-9  # the parity contract: batch and incremental agree to this relative difference
T0_US = 1_717_200_000_000_000  # 2024-06-01 00:00:00 UTC, a multiple of every timeframe used here


def us_times(values: Sequence[int]) -> pl.Series:
    """Epoch microseconds as a UTC Datetime series (`normalize_candles` reads bare ints as ms)."""
    return pl.Series(values, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def rows_to_frame(rows: Sequence[FeatureRow]) -> pl.DataFrame:
    """Engine rows as a frame shaped like `build_features` output (``ts``/``event_ts`` as Datetime)."""
    data: dict[str, pl.Series] = {
        "symbol": pl.Series([r.symbol for r in rows], dtype=pl.String),
        "ts": pl.Series([r.ts_us for r in rows], dtype=pl.Int64),
        "event_ts": pl.Series([r.event_ts_us for r in rows], dtype=pl.Int64),
    }
    for name in FEATURE_COLUMNS:
        data[name] = pl.Series([r.values[name] for r in rows], dtype=pl.Float64)
    return pl.DataFrame(data).with_columns(
        pl.from_epoch(c, time_unit="us").dt.replace_time_zone("UTC") for c in ("ts", "event_ts")
    )


def parity_report(batch: pl.DataFrame, incremental: pl.DataFrame, columns: Sequence[str]) -> dict[str, str]:
    """Per column, a description of every disagreement (empty dict: full parity).

    Agreement: both null, or both non-null with |a - b| <= REL_TOL * max(|a|, |b|).
    """
    problems: dict[str, str] = {}
    b = batch.sort("symbol", "ts")
    i = incremental.sort("symbol", "ts")
    keys_b = b.select("symbol", "ts", "event_ts")
    keys_i = i.select("symbol", "ts", "event_ts")
    if not keys_b.equals(keys_i):
        return {"<rows>": f"batch has {b.height} rows, incremental {i.height}; keys differ"}
    for name in columns:
        x, y = b[name].to_numpy().astype(float), i[name].to_numpy().astype(float)
        nx, ny = np.isnan(x), np.isnan(y)
        bad_null = np.flatnonzero(nx != ny)
        both = ~nx & ~ny
        scale = np.maximum(np.abs(x), np.abs(y))
        diff = np.abs(x - y)
        bad_val = np.flatnonzero(both & (diff > REL_TOL * scale))
        if bad_null.size or bad_val.size:
            k = int(bad_null[0]) if bad_null.size else int(bad_val[0])
            problems[name] = (
                f"{bad_null.size} null mismatches, {bad_val.size} value mismatches; first at "
                f"{b['symbol'][k]} {b['ts'][k]}: batch={x[k]!r} incremental={y[k]!r}"
            )
    return problems


def read_candles(shared_data: Path, symbols: Sequence[str], bars: int) -> pl.DataFrame:
    """The first ``bars`` 5m candles of ``symbols`` from the shared sample, in the candle schema."""
    path = shared_data / "binance_spot_candles" / "binance_spot_5m_2024H1.parquet"
    raw = pl.scan_parquet(path).filter(pl.col("symbol").is_in(list(symbols))).collect()
    return normalize_candles(raw, "open_time").group_by("symbol", maintain_order=True).head(bars)


def engine_rows_from_candles(candles: pl.DataFrame, timeframe: str = "5m", **kwargs: object) -> list[FeatureRow]:
    """Feed candles (any symbol order; per symbol in time order) one by one through a candle engine."""
    engine = FeatureEngine(timeframe, bars="candles", **kwargs)  # type: ignore[arg-type]
    ordered = candles.sort("ts", "symbol")
    ts_us = ordered["ts"].dt.epoch("us").to_list()
    return [
        engine.on_candle(s, t, o, h, lo, c, v)
        for s, t, o, h, lo, c, v in zip(
            ordered["symbol"].to_list(),
            ts_us,
            ordered["open"].to_list(),
            ordered["high"].to_list(),
            ordered["low"].to_list(),
            ordered["close"].to_list(),
            ordered["volume"].to_list(),
            strict=True,
        )
    ]


def random_candles(
    seed: int, bars: int, symbols: Sequence[str] = ("AAA/USDT",), timeframe_s: int = 300, start_us: int = T0_US
) -> pl.DataFrame:
    """A geometric random walk per symbol as valid candles (low <= open, close <= high; volume >= 0),
    with flat stretches and zero-volume bars mixed in (the edge cases of illiquid coins)."""
    rng = np.random.default_rng(seed)
    frames = []
    for s_i, sym in enumerate(symbols):
        steps = rng.normal(0.0, 0.004, bars)
        steps[rng.random(bars) < 0.15] = 0.0  # unchanged closes
        close = 50.0 * (s_i + 1) * np.exp(np.cumsum(steps))
        open_ = np.concatenate([[close[0]], close[:-1]])
        wick = np.abs(rng.normal(0.0, 0.002, (2, bars))) * close
        flat = rng.random(bars) < 0.1  # a bar that never traded away from its open
        high = np.where(flat, np.maximum(open_, close), np.maximum(open_, close) + wick[0])
        low = np.where(flat, np.minimum(open_, close), np.minimum(open_, close) - wick[1])
        volume = rng.lognormal(3.0, 1.5, bars)
        volume[rng.random(bars) < 0.1] = 0.0
        frames.append(
            pl.DataFrame(
                {
                    "symbol": [sym] * bars,
                    "ts": us_times([start_us + k * timeframe_s * 1_000_000 for k in range(bars)]),
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                }
            )
        )
    return normalize_candles(pl.concat(frames))


def synthetic_stream(
    seed: int,
    events: int,
    *,
    symbol: str = "SYN/USDT",
    venue: str = "binance",
    start_us: int = T0_US + 1_234,
    liquidations: bool = False,
) -> list[AnyEvent]:
    """A consistent event stream for one symbol: a REST snapshot, then trades, depth diffs (spot id
    chaining, never crossed) and optionally liquidations, at 1-400 ms steps of exchange time."""
    rng = random.Random(seed)
    tick = 0.01
    center = 10_000  # mid in ticks
    bids = {center - k: round(rng.uniform(0.1, 5.0), 4) for k in range(1, 25)}
    asks = {center + k: round(rng.uniform(0.1, 5.0), 4) for k in range(1, 25)}
    last_id = 5_000
    out: list[AnyEvent] = [
        BookSnapshot(
            venue,
            symbol,
            None,
            last_id,
            tuple(BookLevel(p * tick, q) for p, q in sorted(bids.items(), reverse=True)),
            tuple(BookLevel(p * tick, q) for p, q in sorted(asks.items())),
        )
    ]
    ts = start_us
    trade_id = 0
    for _ in range(events):
        ts += rng.randint(1_000, 400_000)
        r = rng.random()
        if r < 0.45:
            buy = rng.random() < 0.5
            price = (min(asks) if buy else max(bids)) * tick
            trade_id += 1
            out.append(
                Trade(
                    venue, symbol, ts, price, round(rng.uniform(0.001, 2.0), 4), "buy" if buy else "sell", str(trade_id)
                )
            )
        elif liquidations and r < 0.5:
            side: Side = "buy" if rng.random() < 0.5 else "sell"
            out.append(Liquidation(venue, symbol, ts, side, center * tick, round(rng.uniform(0.01, 3.0), 3)))
        else:
            move = rng.choice((-1, 0, 0, 1))
            center += move
            changes_b: dict[int, float] = {}
            changes_a: dict[int, float] = {}
            for p in [p for p in bids if p >= center]:
                changes_b[p] = 0.0
            for p in [p for p in asks if p <= center]:
                changes_a[p] = 0.0
            for _k in range(rng.randint(1, 6)):
                off = rng.randint(1, 15)
                qty = 0.0 if rng.random() < 0.25 else round(rng.uniform(0.05, 6.0), 4)
                if rng.random() < 0.5:
                    changes_b[center - off] = qty
                else:
                    changes_a[center + off] = qty
            for p, q in changes_b.items():
                if q > 0:
                    bids[p] = q
                else:
                    bids.pop(p, None)
            for p, q in changes_a.items():
                if q > 0:
                    asks[p] = q
                else:
                    asks.pop(p, None)
            if not bids:
                bids[center - 1] = changes_b[center - 1] = 1.0
            if not asks:
                asks[center + 1] = changes_a[center + 1] = 1.0
            first = last_id + 1
            last_id = first + rng.randint(0, 3)
            out.append(
                BookDiff(
                    venue,
                    symbol,
                    ts,
                    first,
                    last_id,
                    None,
                    tuple(BookLevel(p * tick, q) for p, q in changes_b.items()),
                    tuple(BookLevel(p * tick, q) for p, q in changes_a.items()),
                )
            )
    return out


def finite_or_null(frame: pl.DataFrame, columns: Sequence[str]) -> list[str]:
    """Columns of ``frame`` holding a NaN or an infinity (should be none)."""
    return [c for c in columns if frame.select((pl.col(c).is_nan() | pl.col(c).is_infinite()).any()).item()]


def approx_equal(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=0.0)
