"""Recorded candles replayed from files: the shared sample, freqtrade data folders, Binance public data.

The layouts are listed in `pipelines.sources.candle_files` (found anywhere under the folder, mixed freely):
`*_<tf>_*.parquet` with a symbol column (like `shared/data/binance_spot_candles`), freqtrade's
`user_data/data/<exchange>/<PAIR>-<tf>.feather|json|parquet` (spot and `-futures`), and Binance's
public kline archives `<SYMBOL>-<tf>-YYYY-MM[-DD].zip|csv`. A timeframe with no file of its own is
resampled from the finest finer one present ("1d" from "1h" or "5m"). Errors name the layouts looked
for and the timeframe asked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import polars as pl

from pipelines.domain.candles import normalize_candles, resample_candles, timeframe_delta
from pipelines.errors import ConfigError
from pipelines.sources.candle_files import LAYOUTS, CandleFile, discover, read


def _layouts(timeframe: str | None) -> str:
    shown = "; ".join(LAYOUTS)
    return shown.replace("<tf>", timeframe) if timeframe else shown


class ReplaySource:
    name = "replay"

    def __init__(self, directory: Path, venue: str = "binance", timeframe: str | None = None):
        self.directory = Path(directory)
        self.venue = venue
        self._files: dict[str, list[CandleFile]] = {}
        if not self.directory.is_dir():
            raise ConfigError(f"replay folder {self.directory} does not exist")
        try:
            for file in discover(self.directory):
                self._files.setdefault(file.timeframe, []).append(file)
        except ValueError as exc:
            raise ConfigError(f"replay folder {self.directory}: {exc}") from exc
        if not self._files:
            raise ConfigError(
                f"replay folder {self.directory} holds no candle files"
                + (f" for {timeframe}" if timeframe else "")
                + f"; looked for: {_layouts(timeframe)}"
            )

    @property
    def timeframes(self) -> list[str]:
        return sorted(self._files, key=timeframe_delta)

    @cache  # noqa: B019 - one source object per run; the recording does not change under it
    def _scan(self, timeframe: str) -> pl.LazyFrame:
        try:
            return read(self._files[timeframe]).collect().lazy()
        except (ValueError, OSError, pl.exceptions.PolarsError) as exc:
            raise ConfigError(f"replay folder {self.directory}: cannot read the {timeframe} candles: {exc}") from exc

    def _finest(self) -> str:
        return min(self._files, key=lambda tf: timeframe_delta(tf))

    @cache  # noqa: B019
    def as_of(self) -> datetime:
        finest = self._finest()
        last: datetime = self._scan(finest).select(pl.col("open_time").max()).collect().item()
        if last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        return last.astimezone(UTC) + timeframe_delta(finest)

    def list_symbols(self, quote: str) -> list[str]:
        symbols = self._scan(self._finest()).select(pl.col("symbol").unique()).collect()["symbol"].to_list()
        return sorted(s for s in symbols if s.split(":")[0].endswith(f"/{quote}"))

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
                    f"replay folder {self.directory} has no {timeframe} candles and nothing finer to build them "
                    f"(it has {', '.join(self.timeframes)}); looked for: {_layouts(timeframe)}"
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
