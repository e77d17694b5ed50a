"""Warm-up: the stream scores real features from its first event (lake bars, and the venue's recent
candles live), and the engine's `SignalEvent` carries every field its rules read."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from bench.serving_home import rehome
from pipelines.config import Settings
from pipelines.domain.candles import normalize_candles
from pipelines.features.incremental import FeatureEngine
from pipelines.lake import Lake
from pipelines.marketdata.binance_capture import iter_binance_capture
from pipelines.online_store import open_online_store
from pipelines.registry import serving_registry
from pipelines.sources.binance import CcxtCandleSource
from serving.engine.events import SignalEvent
from serving.feature_cache import LatestFeatures
from serving.scorer import ChampionScorer
from serving.stream.pipeline import StreamPipeline
from serving.stream.replay import capture_start
from serving.stream.warm import warm_up
from tests.fakes.binance_venue import FakeBinance

pytestmark = pytest.mark.realdata
BAR_FEATURES = ("rsi_14", "atr_pct", "adx_14", "bb_width", "mfi_14", "obv_slope", "vol_regime", "hurst")


class _Recorder:
    """The engine's input side (`EngineSink`): keeps what the stream submits."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def submit(self, event: Any) -> bool:
        self.events.append(event)
        return True


def _recorded_candles(shared_data: Path, symbols: list[str], start: datetime, end: datetime) -> pl.DataFrame:
    frame = pl.scan_parquet(shared_data / "binance_spot_candles" / "binance_spot_5m_2024H1.parquet")
    frame = frame.filter(pl.col("symbol").is_in(symbols)).collect().rename({"open_time": "ts"})
    return normalize_candles(frame).filter((pl.col("ts") >= start) & (pl.col("ts") < end))


def _pipeline(
    serving_home: Settings, tmp_path: Path, shared_data: Path, warm: bool
) -> tuple[StreamPipeline, _Recorder]:
    settings = rehome(serving_home, tmp_path / "home")
    window = (datetime(2024, 6, 20, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC))
    june = _recorded_candles(shared_data, ["BTC/USDT"], *window)
    Lake(settings.lake_dir).write_candles(june, "binance", "5m")
    registry = serving_registry(
        serving_home.mlflow_tracking_uri, serving_home.mlruns_dir / "artifacts", serving_home.model.name
    )
    cache = LatestFeatures(open_online_store(serving_home), refresh_s=3600)
    recorder = _Recorder()
    scorer = ChampionScorer(registry, check_every_s=3600)
    pipeline = StreamPipeline(settings, scorer=scorer, cache=cache, engine=recorder)
    if warm:
        pipeline.warm(["BTC/USDT"], capture_start(shared_data / "binance_ticks" / "spot"))
    return pipeline, recorder


def _feed_until_first_signal(pipeline: StreamPipeline, recorder: _Recorder, shared_data: Path) -> SignalEvent:
    files = sorted((shared_data / "binance_ticks" / "spot").glob("btcusdt_*.gz"))
    events = iter_binance_capture(files, kinds={"trade", "depth", "snapshot"})
    for captured in itertools.islice(events, 200_000):
        pipeline.on_event(captured.event, 0.0)
        signals = [e for e in recorder.events if isinstance(e, SignalEvent)]
        if signals:
            return signals[0]
    raise AssertionError("no signal reached the engine")


def test_the_first_scored_signal_sees_warm_bar_features(
    serving_home: Settings, tmp_path: Path, shared_data: Path
) -> None:
    warm, warm_recorder = _pipeline(serving_home, tmp_path / "warm", shared_data, warm=True)
    cold, cold_recorder = _pipeline(serving_home, tmp_path / "cold", shared_data, warm=False)

    first_warm = _feed_until_first_signal(warm, warm_recorder, shared_data)
    first_cold = _feed_until_first_signal(cold, cold_recorder, shared_data)
    at = warm.features.clock("BTC/USDT") + 1  # type: ignore[operator]
    warm_values = warm.features.features_at("BTC/USDT", at)
    cold_values = cold.features.features_at("BTC/USDT", at)

    assert warm.warm_report is not None and warm.warm_report.lake_bars == {"BTC/USDT": 200}
    assert all(warm_values[name] is not None for name in BAR_FEATURES), warm_values
    assert all(cold_values[name] is None for name in BAR_FEATURES), "without warm-up they are null"
    assert first_warm.hurst is not None and first_warm.volatility is not None and first_warm.volatility > 0
    assert first_warm.volume_norm is not None and first_warm.volume_norm > 0
    assert first_warm.expected_return is not None and first_warm.spread is not None
    assert first_cold.hurst is None and first_cold.volatility is None and first_cold.expected_return is None
    assert first_warm.p_up != first_cold.p_up, "the champion scored different (real) inputs"


def test_later_signals_carry_volume_and_spread_norms(serving_home: Settings, tmp_path: Path, shared_data: Path) -> None:
    pipeline, recorder = _pipeline(serving_home, tmp_path, shared_data, warm=True)
    files = sorted((shared_data / "binance_ticks" / "spot").glob("btcusdt_*.gz"))

    for captured in iter_binance_capture(files, kinds={"trade", "depth", "snapshot"}):
        pipeline.on_event(captured.event, 0.0)
    signals = [e for e in recorder.events if isinstance(e, SignalEvent)]
    last = signals[-1]

    assert last.volume is not None and last.volume > 0 and last.spread_norm is not None and last.spread_norm > 0
    assert last.spread is not None and last.spread / last.spread_norm < 10, "same unit: (ask-bid)/mid"
    # volume and volume_norm are both quote volume per bar length (5 min), so of one order of magnitude
    assert last.volume_norm is not None and 0.05 < last.volume / last.volume_norm < 20


def test_a_live_start_fetches_the_bars_the_lake_lacks_from_the_venue(
    serving_home: Settings, tmp_path: Path, shared_data: Path
) -> None:
    start = datetime(2024, 6, 30, 12, 2, 30, tzinfo=UTC)
    june_end = (datetime(2024, 6, 29, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC))
    recorded = _recorded_candles(shared_data, ["BTC/USDT"], *june_end)
    settings = rehome(serving_home, tmp_path / "home")
    settings = rehome(settings, settings.home, stream=settings.stream.model_copy(update={"source": "ccxt"}))
    lake_end = datetime(2024, 6, 30, 6, 0, tzinfo=UTC)  # the nightly ran six hours ago
    Lake(settings.lake_dir).write_candles(recorded.filter(pl.col("ts") < lake_end), "binance", "5m")
    features = FeatureEngine("5m")

    with FakeBinance(recorded) as venue:
        source = CcxtCandleSource("binance", urls=venue.ccxt_urls(), clock=lambda: start, backoff_s=0.01)
        report = warm_up(settings, ["BTC/USDT"], start, features, fetch=source.fetch_candles)

    expected_venue_bars = (datetime(2024, 6, 30, 12, 0, tzinfo=UTC) - lake_end) // timedelta(minutes=5)
    assert report.venue_bars == {"BTC/USDT": expected_venue_bars}
    assert report.lake_bars == {"BTC/USDT": 200}
    assert report.last_bar_end == {"BTC/USDT": datetime(2024, 6, 30, 12, 0, tzinfo=UTC)}, "contiguous to the start"
    assert not report.problems
    assert features.features_at("BTC/USDT", int(start.timestamp() * 1e6))["rsi_14"] is not None
