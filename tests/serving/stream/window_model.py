"""Helpers of the window-signal tests: synthetic 1-minute BTC candles, a window model trained on them by
`train_window_model` into a temporary SQLite MLflow registry, and a stream pipeline fed trades that
rebuild given candles exactly (so batch and stream features are of the same bars)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines.config import Settings
from pipelines.domain.candles import normalize_candles
from pipelines.domain.marketdata import Trade
from pipelines.online_store import open_online_store
from pipelines.registry import MlflowRegistry, serving_registry
from pipelines.window.model import WindowModelConfig
from pipelines.window.train import train_window_model
from serving.feature_cache import LatestFeatures
from serving.scorer import ChampionScorer
from serving.stream.pipeline import EngineSink, StreamPipeline
from serving.stream.window_signal import WindowSignal

FAST = WindowModelConfig(iterations=40, depth=3, train_days=6, test_days=2, folds=2, min_train_days=2)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def random_walk(start: datetime, bars: int, seed: int, drift: float = 0.0) -> pl.DataFrame:
    """1-minute BTC/USDT candles from `start`; volumes are multiples of 1/64 so that the four trades
    `feed` splits a bar into sum to the candle's volume exactly."""
    rng = np.random.default_rng(seed)
    closes = 60_000 * np.exp(np.cumsum(rng.normal(drift, 0.0007, bars)))
    opens = np.concatenate([[60_000.0], closes[:-1]])
    spread = np.abs(rng.normal(0, 0.0004, bars)) * closes
    frame = pl.DataFrame(
        {
            "symbol": "BTC/USDT",
            "ts": [start + timedelta(minutes=i) for i in range(bars)],
            "open": opens,
            "high": np.maximum(opens, closes) + spread,
            "low": np.minimum(opens, closes) - spread,
            "close": closes,
            "volume": np.round(rng.gamma(2.0, 5.0, bars) * 64) / 64 + 1 / 64,
        }
    )
    return normalize_candles(frame)


@dataclass(frozen=True)
class WindowRegistry:
    uri: str
    artifacts: Path
    writer: MlflowRegistry

    def reader(self) -> Any:
        """What serving reads (`serving_registry`: the SDK-free SQLite reader)."""
        return serving_registry(self.uri, self.artifacts, FAST.name)


def trained_registry(home: Path, timeframe: str = "1m") -> WindowRegistry:
    """A registry whose `alphatide-window` champion is a small model trained on 12 days of 1m bars."""
    uri = f"sqlite:///{home / 'mlflow.db'}"
    writer = MlflowRegistry(uri, home / "artifacts", FAST.name, experiment="alphatide-window")
    candles = random_walk(datetime(2024, 2, 1, tzinfo=UTC), 12 * 1440, seed=11)
    result = train_window_model(candles, timeframe, cfg=FAST, registry=writer)
    assert result.decision.promote, result.decision.summary  # bootstrap: the first one is the champion
    return WindowRegistry(uri, home / "artifacts", writer)


def one_minute(settings: Settings, *, warm_bars: int = 300) -> Settings:
    """The settings with 1-minute stream bars (the window model's timeframe in these tests)."""
    return settings.model_copy(
        update={
            "data": settings.data.model_copy(update={"timeframe": "1m"}),
            "realtime": settings.realtime.model_copy(update={"warm_bars": warm_bars}),
        }
    )


def pipeline(settings: Settings, window: WindowSignal, engine: EngineSink) -> StreamPipeline:
    """The stream pipeline with no directional champion (an empty registry) and the window signal."""
    directional = serving_registry(settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", "none")
    return StreamPipeline(
        settings,
        scorer=ChampionScorer(directional, check_every_s=3600),
        cache=LatestFeatures(open_online_store(settings), refresh_s=3600),  # the home's (never read here)
        engine=engine,
        window=window,
    )


def warm(pipe: StreamPipeline, history: pl.DataFrame, start: datetime) -> None:
    """Warm the pipeline from `history` (the venue's recent candles) before `start`."""

    def fetch(symbols: list[str], timeframe: str, since: datetime, end: datetime) -> pl.DataFrame:
        return history.filter((pl.col("ts") >= since) & (pl.col("ts") < end))

    report = pipe.warm(["BTC/USDT"], start, fetch=fetch)
    assert not [p for p in report.problems if "not used" in p], report.problems


def us(ts: datetime) -> int:
    return (ts - _EPOCH) // timedelta(microseconds=1)


def bar_trades(ts: datetime, o: float, h: float, lo: float, c: float, v: float, n: int) -> list[Trade]:
    """Four trades that rebuild the 1m candle [ts, ts + 1m): open, high, low, close."""
    t0 = us(ts)
    legs = ((0, o, v / 2), (10, h, v / 4), (20, lo, v / 8), (50, c, v / 8))
    return [
        Trade("binance", "BTC/USDT", t0 + s * 1_000_000, price, qty, "buy" if i % 2 == 0 else "sell", f"{n}-{i}")
        for i, (s, price, qty) in enumerate(legs)
    ]


def feed(pipe: StreamPipeline, candles: pl.DataFrame, after_bar: Any = None) -> None:
    """Each candle as trades, then a print at the last candle's end so its bar closes too;
    `after_bar(ts)` runs once each bar has closed (ts = the bar's close)."""
    rows = list(candles.select("ts", "open", "high", "low", "close", "volume").iter_rows())
    for n, (ts, o, h, lo, c, v) in enumerate(rows):
        for trade in bar_trades(ts, o, h, lo, c, v, n):
            pipe.on_event(trade, 0.0)
        if after_bar is not None and n > 0:
            after_bar(ts)  # the first trade of this bar closed the previous one
    end = rows[-1][0] + timedelta(minutes=1)
    pipe.on_event(Trade("binance", "BTC/USDT", us(end), rows[-1][4], 1 / 64, "buy", "end"), 0.0)
    if after_bar is not None:
        after_bar(end)
