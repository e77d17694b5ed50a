"""Batch (polars) and incremental (event by event) features agree: relative difference <= 1e-9 and the
same nulls, on real candles, on the real Binance tick capture and on synthetic streams."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.features.bars import time_bars
from pipelines.features.flow import AnyEvent, EventFrames, frames_from_events
from pipelines.features.incremental import FeatureEngine
from pipelines.features.spec import FeatureParams
from tests.pipelines.features._support import (
    engine_rows_from_candles,
    finite_or_null,
    parity_report,
    random_candles,
    read_candles,
    rows_to_frame,
    synthetic_stream,
)

# Small VPIN buckets and short bars, so a 10-minute capture exercises every feature.
TICK_PARAMS = FeatureParams(vpin_bucket_quote=50_000.0, vpin_buckets=20)
TICK_TIMEFRAME = "5s"
# Features that the capture cannot fill: no liquidation stream; Hurst needs 128 bars (10.7 min of 5 s).
ALWAYS_NULL_IN_CAPTURE = {"liquidation_imbalance", "hurst"}


def _batch_from_frames(frames: EventFrames, timeframe: str, params: FeatureParams) -> pl.DataFrame:
    bars = time_bars(frames.trades, timeframe, coverage=frames.coverage)
    return build_features(
        bars, timeframe, trades=frames.trades, book=frames.book, liquidations=frames.liquidations, params=params
    )


def _stream_parity(
    events: list[AnyEvent], timeframe: str, params: FeatureParams
) -> tuple[pl.DataFrame, dict[str, str]]:
    engine = FeatureEngine(timeframe, params)
    incremental = rows_to_frame(engine.on_events(events))
    batch = _batch_from_frames(frames_from_events(events, params), timeframe, params)
    assert finite_or_null(batch, FEATURE_COLUMNS) == []
    return batch, parity_report(batch, incremental, FEATURE_COLUMNS)


@pytest.mark.realdata
def test_candle_parity_on_real_5m_candles(shared_data: Path) -> None:
    # Arrange: a major, a memecoin priced ~1e-6 and an illiquid pair with flat zero-volume bars.
    candles = read_candles(shared_data, ("BTC/USDT", "PEPE/USDT", "SUN/USDT"), 2500)

    # Act
    batch = build_features(candles)
    incremental = rows_to_frame(engine_rows_from_candles(candles))

    # Assert
    assert parity_report(batch, incremental, FEATURE_COLUMNS) == {}
    assert batch.height == 7500
    assert batch["hurst"].null_count() < batch.height  # the long windows were exercised too


@pytest.mark.realdata
@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_stream_parity_on_the_binance_tick_capture(market: str, capture_events: dict[str, list[AnyEvent]]) -> None:
    # Arrange
    events = capture_events[market]

    # Act
    batch, problems = _stream_parity(events, TICK_TIMEFRAME, TICK_PARAMS)

    # Assert
    assert problems == {}
    assert set(batch["symbol"].unique()) == {"BTC/USDT", "ETH/USDT"} or market == "usdm"
    # Not vacuous: every feature but the ones the capture cannot fill has values (the USD-M capture
    # is 6 minutes: 72 bars of 5 s, of which the 60-bar regime windows leave a few).
    for name in FEATURE_COLUMNS:
        if name not in ALWAYS_NULL_IN_CAPTURE:
            assert batch.height - batch[name].null_count() >= 10, name


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_stream_parity_on_synthetic_streams_with_liquidations(seed: int) -> None:
    # Arrange: 1 s bars, book gaps impossible, liquidations mixed in.
    events = synthetic_stream(seed, 3000, liquidations=True)
    params = FeatureParams(vpin_bucket_quote=200.0, vpin_buckets=10)

    # Act
    batch, problems = _stream_parity(events, "1s", params)

    # Assert
    assert problems == {}
    assert batch["liquidation_imbalance"].null_count() < batch.height


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bars=st.integers(1, 220))
def test_candle_parity_on_random_candles(seed: int, bars: int) -> None:
    candles = random_candles(seed, bars, ("AAA/USDT", "BBB/USDT"))
    batch = build_features(candles)
    incremental = rows_to_frame(engine_rows_from_candles(candles))
    assert parity_report(batch, incremental, FEATURE_COLUMNS) == {}


@pytest.mark.realdata
def test_stream_parity_on_the_upbit_capture_of_whole_book_snapshots(shared_data: Path) -> None:
    # Arrange: Upbit sends whole 15-level books (no diffs): each snapshot is a book state. The sample is
    # 30 s long, hence 1 s bars and 5-20 s windows.
    parser = pytest.importorskip("pipelines.marketdata.upbit_capture")
    files = sorted((shared_data / "upbit_ws_sample").glob("UPBIT*"))
    events: list[AnyEvent] = [ce.event for ce in parser.iter_upbit_capture(files)]
    params = FeatureParams(ofi_window_s=5, cancel_window_s=5, vw_momentum_window_s=5, aggressor_windows_s=(5, 10, 20))

    # Act
    batch, problems = _stream_parity(events, "1s", params)

    # Assert
    assert problems == {}
    assert batch["ofi_l1"].null_count() < batch.height
    assert batch["spread_pct"].null_count() < batch.height
    assert batch["cancel_rate_1m"].null_count() == batch.height  # no diffs: cancels are unknown
