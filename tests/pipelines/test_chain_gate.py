"""The validation gate keeps bad data out of the lake: a recorded folder with a duplicated bar fails with
both rows named, leaves the lake and the watermarks untouched, and the corrected folder then passes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines import nightly
from pipelines.config import Settings, load_settings
from pipelines.errors import DataValidationError
from pipelines.lake import Lake
from pipelines.sources.synthetic import SyntheticSource

AS_OF = datetime(2026, 5, 20, tzinfo=UTC)
DUP_TS = AS_OF - timedelta(days=1, hours=3)


def _recording(folder: Path, duplicate: bool) -> None:
    """A replay folder (`*_5m_*.parquet`, Binance column names) of seeded bars, optionally with one bar of
    ETH/USDT recorded twice with different values (the second one 2% higher)."""
    source = SyntheticSource(as_of=AS_OF, days=70, n_symbols=5)
    bars = source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=70), AS_OF)
    if duplicate:
        twin = bars.filter((pl.col("symbol") == "ETH/USDT") & (pl.col("ts") == DUP_TS)).with_columns(
            (pl.col(c) * 1.02).alias(c) for c in ("open", "high", "low", "close")
        )
        bars = pl.concat([bars, twin])
    folder.mkdir(parents=True, exist_ok=True)
    bars.rename({"ts": "open_time"}).write_parquet(folder / "recorded_5m_test.parquet")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    _recording(tmp_path / "replay", duplicate=True)
    return load_settings(
        {
            "ALPHATIDE_SOURCE": "replay",
            "ALPHATIDE_REPLAY_DIR": str(tmp_path / "replay"),
            "ALPHATIDE_DATA__HISTORY_DAYS": "3",
            "ALPHATIDE_UNIVERSE__SIZE": "1",
        },
        home=tmp_path / "home",
    )


def test_a_duplicated_bar_fails_validation_with_both_rows_named_and_a_corrected_rerun_passes(
    settings: Settings,
) -> None:
    lake = Lake(settings.lake_dir)
    nightly.run_universe(settings)
    nightly.run_backfill(settings)

    with pytest.raises(DataValidationError, match=r"ETH/USDT: expect_column_values_to_be_unique \(ts\)") as failed:
        nightly.run_validation(settings)

    assert DUP_TS.isoformat() in str(failed.value)  # the message names the row, not only the rule
    report = json.loads(next((settings.lake_dir / "quarantine").glob("*/report.json")).read_text())
    unique = next(f for f in report["failures"] if f["rule"] == "expect_column_values_to_be_unique")
    assert [r["ts"] for r in unique["rows"]] == [DUP_TS.isoformat()] * 2  # both rows, neither dropped
    assert len({r["close"] for r in unique["rows"]}) == 2
    assert lake.read_candles(settings.venue, "5m").is_empty()  # nothing of the batch entered the lake
    assert lake.read_state("watermarks") is None

    _recording(settings.replay_dir, duplicate=False)  # type: ignore[arg-type]  # the operator fixes the file
    nightly.run_backfill(settings)
    validated = nightly.run_validation(settings)

    stored = lake.read_candles(settings.venue, "5m")
    assert validated["validated_rows"] == len(stored) == 5 * 3 * 288
    assert stored.filter((pl.col("symbol") == "ETH/USDT") & (pl.col("ts") == DUP_TS)).height == 1
    assert set(lake.read_state("watermarks").values()) == {AS_OF.isoformat()}  # type: ignore[union-attr]
