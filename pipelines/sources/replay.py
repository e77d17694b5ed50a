"""Recorded candles from Parquet files laid out like `shared/data/binance_spot_candles`.

Files are named `*_<timeframe>_*.parquet` (e.g. `binance_spot_5m_2024H1.parquet`) with columns
`symbol, open_time (UTC), open, high, low, close, volume`. A timeframe with no file of its own is
resampled from the finest one present ("1d" from "1h" or "5m").
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import polars as pl

from pipelines.domain.candles import normalize_candles, resample_candles, timeframe_delta
from pipelines.errors import ConfigError

_FILE_TIMEFRAME = re.compile(r"_(\d+[mhd])_")


class ReplaySource:
    name = "replay"

    def __init__(self, directory: Path, venue: str = "binance"):
        self.directory = Path(directory)
        self.venue = venue
        self._files: dict[str, list[Path]] = {}
        for path in sorted(self.directory.glob("*.parquet")):
            match = _FILE_TIMEFRAME.search(path.name)
            if match:
                self._files.setdefault(match.group(1), []).append(path)
        if not self._files:
            raise ConfigError(
                f"replay folder {self.directory} holds no candle files named like '*_5m_*.parquet'"
            )

    def _scan(self, timeframe: str) -> pl.LazyFrame:
        return pl.scan_parquet(self._files[timeframe])

    @cache  # noqa: B019 - one source object per run; the recording does not change under it
    def as_of(self) -> datetime:
        finest = min(self._files, key=lambda tf: timeframe_delta(tf))
        last: datetime = self._scan(finest).select(pl.col("open_time").max()).collect().item()
        if last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        return last.astimezone(UTC) + timeframe_delta(finest)

    def list_symbols(self, quote: str) -> list[str]:
        finest = min(self._files, key=lambda tf: timeframe_delta(tf))
        symbols = self._scan(finest).select(pl.col("symbol").unique()).collect()["symbol"].to_list()
        return sorted(s for s in symbols if s.endswith(f"/{quote}"))

    def fetch_candles(
        self, symbols: list[str], timeframe: str, start: datetime, end: datetime
    ) -> pl.DataFrame:
        wanted = timeframe_delta(timeframe)
        if timeframe in self._files:
            stored = timeframe
        else:
            finer = [tf for tf in self._files if timeframe_delta(tf) < wanted]
            if not finer:
                raise ConfigError(
                    f"replay folder {self.directory} has no {timeframe} candles and nothing finer to build them"
                )
            stored = max(finer, key=lambda tf: timeframe_delta(tf))
        frame = (
            self._scan(stored)
            .filter(pl.col("symbol").is_in(symbols))
            .filter((pl.col("open_time") >= start) & (pl.col("open_time") < end))
            .collect()
        )
        frame = normalize_candles(frame, ts_column="open_time")
        if stored != timeframe:
            frame = resample_candles(frame, timeframe)
            frame = frame.filter(pl.col("ts") + wanted <= end)
        return frame
