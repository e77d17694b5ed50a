"""Seeded synthetic candles: GARCH(1,1) volatility clustering with Student-t (fat-tailed) shocks.

For machines with no venue and no recording. Symbols are named like real ones (BTC/USDT, ...) so the
rest of the system cannot tell the difference; the values are invented and say so in the source name.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from pipelines.domain.candles import CANDLE_COLUMNS, normalize_candles, resample_candles, timeframe_delta

# (base, start price in USDT, typical daily quote volume in USDT)
_BASES: tuple[tuple[str, float, float], ...] = (
    ("BTC", 62_000.0, 1.5e9),
    ("ETH", 3_100.0, 8e8),
    ("SOL", 145.0, 4e8),
    ("XRP", 0.52, 2e8),
    ("DOGE", 0.15, 2.5e8),
    ("ADA", 0.45, 8e7),
    ("AVAX", 35.0, 9e7),
    ("LINK", 15.0, 6e7),
    ("DOT", 7.0, 4e7),
    ("LTC", 80.0, 5e7),
    ("ATOM", 9.0, 3e7),
    ("NEAR", 6.0, 5e7),
    ("ARB", 1.1, 6e7),
    ("OP", 2.4, 4e7),
    ("APT", 9.0, 3e7),
    ("FIL", 6.0, 2.5e7),
    ("INJ", 28.0, 3e7),
    ("SUI", 1.2, 4e7),
    ("TIA", 10.0, 3e7),
    ("SEI", 0.6, 2e7),
)
_BASE_STEP = timedelta(minutes=5)


class SyntheticSource:
    """Deterministic for a given (seed, as_of, days): the same call returns the same bars."""

    name = "synthetic"
    venue = "synthetic"

    def __init__(self, *, as_of: datetime, days: int, n_symbols: int = 8, seed: int = 7, quote: str = "USDT"):
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware (UTC)")
        if not 1 <= n_symbols <= len(_BASES):
            raise ValueError(f"n_symbols must be in 1..{len(_BASES)}")
        self._as_of = as_of.astimezone(UTC).replace(second=0, microsecond=0)
        self._as_of -= timedelta(minutes=self._as_of.minute % 5)
        self._start = self._as_of - timedelta(days=days)
        self._seed = seed
        self._quote = quote
        self._bases = _BASES[:n_symbols]
        self._frame: pl.DataFrame | None = None

    def as_of(self) -> datetime:
        return self._as_of

    def list_symbols(self, quote: str) -> list[str]:
        return [f"{base}/{quote}" for base, _, _ in self._bases] if quote == self._quote else []

    def fetch_candles(
        self, symbols: list[str], timeframe: str, start: datetime, end: datetime
    ) -> pl.DataFrame:
        timeframe_delta(timeframe)  # rejects unknown timeframes early
        frame = self._all().filter(
            pl.col("symbol").is_in(symbols) & (pl.col("ts") >= start) & (pl.col("ts") < end)
        )
        if timeframe != "5m":
            frame = resample_candles(frame, timeframe)
            # A coarse bar is only complete when all its 5m parts are in range.
            frame = frame.filter(pl.col("ts") + timeframe_delta(timeframe) <= min(end, self._as_of))
        return frame

    def _all(self) -> pl.DataFrame:
        if self._frame is None:
            n = int((self._as_of - self._start) / _BASE_STEP)
            ts = [self._start + i * _BASE_STEP for i in range(n)]
            frames = []
            for index, (base, price0, daily_quote_volume) in enumerate(self._bases):
                # A new listing late in the range exercises the universe's listing-age rules.
                listed_from = n - (10 * 288) if index == len(self._bases) - 1 and len(self._bases) > 4 else 0
                frames.append(
                    self._simulate(
                        f"{base}/{self._quote}", price0, daily_quote_volume, ts, max(listed_from, 0)
                    )
                )
            self._frame = normalize_candles(pl.concat(frames))
        return self._frame

    def _simulate(
        self, symbol: str, price0: float, daily_quote_volume: float, ts: list[datetime], first: int
    ) -> pl.DataFrame:
        rng = np.random.default_rng([self._seed, zlib.crc32(symbol.encode())])
        n = len(ts)
        sigma_bar = 0.0022 * (1.0 + 0.5 * rng.random())  # per 5m bar: ~3.7% a day
        alpha, beta, dof = 0.07, 0.9, 4.0
        omega = sigma_bar**2 * (1.0 - alpha - beta)
        shocks = rng.standard_t(dof, size=n) / np.sqrt(dof / (dof - 2.0))
        returns = np.empty(n)
        variance = sigma_bar**2
        for i in range(n):
            returns[i] = np.sqrt(variance) * shocks[i]
            variance = omega + alpha * returns[i] ** 2 + beta * variance
        close = price0 * np.exp(np.cumsum(returns))
        open_ = np.concatenate(([price0], close[:-1]))
        wick = np.abs(rng.normal(0.0, sigma_bar * 0.6, size=(2, n))) * close
        high = np.maximum(open_, close) + wick[0]
        low = np.maximum(np.minimum(open_, close) - wick[1], 1e-12)
        activity = 1.0 + 25.0 * np.abs(returns) / sigma_bar * 0.1
        volume_quote = daily_quote_volume / 288.0 * activity * rng.lognormal(0.0, 0.4, size=n)
        volume = volume_quote / close
        frame = pl.DataFrame(
            {
                "symbol": [symbol] * n,
                "ts": ts,
                "open": open_,
                "high": high,
                "low": low,
                "close": close,
                "volume": volume,
            }
        )
        return frame.slice(first).select(CANDLE_COLUMNS)
