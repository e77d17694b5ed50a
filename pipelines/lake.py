"""The Parquet lake: market data partitioned by venue/kind/symbol/date, plus the dated tables of the chain.

Layout under `<home>/lake` (all times UTC, microsecond precision, timezone-aware):
    venue=<venue>/kind=candles_<tf>/symbol=<BASE-QUOTE>/date=<YYYY-MM-DD>/part.parquet   (candle schema)
    venue=<venue>/kind=trades/symbol=.../date=.../part.parquet          (`TRADES_SCHEMA`, aggressor side)
    venue=<venue>/kind=book_snapshots/symbol=.../date=.../part.parquet  (`BOOK_SNAPSHOT_SCHEMA`, long rows)
    gaps/venue=<venue>/kind=<kind>/gaps.parquet   (holes left after re-fetching; scope venue_outage|symbol_gap)
    markets/venue=<venue>/markets.parquet         (instrument metadata from `load_markets`, with fetched_at)
    universe/date=<YYYY-MM-DD>/universe.parquet
    features/timeframe=<tf>/features.parquet
    quarantine/<batch_id>/{candles.parquet,report.json,staged/}
    _staging/<batch_id>/...   (a backfilled batch before validation: `pipelines.lake_staging.StagedLake`)
    _staging/universe/date=<YYYY-MM-DD>/universe.parquet   (selected, published when the chain succeeds)
    _state/<name>.json   (manifests handed from one stage to the next, watermarks)
Writes go to a temporary file first and are renamed into place, so a crash never leaves half a file
and re-writing a day replaces it whole (idempotent). `Lake.duckdb()` exposes all of it as views.
A file that cannot be read raises `CorruptFileError` (an `OperatorError`) naming it.
The chain tables (universe, features, quarantine, staging, `_state`) are `Lake` methods defined in
`pipelines.lake_tables.ChainTables`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from pipelines.domain.candles import CANDLE_COLUMNS, TS_DTYPE, empty_candles, path_to_symbol, symbol_to_path
from pipelines.lake_io import (
    CorruptFileError,
    atomic_write_parquet,
    collect,
    merge_rows,
    partition_key,
    read_parquet,
    read_parquet_files,
)
from pipelines.lake_tables import ChainTables
from pipelines.marketdata.binance_capture import TRADES_SCHEMA

if TYPE_CHECKING:  # duckdb (about 25 MB) is imported only by the code that queries the lake with SQL
    import duckdb

BOOK_SNAPSHOT_SCHEMA: dict[str, pl.DataType] = {
    "venue": pl.String(),
    "symbol": pl.String(),
    "ts": TS_DTYPE,  # venue book time, or the time we took the snapshot when the venue sends none
    "update_id": pl.Int64(),  # venue sequence number (Binance lastUpdateId), null where there is none
    "side": pl.Enum(["bid", "ask"]),
    "level": pl.Int32(),  # 0 = best
    "price": pl.Float64(),
    "qty": pl.Float64(),
}
MARKETS_SCHEMA: dict[str, pl.DataType] = {
    "venue": pl.String(),
    "symbol": pl.String(),
    "venue_symbol": pl.String(),
    "base": pl.String(),
    "quote": pl.String(),
    "type": pl.String(),
    "active": pl.Boolean(),
    "tick_size": pl.Float64(),
    "lot_size": pl.Float64(),
    "min_qty": pl.Float64(),
    "min_notional": pl.Float64(),
    "maker_fee": pl.Float64(),
    "taker_fee": pl.Float64(),
    "fetched_at": TS_DTYPE,
}
GAP_SCOPES = ("venue_outage", "symbol_gap")
GAPS_SCHEMA: dict[str, pl.DataType] = {
    "venue": pl.String(),
    "kind": pl.String(),
    "symbol": pl.String(),
    "start": TS_DTYPE,  # first missing bar
    "end": TS_DTYPE,  # exclusive: the next bar the venue has
    "missing_bars": pl.Int64(),
    "scope": pl.Enum(list(GAP_SCOPES)),
    "detected_at": TS_DTYPE,
}
MARKET_KINDS = ("trades", "book_snapshots")
__all__ = ["BOOK_SNAPSHOT_SCHEMA", "GAPS_SCHEMA", "MARKETS_SCHEMA", "TRADES_SCHEMA", "CorruptFileError", "Lake"]


def _day_files(base: Path, symbols: Iterable[str] | None, start: date | None, end: date | None) -> list[Path]:
    """`part.parquet` files under `base` for the symbols (None: all) and the days in [start, end]."""
    wanted = (
        sorted(path_to_symbol(p.name.split("=", 1)[1]) for p in base.glob("symbol=*"))
        if symbols is None
        else list(symbols)
    )
    files: list[Path] = []
    for symbol in wanted:
        for day_dir in sorted((base / f"symbol={symbol_to_path(symbol)}").glob("date=*")):
            day = date.fromisoformat(day_dir.name.split("=", 1)[1])
            if (start is None or day >= start) and (end is None or day <= end):
                files.append(day_dir / "part.parquet")
    return files


class Lake(ChainTables):
    """The lake under ``root``: market data, gaps, markets and SQL views here; the chain tables
    (universe, features, quarantine, staging, state) from `pipelines.lake_tables.ChainTables`."""

    keep_conflicts = False  # a staged batch keeps clashing rows for validation to name (`StagedLake`)

    def __init__(self, root: Path):
        self.root = Path(root)

    # ---- candles -------------------------------------------------------------------------------
    def _candle_dir(self, venue: str, timeframe: str) -> Path:
        return self.root / f"venue={venue}" / f"kind=candles_{timeframe}"

    def write_candles(self, frame: pl.DataFrame, venue: str, timeframe: str) -> int:
        """Merge rows into their (symbol, day) partitions; returns the number of partitions written.

        A bar already stored is replaced by the new one with the same `ts`, so writing the same rows
        twice leaves identical files (idempotent) and an interrupted run can simply be re-run.
        """
        if frame.is_empty():
            return 0
        frame = frame.select(CANDLE_COLUMNS).with_columns(pl.col("ts").dt.date().alias("_date"))
        written = 0
        base = self._candle_dir(venue, timeframe)
        for (symbol, day), part in frame.group_by("symbol", "_date", maintain_order=True):
            target = base / f"symbol={symbol_to_path(str(symbol))}" / f"date={day}" / "part.parquet"
            # Merge with what is stored: an incremental run may bring only the end of a day.
            stored = read_parquet(target) if target.exists() else None
            merged = merge_rows(stored, part.drop("_date"), ["ts"], self.keep_conflicts)
            atomic_write_parquet(merged.sort("ts", maintain_order=True), target)
            written += 1
        return written

    def candle_symbols(self, venue: str, timeframe: str) -> list[str]:
        base = self._candle_dir(venue, timeframe)
        if not base.is_dir():
            return []
        return sorted(path_to_symbol(p.name.split("=", 1)[1]) for p in base.glob("symbol=*"))

    def candle_files(
        self,
        venue: str,
        timeframe: str,
        symbols: Iterable[str] | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> list[Path]:
        """Partition files for the symbols and the days in [start, end] (inclusive, UTC dates)."""
        return _day_files(self._candle_dir(venue, timeframe), symbols, start, end)

    def read_candles(
        self,
        venue: str,
        timeframe: str,
        symbols: Iterable[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pl.DataFrame:
        """Candles with ts in [start, end), sorted by symbol and time."""
        files = self.candle_files(
            venue, timeframe, symbols, start.date() if start else None, end.date() if end else None
        )
        if not files:
            return empty_candles()
        scan = read_parquet_files(files)
        if start is not None:
            scan = scan.filter(pl.col("ts") >= start)
        if end is not None:
            scan = scan.filter(pl.col("ts") < end)
        return collect(scan, files).sort("symbol", "ts", maintain_order=True)

    # ---- trades and book snapshots ------------------------------------------------------------
    def _kind_dir(self, venue: str, kind: str) -> Path:
        return self.root / f"venue={venue}" / f"kind={kind}"

    def _write_partitions(self, frame: pl.DataFrame, venue: str, kind: str, key: list[str], order: list[str]) -> int:
        if frame.is_empty():
            return 0
        frame = frame.with_columns(pl.col("ts").dt.date().alias("_date"))
        written = 0
        for (symbol, day), part in frame.group_by("symbol", "_date", maintain_order=True):
            target = (
                self._kind_dir(venue, kind) / f"symbol={symbol_to_path(str(symbol))}" / f"date={day}" / "part.parquet"
            )
            stored = read_parquet(target) if target.exists() else None
            merged = merge_rows(stored, part.drop("_date"), key, self.keep_conflicts)
            atomic_write_parquet(merged.sort(order, maintain_order=True), target)
            written += 1
        return written

    def _read_partitions(
        self,
        venue: str,
        kind: str,
        schema: dict[str, pl.DataType],
        symbols: Iterable[str] | None,
        start: datetime | None,
        end: datetime | None,
    ) -> pl.DataFrame:
        files = _day_files(self._kind_dir(venue, kind), symbols, start and start.date(), end and end.date())
        if not files:
            return pl.DataFrame(schema=schema)
        scan = read_parquet_files(files)
        if start is not None:
            scan = scan.filter(pl.col("ts") >= start)
        if end is not None:
            scan = scan.filter(pl.col("ts") < end)
        return collect(scan, files)

    def write_trades(self, frame: pl.DataFrame, venue: str) -> int:
        """Merge trades (`TRADES_SCHEMA`) into their (symbol, day) partitions, deduplicated by trade id."""
        frame = frame.select(pl.col(n).cast(t) for n, t in TRADES_SCHEMA.items())
        return self._write_partitions(frame, venue, "trades", partition_key("trades"), ["ts", "trade_id"])

    def read_trades(
        self,
        venue: str,
        symbols: Iterable[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pl.DataFrame:
        return self._read_partitions(venue, "trades", TRADES_SCHEMA, symbols, start, end).sort(
            "symbol", "ts", "trade_id"
        )

    def write_book_snapshots(self, frame: pl.DataFrame, venue: str) -> int:
        """Merge book snapshots (`BOOK_SNAPSHOT_SCHEMA`); one snapshot is identified by its time."""
        frame = frame.select(pl.col(n).cast(t) for n, t in BOOK_SNAPSHOT_SCHEMA.items())
        key = partition_key("book_snapshots")
        return self._write_partitions(frame, venue, "book_snapshots", key, key)

    def read_book_snapshots(
        self,
        venue: str,
        symbols: Iterable[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pl.DataFrame:
        return self._read_partitions(venue, "book_snapshots", BOOK_SNAPSHOT_SCHEMA, symbols, start, end).sort(
            "symbol", "ts", "side", "level"
        )

    def book_top(
        self,
        venue: str,
        symbols: Iterable[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pl.DataFrame:
        """Best bid and ask of every stored snapshot in [start, end): symbol, ts, bid, ask, spread ((ask-bid)/mid)."""
        book = self.read_book_snapshots(venue, symbols, start, end).filter(pl.col("level") == 0)
        top = (
            book.group_by("symbol", "ts")
            .agg(
                pl.col("price").filter(pl.col("side") == "bid").first().alias("bid"),
                pl.col("price").filter(pl.col("side") == "ask").first().alias("ask"),
            )
            .drop_nulls(["bid", "ask"])
        )
        return top.with_columns(
            ((pl.col("ask") - pl.col("bid")) / ((pl.col("ask") + pl.col("bid")) / 2)).alias("spread")
        ).sort("symbol", "ts")

    def daily_book_spreads(self, venue: str, symbols: Iterable[str] | None = None) -> pl.DataFrame:
        """Average relative spread per (symbol, UTC day) from stored book snapshots: symbol, day, spread."""
        return (
            self.book_top(venue, symbols)
            .group_by("symbol", pl.col("ts").dt.date().alias("day"))
            .agg(pl.col("spread").mean())
            .sort("symbol", "day")
        )

    def daily_trade_counts(
        self, venue: str, symbols: Iterable[str] | None = None, min_span: timedelta = timedelta(hours=23)
    ) -> pl.DataFrame:
        """Trades per (symbol, UTC day) from stored trades: symbol, day, trade_count.

        Only days whose stored trades span at least `min_span` count: a day backfilled for an hour would
        otherwise look like a day with almost no trades.
        """
        return (
            self.read_trades(venue, symbols)
            .group_by("symbol", pl.col("ts").dt.date().alias("day"))
            .agg(pl.len().cast(pl.Int64).alias("trade_count"), (pl.col("ts").max() - pl.col("ts").min()).alias("_span"))
            .filter(pl.col("_span") >= min_span)
            .drop("_span")
            .sort("symbol", "day")
        )

    # ---- gaps and venue outages -----------------------------------------------------------------
    def _gaps_path(self, venue: str, kind: str) -> Path:
        return self.root / "gaps" / f"venue={venue}" / f"kind={kind}" / "gaps.parquet"

    def record_gaps(self, frame: pl.DataFrame) -> int:
        """Store holes (`GAPS_SCHEMA`) the venue itself has; a hole already recorded is replaced."""
        if frame.is_empty():
            return 0
        frame = frame.select(pl.col(n).cast(t) for n, t in GAPS_SCHEMA.items())
        for (venue, kind), part in frame.group_by("venue", "kind"):
            path = self._gaps_path(str(venue), str(kind))
            rows = pl.concat([read_parquet(path), part]) if path.exists() else part
            atomic_write_parquet(rows.unique(subset=["symbol", "start"], keep="last").sort("start", "symbol"), path)
        return len(frame)

    def read_gaps(self, venue: str, kind: str, scope: str | None = None) -> pl.DataFrame:
        path = self._gaps_path(venue, kind)
        gaps = read_parquet(path) if path.exists() else pl.DataFrame(schema=GAPS_SCHEMA)
        return gaps.filter(pl.col("scope") == scope) if scope is not None else gaps

    def venue_outages(self, venue: str, kind: str) -> pl.DataFrame:
        """Recorded venue-wide outages (the same hole in every symbol): one row per symbol and hole."""
        return self.read_gaps(venue, kind, "venue_outage")

    # ---- market metadata ------------------------------------------------------------------------
    def _markets_path(self, venue: str) -> Path:
        return self.root / "markets" / f"venue={venue}" / "markets.parquet"

    def write_markets(self, frame: pl.DataFrame, venue: str) -> Path:
        path = self._markets_path(venue)
        atomic_write_parquet(frame.select(pl.col(n).cast(t) for n, t in MARKETS_SCHEMA.items()), path)
        return path

    def read_markets(self, venue: str) -> pl.DataFrame | None:
        path = self._markets_path(venue)
        return read_parquet(path) if path.exists() else None

    # ---- SQL ------------------------------------------------------------------------------------
    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with views over the lake (all venues, `venue` column added):

        `candles_<tf>` per stored timeframe, `trades`, `book_snapshots`, `gaps` (and `venue_outages`),
        `markets`, `universe` (every stored date).
        """
        import duckdb

        con = duckdb.connect()
        kinds: dict[str, list[str]] = {}
        for kind_dir in sorted(self.root.glob("venue=*/kind=*")):
            venue = kind_dir.parent.name.split("=", 1)[1]
            kind = kind_dir.name.split("=", 1)[1]
            pattern = str(kind_dir / "symbol=*" / "date=*" / "part.parquet")
            if not any(kind_dir.glob("symbol=*/date=*/part.parquet")):
                continue
            select = f"SELECT * FROM read_parquet('{pattern}', hive_partitioning=false)"
            if kind.startswith("candles_"):
                select = f"SELECT '{venue}' AS venue, * FROM read_parquet('{pattern}', hive_partitioning=false)"
            kinds.setdefault(kind, []).append(select)
        for kind, selects in kinds.items():
            con.execute(f"CREATE OR REPLACE VIEW {kind} AS " + " UNION ALL ".join(selects))
        tables = {
            "gaps": "gaps/venue=*/kind=*/gaps.parquet",
            "markets": "markets/venue=*/markets.parquet",
            "universe": "universe/date=*/universe.parquet",
        }
        for view, pattern in tables.items():
            if any(self.root.glob(pattern)):
                con.execute(
                    f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM "
                    f"read_parquet('{self.root / pattern}', hive_partitioning=false, union_by_name=true)"
                )
        if any(self.root.glob(tables["gaps"])):
            con.execute("CREATE OR REPLACE VIEW venue_outages AS SELECT * FROM gaps WHERE scope = 'venue_outage'")
        return con
