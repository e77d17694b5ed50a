"""File-level helpers of the lake: atomic writes, reads that name a corrupt file, merging rows by key."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import polars as pl

from pipelines.errors import OperatorError

# Rows are the same record when these columns match (candles: one bar per `ts`).
PARTITION_KEYS: dict[str, list[str]] = {"trades": ["trade_id"], "book_snapshots": ["ts", "side", "level"]}
log = logging.getLogger(__name__)


class CorruptFileError(OperatorError):
    """A lake file cannot be read (truncated, not Parquet): re-fetch or delete it; retrying cannot help."""


def partition_key(kind: str) -> list[str]:
    return PARTITION_KEYS.get(kind, ["ts"])


def read_parquet_files(files: list[Path]) -> pl.LazyFrame:
    """A lazy scan of `files`; a file whose footer cannot be read raises `CorruptFileError` naming it."""
    # The footer through polars, not pyarrow: pyarrow is about 50 MB of a serving process that reads the lake.
    for path in files:
        try:
            pl.read_parquet_schema(path)
        except (pl.exceptions.ComputeError, OSError, ValueError) as exc:
            raise CorruptFileError(f"corrupt lake file {path}: {exc} (delete it and re-run the backfill)") from exc
    return pl.scan_parquet(files, hive_partitioning=False)


def collect(scan: pl.LazyFrame, files: list[Path]) -> pl.DataFrame:
    try:
        return scan.collect()
    except (pl.exceptions.ComputeError, OSError) as exc:
        raise CorruptFileError(f"unreadable lake data in one of {len(files)} file(s) from {files[0]}: {exc}") from exc


def read_parquet(path: Path) -> pl.DataFrame:
    return collect(read_parquet_files([path]), [path])


def merge_rows(stored: pl.DataFrame | None, new: pl.DataFrame, key: list[str], keep_conflicts: bool) -> pl.DataFrame:
    """`new` merged over `stored` by `key`: a new row replaces the stored one with the same key.

    Exact duplicates inside `new` are dropped. Two new rows with the same key and different values are
    a data fault: with `keep_conflicts` both are kept (validation then names them); otherwise the later
    one wins and a warning names the key.
    """
    new = new.unique(maintain_order=True)
    clashes = new.filter(new.select(key).is_duplicated())
    if not clashes.is_empty() and not keep_conflicts:
        log.warning("%d row(s) share a key %s with different values; the later one is kept: %s",
                    len(clashes), key, clashes.head(4).to_dicts())
        new = new.unique(subset=key, keep="last", maintain_order=True)
    if stored is None or stored.is_empty():
        return new
    return pl.concat([stored.join(new.select(key).unique(), on=key, how="anti"), new], how="vertical_relaxed")


def atomic_write_parquet(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    frame.write_parquet(tmp, compression="zstd", statistics=True)
    os.replace(tmp, path)


def atomic_write_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
