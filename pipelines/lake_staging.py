"""A backfilled batch kept aside until it passes validation (SPEC section 4: a gate, not a log line).

`StagedLake(lake, batch_id)` is a `Lake` whose writes (candles, trades, book snapshots, gaps, market
metadata, watermarks) land under `<lake>/_staging/<batch_id>/`, and whose reads show the lake with the
staged rows laid over it (a staged row replaces a stored one with the same key). The backfill writes
through it; the validation stage reads the batch through it and then either `commit()`s it (rows merged
into the lake by key, gaps recorded, watermarks moved: only now) or quarantines it
(`Lake.discard_staging(batch_id, keep_in=...)`): rows of a failing batch never enter the lake, and the
watermarks stay where they were, so a corrected re-run fetches the same window again.

Inside a staged batch two rows with the same key and different values are both kept (`keep_conflicts`),
so the validation's unique-timestamp rule names them instead of one being dropped silently.
Commit is idempotent (rows merge by key), so a commit interrupted half-way is completed by running it again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import polars as pl

from pipelines.domain.candles import empty_candles
from pipelines.lake import GAPS_SCHEMA, Lake
from pipelines.lake_io import atomic_write_parquet, merge_rows, partition_key, read_parquet

WATERMARKS = "watermarks"


def _overlay(stored: pl.DataFrame, staged: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    if staged.is_empty():
        return stored
    if stored.is_empty():
        return staged
    kept = stored.join(staged.select(key).unique(), on=key, how="anti")
    return pl.concat([kept, staged], how="vertical_relaxed")


class StagedLake(Lake):
    keep_conflicts = True

    def __init__(self, lake: Lake, batch_id: str):
        super().__init__(lake.staging_dir(batch_id))
        self.base = lake
        self.batch_id = batch_id

    def exists(self) -> bool:
        return self.root.is_dir()

    # ---- reads: the lake with the staged rows over it --------------------------------------------
    def candle_symbols(self, venue: str, timeframe: str) -> list[str]:
        return sorted(set(super().candle_symbols(venue, timeframe)) | set(self.base.candle_symbols(venue, timeframe)))

    def read_candles(
        self,
        venue: str,
        timeframe: str,
        symbols: Iterable[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pl.DataFrame:
        symbols = list(symbols) if symbols is not None else self.candle_symbols(venue, timeframe)
        stored = self.base.read_candles(venue, timeframe, symbols, start, end)
        staged = super().read_candles(venue, timeframe, symbols, start, end)
        if stored.is_empty() and staged.is_empty():
            return empty_candles()
        return _overlay(stored, staged, ["symbol", "ts"]).sort("symbol", "ts", maintain_order=True)

    def staged_candles(self, venue: str, timeframe: str) -> pl.DataFrame:
        """Only the rows this batch brought."""
        return super().read_candles(venue, timeframe)

    def _read_partitions(
        self,
        venue: str,
        kind: str,
        schema: dict[str, pl.DataType],
        symbols: Iterable[str] | None,
        start: datetime | None,
        end: datetime | None,
    ) -> pl.DataFrame:
        symbols = list(symbols) if symbols is not None else None
        stored = self.base._read_partitions(venue, kind, schema, symbols, start, end)
        staged = super()._read_partitions(venue, kind, schema, symbols, start, end)
        return _overlay(stored, staged, ["symbol", *partition_key(kind)])

    def read_gaps(self, venue: str, kind: str, scope: str | None = None) -> pl.DataFrame:
        stored = self.base.read_gaps(venue, kind, scope)
        return _overlay(stored, super().read_gaps(venue, kind, scope), ["symbol", "start"])

    def read_markets(self, venue: str) -> pl.DataFrame | None:
        staged = super().read_markets(venue)
        return staged if staged is not None else self.base.read_markets(venue)

    def read_state(self, name: str) -> dict[str, Any] | None:
        staged = super().read_state(name)
        return staged if staged is not None else self.base.read_state(name)

    # ---- commit --------------------------------------------------------------------------------
    def commit(self) -> dict[str, int]:
        """Merge the staged batch into the lake, then move the watermarks; returns what was merged."""
        counts = {"partitions": 0, "gaps": 0}
        for part in sorted(self.root.glob("venue=*/kind=*/symbol=*/date=*/part.parquet")):
            relative = part.relative_to(self.root)
            kind = relative.parts[1].split("=", 1)[1]
            target = self.base.root / relative
            counts["partitions"] += 1
            if not target.exists():  # a new day: the staged file is the partition (same schema, sorted)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, target)
                continue
            key = partition_key(kind)
            merged = merge_rows(read_parquet(target), read_parquet(part), key, keep_conflicts=False)
            atomic_write_parquet(merged.sort(key if kind != "trades" else ["ts", "trade_id"]), target)
        for gaps in sorted(self.root.glob("gaps/venue=*/kind=*/gaps.parquet")):
            counts["gaps"] += self.base.record_gaps(read_parquet(gaps).select(list(GAPS_SCHEMA)))
        for markets in sorted(self.root.glob("markets/venue=*/markets.parquet")):
            target = self.base.root / markets.relative_to(self.root)
            atomic_write_parquet(read_parquet(markets), target)
        self._commit_watermarks()
        self.base.discard_staging(self.batch_id)
        return counts

    def _commit_watermarks(self) -> None:
        staged = Lake.read_state(self, WATERMARKS)
        if not staged:
            return
        marks = dict(self.base.read_state(WATERMARKS) or {})
        for key, value in staged.items():
            if key not in marks or datetime.fromisoformat(marks[key]) < datetime.fromisoformat(value):
                marks[key] = value
        self.base.write_state(WATERMARKS, marks)

    def manifest(self) -> dict[str, Any]:
        """What is staged, for reports: files per kind."""
        files: dict[str, int] = {}
        for part in self.root.glob("venue=*/kind=*/symbol=*/date=*/part.parquet"):
            kind = part.relative_to(self.root).parts[1].split("=", 1)[1]
            files[kind] = files.get(kind, 0) + 1
        return {"batch_id": self.batch_id, "root": str(self.root), "files": files}
