from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from pipelines.errors import ConfigError
from pipelines.sources.replay import ReplaySource

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def replay(shared_data: Path) -> ReplaySource:
    return ReplaySource(shared_data / "binance_spot_candles")


def test_lists_the_recorded_pairs(replay: ReplaySource, shared_data: Path) -> None:
    pairs = (shared_data / "binance_spot_candles" / "pairs.txt").read_text().split()
    assert replay.list_symbols("USDT") == sorted(pairs)
    assert replay.list_symbols("KRW") == []


def test_as_of_is_the_end_of_the_recording(replay: ReplaySource) -> None:
    assert replay.as_of() == datetime(2024, 7, 1, tzinfo=UTC)


def test_fetches_a_window_in_the_candle_schema(replay: ReplaySource) -> None:
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)
    got = replay.fetch_candles(["BTC/USDT", "ETH/USDT"], "5m", start, end)
    assert got.group_by("symbol").len().sort("symbol")["len"].to_list() == [288, 288]
    assert got["ts"].min() == start and got["ts"].max() < end
    assert got["ts"].dtype == pl.Datetime("us", "UTC")


def test_daily_bars_are_built_from_hourly_ones(replay: ReplaySource) -> None:
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 4, tzinfo=UTC)
    daily = replay.fetch_candles(["BTC/USDT"], "1d", start, end)
    hourly = replay.fetch_candles(["BTC/USDT"], "1h", start, end)
    assert len(daily) == 3
    assert daily["volume"].sum() == pytest.approx(hourly["volume"].sum())


def test_folder_without_candle_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no candle files"):
        ReplaySource(tmp_path)
