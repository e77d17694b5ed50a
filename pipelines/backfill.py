"""The backfill engine: incremental, resumable, idempotent market-data history into the lake (SPEC section 2).

- Kinds: `candles_1m`, `candles_5m`, `candles_1h`, `trades` (with aggressor side) and `book_snapshots`
  (the venue's book now: order books have no REST history).
- Watermark per (venue, kind, symbol) in the lake's `_state/watermarks.json`: the instant before which
  everything the venue has was fetched. It advances after every chunk is written (a day of candles, an
  hour of trades), so an interrupted run resumes at the chunk it was in; the lake merges rows by key, so
  nothing is duplicated and re-running a day rewrites it identically.
- Gaps: after fetching, each symbol's stored bars in the window are checked against the timeframe grid;
  every hole is fetched again. Holes that remain are the venue's own: when the same bars are missing in
  most symbols listed then (`DataConfig.outage_share`, 80%), the hole is recorded as a venue outage, its
  ragged edge included (`outage_edge_bars`), otherwise as a symbol gap (`Lake.record_gaps`). Nothing is
  ever filled with invented bars; validation excuses recorded outages.
- Rate limits and backoff live in the source (`CcxtCandleSource._call`); a run that still fails raises
  `SourceUnavailableError` (retryable) with everything done so far kept.
- A tqdm progress bar counts chunks on long runs (shown on a terminal, or on the stream you pass).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import polars as pl
from tqdm import tqdm

from pipelines.config import DataConfig
from pipelines.domain.candles import timeframe_delta
from pipelines.errors import OperatorError
from pipelines.lake import GAPS_SCHEMA, Lake
from pipelines.sources.base import CandleSource
from pipelines.sources.binance import TIME_SEEKABLE_TRADES, CcxtCandleSource

log = logging.getLogger(__name__)

CANDLE_KINDS = ("candles_1m", "candles_5m", "candles_1h")
KINDS = (*CANDLE_KINDS, "trades", "book_snapshots")
WATERMARKS = "watermarks"
MIN_OUTAGE_SYMBOLS = 2  # one symbol alone cannot tell a venue outage from its own hole


def parse_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    """Validate kind names ("candles_5m", "trades", "book_snapshots"); raises `OperatorError` naming bad ones."""
    out = tuple(dict.fromkeys(kinds))
    bad = [k for k in out if k not in KINDS]
    if bad or not out:
        raise OperatorError(f"unknown backfill kind(s) {bad or '(none)'}; known: {', '.join(KINDS)}")
    return out


def watermark_key(venue: str, kind: str, symbol: str) -> str:
    return f"{venue}/{kind}/{symbol}"


def _floor(ts: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((ts - epoch) // step) * step


@dataclass
class BackfillReport:
    """What a run did. Rows count what the venue returned (before the lake's deduplication)."""

    venue: str
    kinds: tuple[str, ...]
    symbols: list[str]
    start: datetime
    end: datetime
    rows: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    refetched_holes: int = 0
    refetched_bars: int = 0
    venue_outages: list[dict[str, Any]] = field(default_factory=list)
    symbol_gaps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def new_rows(self) -> int:
        return sum(self.rows.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "kinds": list(self.kinds),
            "symbols": self.symbols,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": self.rows,
            "new_rows": self.new_rows,
            "chunks": self.chunks,
            "refetched_holes": self.refetched_holes,
            "refetched_bars": self.refetched_bars,
            "venue_outages": self.venue_outages,
            "symbol_gaps": self.symbol_gaps,
        }


def missing_bars(stored_ts: pl.Series, step: timedelta, start: datetime, until: datetime) -> list[datetime]:
    """Bar times on the grid in [max(start, first stored bar), until) that are not stored.

    Before a symbol's first bar nothing is missing (it was not listed yet); `until` is the watermark.
    """
    if stored_ts.is_empty():
        return []
    begin: datetime = stored_ts.min()  # type: ignore[assignment]
    if begin >= until:
        return []
    grid = pl.datetime_range(begin, until - step, step, time_unit="us", time_zone="UTC", eager=True)
    have = stored_ts.cast(grid.dtype)
    return grid.filter(~grid.is_in(have.implode())).to_list()


def _runs(times: list[datetime], step: timedelta) -> list[tuple[datetime, datetime, int]]:
    """Consecutive bar times as (first, end exclusive, count)."""
    runs: list[tuple[datetime, datetime, int]] = []
    for t in sorted(times):
        if runs and runs[-1][1] == t:
            first, _, n = runs[-1]
            runs[-1] = (first, t + step, n + 1)
        else:
            runs.append((t, t + step, 1))
    return runs


def classify_holes(
    holes: dict[str, list[datetime]],
    first_bars: dict[str, datetime],
    step: timedelta,
    *,
    share: float = 0.8,
    edge_bars: int = 2,
) -> tuple[list[tuple[str, datetime, datetime, int]], list[tuple[str, datetime, datetime, int]]]:
    """Split remaining holes into venue outages and symbol gaps.

    A missing bar is venue-wide when at least `share` of the symbols listed at that time (first bar at or
    before it) miss it, and at least `MIN_OUTAGE_SYMBOLS` were listed. A symbol's hole is recorded as a
    venue outage over its venue-wide bars plus up to `edge_bars` bars either side inside the same hole:
    the ragged edge of an outage (on 1m bars a few symbols stop a bar earlier or resume a bar later) is
    the same outage, not a gap of those symbols. The rest of a hole is a symbol gap.
    Returns (outages, gaps) as (symbol, start, end exclusive, bars).
    """
    missing_count: dict[datetime, int] = {}
    for times in holes.values():
        for t in times:
            missing_count[t] = missing_count.get(t, 0) + 1
    firsts = sorted(first_bars.values())

    def venue_wide(t: datetime) -> bool:
        listed = sum(1 for first in firsts if first <= t)
        return listed >= MIN_OUTAGE_SYMBOLS and missing_count[t] >= share * listed

    outages, gaps = [], []
    for symbol, times in holes.items():
        wide: list[datetime] = []
        own: list[datetime] = []
        for first, _end, n in _runs(times, step):
            run = [first + i * step for i in range(n)]
            core = [i for i, t in enumerate(run) if venue_wide(t)]
            near = {j for i in core for j in range(max(0, i - edge_bars), min(n, i + edge_bars + 1))}
            for i, t in enumerate(run):
                (wide if i in near else own).append(t)
        outages += [(symbol, *run) for run in _runs(wide, step)]
        gaps += [(symbol, *run) for run in _runs(own, step)]
    return outages, gaps


class Backfiller:
    """Backfill `kinds` for `symbols` over [start, end) from one source into one lake.

    Works with any `CandleSource` for candles; trades, book snapshots and market metadata need a ccxt
    venue (`CcxtCandleSource`). Times are UTC; `end` is exclusive.
    """

    def __init__(
        self,
        source: CandleSource,
        lake: Lake,
        config: DataConfig | None = None,
        *,
        progress: bool | None = None,
        progress_stream: TextIO | None = None,
        clock: Callable[[], datetime] | None = None,
        on_progress: Callable[[int, int, str], None] | None = None,
    ):
        self.source = source
        self.lake = lake
        self.config = config or DataConfig()
        self.venue = source.venue
        self._progress = progress
        self._stream = progress_stream
        self._clock = clock or source.as_of
        self._on_progress = on_progress  # (chunks done, chunks planned, what): the chain runner's bar

    # ---- watermarks ----------------------------------------------------------------------------
    def watermarks(self) -> dict[str, str]:
        return dict(self.lake.read_state(WATERMARKS) or {})

    def watermark(self, kind: str, symbol: str) -> datetime | None:
        mark = self.watermarks().get(watermark_key(self.venue, kind, symbol))
        return datetime.fromisoformat(mark) if mark else None

    def _set_watermark(self, marks: dict[str, str], kind: str, symbol: str, at: datetime) -> None:
        key = watermark_key(self.venue, kind, symbol)
        if key in marks and datetime.fromisoformat(marks[key]) >= at:
            return
        marks[key] = at.isoformat()
        self.lake.write_state(WATERMARKS, marks)  # after every chunk: an interrupted run resumes here

    # ---- planning ------------------------------------------------------------------------------
    def _chunks(self, kind: str, since: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        if kind == "book_snapshots":
            return [(since, end)]
        if kind == "trades":
            if self.venue not in TIME_SEEKABLE_TRADES:
                return [(since, end)] if since < end else []
            unit = timedelta(seconds=self.config.trades_window_s)
        else:
            unit = timedelta(days=self.config.candle_chunk_days)
        chunks = []
        t = since
        while t < end:
            nxt = min(end, _floor(t, unit) + unit)
            chunks.append((t, nxt))
            t = nxt
        return chunks

    def _closed_until(self, kind: str) -> datetime:
        """Nothing at or after this instant is complete yet (the bar still forming)."""
        now = self._clock()
        return _floor(now, timeframe_delta(kind.split("_", 1)[1])) if kind in CANDLE_KINDS else now

    # ---- run -----------------------------------------------------------------------------------
    def run(self, symbols: list[str], kinds: Iterable[str], start: datetime, end: datetime) -> BackfillReport:
        kinds = parse_kinds(kinds)
        if start.tzinfo is None or end.tzinfo is None:
            raise OperatorError("backfill start and end must be timezone-aware (UTC)")
        if start >= end:
            raise OperatorError(f"backfill window is empty: start {start.isoformat()} >= end {end.isoformat()}")
        needs_venue = [k for k in kinds if k in ("trades", "book_snapshots")]
        if needs_venue and not isinstance(self.source, CcxtCandleSource):
            raise OperatorError(f"source {self.source.name} serves candles only, not {', '.join(needs_venue)}")
        report = BackfillReport(self.venue, kinds, list(symbols), start, end, rows={k: 0 for k in kinds})
        marks = self.watermarks()
        plan: list[tuple[str, str, datetime, datetime]] = []
        for kind in kinds:
            until = min(end, self._closed_until(kind))
            for symbol in symbols:
                mark = marks.get(watermark_key(self.venue, kind, symbol))
                since = max(start, datetime.fromisoformat(mark)) if mark and kind != "book_snapshots" else start
                plan += [(kind, symbol, a, b) for a, b in self._chunks(kind, since, until)]
        with tqdm(
            total=len(plan),
            desc=f"backfill {self.venue}",
            unit="chunk",
            # None: tqdm shows the bar only on a terminal; a stream passed in always gets it.
            disable=(not self._progress) if self._progress is not None else (None if self._stream is None else False),
            file=self._stream,
            mininterval=0.5,
        ) as bar:
            for kind, symbol, a, b in plan:
                detail = f"{kind} {symbol} {a:%Y-%m-%d %H:%M}"
                bar.set_postfix_str(detail, refresh=False)
                report.rows[kind] += self._fetch_chunk(kind, symbol, a, b)
                if kind != "book_snapshots":
                    self._set_watermark(marks, kind, symbol, b)
                report.chunks += 1
                bar.update(1)
                if self._on_progress is not None:
                    self._on_progress(report.chunks, len(plan), detail)
        for kind in kinds:
            if kind in CANDLE_KINDS:
                self._repair_candles(kind, symbols, start, min(end, self._closed_until(kind)), report)
        return report

    def _fetch_chunk(self, kind: str, symbol: str, a: datetime, b: datetime) -> int:
        if kind in CANDLE_KINDS:
            frame = self.source.fetch_candles([symbol], kind.split("_", 1)[1], a, b)
            self.lake.write_candles(frame, self.venue, kind.split("_", 1)[1])
            return len(frame)
        assert isinstance(self.source, CcxtCandleSource)  # checked in run()
        if kind == "trades":
            trades = self.source.fetch_trades(symbol, a, b)
            self.lake.write_trades(trades, self.venue)
            return len(trades)
        book = self.source.fetch_book_snapshot(symbol, self.config.book_depth)
        self.lake.write_book_snapshots(book, self.venue)
        return len(book)

    # ---- gaps ----------------------------------------------------------------------------------
    def _holes(self, timeframe: str, symbols: list[str], start: datetime, until: datetime) -> dict[str, list[datetime]]:
        step = timeframe_delta(timeframe)
        stored = self.lake.read_candles(self.venue, timeframe, symbols, start, until)
        holes = {}
        for symbol in symbols:
            ts = stored.filter(pl.col("symbol") == symbol)["ts"]
            holes[symbol] = missing_bars(ts, step, start, until)
        return holes

    def _repair_candles(
        self, kind: str, symbols: list[str], start: datetime, until: datetime, report: BackfillReport
    ) -> None:
        """Re-fetch every hole once; record what the venue still lacks as outages or gaps."""
        timeframe = kind.split("_", 1)[1]
        step = timeframe_delta(timeframe)
        known = self.lake.venue_outages(self.venue, kind)
        known_starts = {(r["symbol"], r["start"]) for r in known.iter_rows(named=True)}
        holes = self._holes(timeframe, symbols, start, until)
        for symbol, times in holes.items():
            for first, end, _bars in _runs(times, step):
                if (symbol, first) in known_starts:
                    continue  # a recorded venue outage: the venue has said it has nothing there
                refetched = self.source.fetch_candles([symbol], timeframe, first, end)
                self.lake.write_candles(refetched, self.venue, timeframe)
                report.refetched_holes += 1
                report.refetched_bars += len(refetched)
                report.rows[kind] += len(refetched)
        remaining = {s: t for s, t in self._holes(timeframe, symbols, start, until).items() if t}
        if not remaining:
            return
        stored = self.lake.read_candles(self.venue, timeframe, symbols, start, until)
        first_bars = {
            str(row["symbol"]): row["first"]
            for row in stored.group_by("symbol").agg(pl.col("ts").min().alias("first")).iter_rows(named=True)
        }
        outages, gaps = classify_holes(
            remaining, first_bars, step, share=self.config.outage_share, edge_bars=self.config.outage_edge_bars
        )
        detected = datetime.now(UTC)
        rows = [
            (self.venue, kind, symbol, a, b, n, scope, detected)
            for scope, found in (("venue_outage", outages), ("symbol_gap", gaps))
            for symbol, a, b, n in found
        ]
        self.lake.record_gaps(pl.DataFrame(rows, schema=list(GAPS_SCHEMA), orient="row"))
        for scope, found, sink in (
            ("venue_outage", outages, report.venue_outages),
            ("symbol_gap", gaps, report.symbol_gaps),
        ):
            for symbol, a, b, n in found:
                sink.append({"symbol": symbol, "start": a.isoformat(), "end": b.isoformat(), "bars": n})
                log.warning("%s %s %s: %d bar(s) missing from %s (%s)", self.venue, kind, symbol, n, a, scope)


def load_market_metadata(
    source: CcxtCandleSource,
    lake: Lake,
    *,
    ttl: timedelta,
    refresh: bool = False,
    clock: Callable[[], datetime] | None = None,
) -> pl.DataFrame:
    """Instrument metadata (tick, lot, min notional, fees) from the venue's `load_markets`, cached in the lake.

    The cached table is used while it is younger than `ttl` (measured from its `fetched_at`); otherwise, or
    with `refresh`, the venue is asked again and the cache replaced. Never a hard-coded map (SPEC section 1).
    """
    now = (clock or (lambda: datetime.now(UTC)))()
    cached = lake.read_markets(source.venue)
    if cached is not None and not refresh and not cached.is_empty():
        fetched_at: datetime = cached["fetched_at"].max()  # type: ignore[assignment]
        if now - fetched_at < ttl:
            return cached
    fresh = source.market_metadata()
    lake.write_markets(fresh, source.venue)
    return fresh
