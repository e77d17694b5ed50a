"""The lake's chain tables: the dated universe (with its replaced versions), the features table,
quarantined batches, the staging folders and the JSON state handed between stages.

`ChainTables` is a mixin of `pipelines.lake.Lake` (which documents the layout under `<home>/lake`):
every method is reached as ``Lake(root).<method>`` and works under ``self.root``. Writes are atomic
(temporary file, then rename); times UTC.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.lake_io import CorruptFileError, atomic_write_parquet, atomic_write_text, read_parquet


class ChainTables:
    """Universe, features, quarantine, staging and stage state under ``root``."""

    root: Path

    # ---- dated tables ---------------------------------------------------------------------------
    def write_universe(self, frame: pl.DataFrame, as_of: date) -> Path:
        """Store the universe of `as_of`. Writing the same table again changes nothing; a different one
        (thresholds changed, data corrected) replaces it and the old one is kept under `history/`, named
        by when it was replaced (UTC), so every version a day ever had can be read back."""
        folder = self.root / "universe" / f"date={as_of.isoformat()}"
        target = folder / "universe.parquet"
        if target.exists():
            if read_parquet(target).equals(frame):
                return target
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            (folder / "history").mkdir(parents=True, exist_ok=True)
            os.replace(target, folder / "history" / f"replaced_{stamp}.parquet")
        atomic_write_parquet(frame, target)
        return target

    def universe_versions(self, as_of: date) -> list[Path]:
        """Earlier versions of a date's universe, oldest first (the current one is not among them)."""
        return sorted((self.root / "universe" / f"date={as_of.isoformat()}" / "history").glob("replaced_*.parquet"))

    def universe_dates(self) -> list[date]:
        return sorted(date.fromisoformat(p.name.split("=", 1)[1]) for p in (self.root / "universe").glob("date=*"))

    def read_universe(self, as_of: date | None = None) -> pl.DataFrame | None:
        """The universe of `as_of`, or of the newest stored date; None when none is stored."""
        dates = self.universe_dates()
        if not dates:
            return None
        day = as_of or dates[-1]
        path = self.root / "universe" / f"date={day.isoformat()}" / "universe.parquet"
        return read_parquet(path) if path.exists() else None

    def _staged_universe_path(self, as_of: date) -> Path:
        return self.root / "_staging" / "universe" / f"date={as_of.isoformat()}" / "universe.parquet"

    def stage_universe(self, frame: pl.DataFrame, as_of: date) -> Path:
        """Keep a selected universe aside; `publish_universe` makes it the served one (chain succeeded)."""
        path = self._staged_universe_path(as_of)
        atomic_write_parquet(frame, path)
        return path

    def publish_universe(self, as_of: date) -> Path | None:
        """Store the staged universe of `as_of` (`write_universe`); None when nothing is staged for it."""
        staged = self._staged_universe_path(as_of)
        if not staged.exists():
            return None
        target = self.write_universe(read_parquet(staged), as_of)
        staged.unlink()
        return target

    def features_path(self, timeframe: str) -> Path:
        return self.root / "features" / f"timeframe={timeframe}" / "features.parquet"

    def write_features(self, frame: pl.DataFrame, timeframe: str) -> Path:
        target = self.features_path(timeframe)
        atomic_write_parquet(frame, target)
        return target

    def read_features(self, timeframe: str) -> pl.DataFrame:
        return read_parquet(self.features_path(timeframe))

    def quarantine(self, batch_id: str, frame: pl.DataFrame, report: dict[str, Any]) -> Path:
        folder = self.root / "quarantine" / batch_id
        atomic_write_parquet(frame, folder / "candles.parquet")
        atomic_write_text(json.dumps(report, indent=2, default=str), folder / "report.json")
        return folder

    def staging_dir(self, batch_id: str) -> Path:
        return self.root / "_staging" / batch_id

    def discard_staging(self, batch_id: str, keep_in: Path | None = None) -> None:
        """Drop a staged batch (moved under `keep_in` when given, e.g. its quarantine folder)."""
        folder = self.staging_dir(batch_id)
        if not folder.exists():
            return
        if keep_in is None:
            shutil.rmtree(folder)
        else:
            keep_in.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(keep_in, ignore_errors=True)
            os.replace(folder, keep_in)

    # ---- state handed between stages ------------------------------------------------------------
    def write_state(self, name: str, payload: dict[str, Any]) -> None:
        atomic_write_text(
            json.dumps(payload, indent=2, sort_keys=True, default=str), self.root / "_state" / f"{name}.json"
        )

    def read_state(self, name: str) -> dict[str, Any] | None:
        path = self.root / "_state" / f"{name}.json"
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        except ValueError as exc:
            raise CorruptFileError(f"corrupt state file {path}: {exc} (delete it and re-run the stage)") from exc
