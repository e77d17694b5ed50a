"""The validation gate of a staged batch (SPEC section 4), shared by the nightly chain's validation stage
and `alphatide backfill`: validate the lake with the batch laid over it, then commit the batch or
quarantine it (its rows never enter the lake, the watermarks do not move)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from pipelines.config import Settings
from pipelines.errors import DataValidationError
from pipelines.lake import Lake
from pipelines.lake_staging import StagedLake
from pipelines.validation import ValidationReport, merge_reports, validate_book, validate_candles


def batch_candles(lake: Lake, manifest: dict[str, Any]) -> pl.DataFrame:
    return lake.read_candles(
        manifest["venue"],
        manifest["timeframe"],
        manifest["symbols"],
        datetime.fromisoformat(manifest["start"]),
        datetime.fromisoformat(manifest["end"]),
    )


def _validate_batch(lake: Lake, batch: dict[str, Any], settings: Settings) -> tuple[pl.DataFrame, ValidationReport]:
    candles = batch_candles(lake, batch)
    if candles.is_empty():
        raise DataValidationError(f"batch {batch['batch_id']} is empty: nothing was backfilled")
    report = validate_candles(
        candles,
        timeframe=batch["timeframe"],
        outages=lake.venue_outages(batch["venue"], f"candles_{batch['timeframe']}"),
        config=settings.validation,
    )
    book = lake.book_top(
        batch["venue"], batch["symbols"], datetime.fromisoformat(batch["start"]), datetime.fromisoformat(batch["end"])
    )
    if not book.is_empty():  # spread < max where book data exists (SPEC section 4)
        report = merge_reports(report, validate_book(book, settings.validation))
    return candles, report


def gate_batch(lake: Lake, staged: StagedLake, batch: dict[str, Any], settings: Settings) -> dict[str, int]:
    """Validate a staged batch (`batch`: batch_id, venue, timeframe, symbols, start, end); commit it when it
    passes (returns what was merged), else quarantine it and raise `DataValidationError` naming the
    report, the rules and the rows."""
    candles, report = _validate_batch(staged, batch, settings)
    if not report.success:
        folder = lake.quarantine(batch["batch_id"], staged.staged_candles(batch["venue"], batch["timeframe"]),
                                 report.to_dict())
        lake.discard_staging(batch["batch_id"], keep_in=folder / "staged")
        raise DataValidationError(
            f"batch {batch['batch_id']} quarantined (report {folder / 'report.json'}; nothing entered the lake, "
            f"the watermarks did not move): {report.summary()}"
        )
    return {**staged.commit(), "validated_rows": len(candles)}
