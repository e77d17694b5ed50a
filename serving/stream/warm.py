"""Warm-up of the stream's per-symbol state before its first score ("real time from the first minute").

Without history the incremental indicators over 14 to 128 bars stay null for hours after a start and
the champion scores mostly-null rows. `warm_up` feeds each watched symbol's most recent closed bars,
strictly before the stream's start, into the feature engine (`FeatureEngine.seed_bar`) and the trailing
statistics of the signal fields (`TrailingStats.on_bar`):

1. the lake's candles of `settings.venue` at `data.timeframe` (the nightly backfill keeps them), the last
   `realtime.warm_bars` bars that closed at or before the start;
2. live (``stream.source=ccxt``, `realtime.warm_from_venue`): the bars the lake does not have yet, up to
   the start, from the venue's recent candles through the existing ccxt source
   (`pipelines.sources.binance.CcxtCandleSource`), so a lake a day old still gives contiguous history.

A failure to reach the venue is logged and the lake's bars are used alone. Bars that end more than
`realtime.warm_max_gap_s` before the start are not used (None: always used; a gap is logged). Runs on
the stream's thread (it blocks on disk and network, never on the API's event loop).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl

from pipelines.config import Settings
from pipelines.domain.candles import empty_candles, timeframe_delta
from pipelines.errors import OperatorError, RetryableError
from pipelines.features.incremental import FeatureEngine
from pipelines.lake import Lake
from serving.stream.signal_inputs import TrailingStats

log = logging.getLogger(__name__)

# fetch(symbols, timeframe, start, end) -> closed candles in [start, end) (the CcxtCandleSource shape)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
CandleFetch = Callable[[list[str], str, datetime, datetime], pl.DataFrame]


@dataclass
class WarmReport:
    """What the warm-up fed, per symbol: bar counts by origin and the newest warm bar's close time."""

    start: datetime
    lake_bars: dict[str, int] = field(default_factory=dict)
    venue_bars: dict[str, int] = field(default_factory=dict)
    last_bar_end: dict[str, datetime] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def bar_floor(ts: datetime, timeframe: str) -> datetime:
    step = timeframe_delta(timeframe)
    epoch = datetime(1970, 1, 1, tzinfo=ts.tzinfo)
    return epoch + step * math.floor((ts - epoch) / step)


def lake_bars(lake: Lake, venue: str, timeframe: str, symbol: str, end: datetime, count: int) -> pl.DataFrame:
    """The last `count` bars of `symbol` with open time before `end`, reading only the newest day files."""
    files = lake.candle_files(venue, timeframe, [symbol], end=end.date())
    if not files or count <= 0:
        return empty_candles()
    per_day = max(1, int(timedelta(days=1) / timeframe_delta(timeframe)))
    newest = files[-(count // per_day + 2) :]
    frame = pl.scan_parquet(newest, hive_partitioning=False).filter(pl.col("ts") < end).collect()
    return frame.sort("ts").tail(count)


def _venue_fetch(settings: Settings, start: datetime) -> CandleFetch:
    from pipelines.sources.binance import CcxtCandleSource

    source = CcxtCandleSource(
        settings.venue, timeout_s=settings.data.request_timeout_s, max_retries=1, backoff_s=0.5, clock=lambda: start
    )
    return source.fetch_candles


def _recent_bars(
    settings: Settings, symbols: list[str], end: datetime, fetch: CandleFetch | None, report: WarmReport
) -> dict[str, pl.DataFrame]:
    tf, count = settings.data.timeframe, settings.realtime.warm_bars
    step = timeframe_delta(tf)
    lake = Lake(settings.lake_dir)
    bars: dict[str, pl.DataFrame] = {}
    for symbol in symbols:
        frame = lake_bars(lake, settings.venue, tf, symbol, end, count)
        report.lake_bars[symbol] = len(frame)
        bars[symbol] = frame
    if fetch is None:
        return bars
    for symbol in symbols:
        frame = bars[symbol]
        since = end - step * count
        if len(frame):
            since = max(since, frame["ts"][-1] + step)
        if since >= end:
            continue
        try:
            fetched = fetch([symbol], tf, since, end)
        except (RetryableError, OperatorError) as exc:
            report.problems.append(f"{symbol}: recent candles from {settings.venue} unavailable ({exc})")
            continue
        fetched = fetched.filter(pl.col("ts") < end).select(frame.columns) if len(fetched) else fetched
        report.venue_bars[symbol] = len(fetched)
        if len(fetched):
            bars[symbol] = pl.concat([frame, fetched]).unique("ts", keep="last").sort("ts").tail(count)
    return bars


def warm_up(
    settings: Settings,
    symbols: list[str],
    start: datetime,
    features: FeatureEngine,
    stats: TrailingStats | None = None,
    *,
    fetch: CandleFetch | None = None,
) -> WarmReport:
    """Feed each symbol's recent closed bars (see the module docstring); call before any live event.

    `fetch` overrides the venue's candles (tests: a fake venue); by default it is the ccxt source when
    the stream is live and `realtime.warm_from_venue` is set, else none.
    """
    cfg = settings.realtime
    report = WarmReport(start)
    if cfg.warm_bars == 0 or not symbols:
        return report
    tf = settings.data.timeframe
    end = bar_floor(start, tf)  # bars with open time before `end` have closed by `start`
    if fetch is None and settings.stream.source == "ccxt" and cfg.warm_from_venue:
        fetch = _venue_fetch(settings, start)
    step = timeframe_delta(tf)
    for symbol, frame in _recent_bars(settings, symbols, end, fetch, report).items():
        if not len(frame):
            report.problems.append(f"{symbol}: no bars before {end.isoformat()} to warm from")
            continue
        last_end = frame["ts"][-1] + step
        gap_s = (end - last_end).total_seconds()
        if cfg.warm_max_gap_s is not None and gap_s > cfg.warm_max_gap_s:
            report.problems.append(f"{symbol}: newest bar ends {gap_s:.0f} s before the start: not used")
            continue
        if gap_s > 0:
            report.problems.append(f"{symbol}: warm bars end {gap_s:.0f} s before the stream starts")
        for ts, o, h, lo, c, v in frame.select("ts", "open", "high", "low", "close", "volume").iter_rows():
            ts_us = (ts - _EPOCH) // _US
            features.seed_bar(symbol, ts_us, o, h, lo, c, v)
            if stats is not None:
                stats.on_bar(symbol, ts_us, c, c * v)  # quote volume of a candle: close x base volume
        report.last_bar_end[symbol] = last_end
    for problem in report.problems:
        log.warning("stream warm-up: %s", problem)
    log.info(
        "stream warm-up to %s: lake bars %s, venue bars %s", start.isoformat(), report.lake_bars, report.venue_bars
    )
    return report
