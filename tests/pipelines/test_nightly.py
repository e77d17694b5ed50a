"""The stages of the nightly chain, called directly (no Airflow) on a temporary home."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from pipelines import nightly
from pipelines.config import Settings, load_settings
from pipelines.errors import DataValidationError, OperatorError
from pipelines.lake import Lake

NOW = datetime(2026, 9, 10, 13, 7, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return load_settings(
        {
            "ALPHATIDE_SOURCE": "synthetic",
            "ALPHATIDE_DATA__HISTORY_DAYS": "4",
            "ALPHATIDE_DATA__SYNTHETIC_SYMBOLS": "5",
            "ALPHATIDE_UNIVERSE__SIZE": "1",
        },
        home=tmp_path,
    )


def test_universe_then_backfill_fill_the_lake(settings: Settings) -> None:
    universe = nightly.run_universe(settings, now=NOW)
    assert universe["date"] == "2026-09-10" and universe["source"] == "synthetic"
    assert universe["symbols"][:4] == ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]
    assert len(universe["symbols"]) == 5

    batch = nightly.run_backfill(settings)

    lake = Lake(settings.lake_dir)
    stored = lake.read_candles("synthetic", "5m")
    assert batch["new_rows"] == len(stored) == 5 * 4 * 288
    assert stored["ts"].max() < datetime(2026, 9, 10, tzinfo=UTC)


def test_backfill_is_incremental_and_idempotent(settings: Settings) -> None:
    nightly.run_universe(settings, now=NOW)
    nightly.run_backfill(settings)
    lake = Lake(settings.lake_dir)
    before = {p: p.read_bytes() for p in settings.lake_dir.rglob("part.parquet")}

    again = nightly.run_backfill(settings)

    assert again["new_rows"] == 0  # the watermarks say everything is there
    assert {p: p.read_bytes() for p in settings.lake_dir.rglob("part.parquet")} == before
    assert len(lake.read_candles("synthetic", "5m")) == 5 * 4 * 288


def test_a_failing_batch_is_quarantined_and_nothing_downstream_runs(settings: Settings) -> None:
    nightly.run_universe(settings, now=NOW)
    nightly.run_backfill(settings)
    # Corrupt one stored bar: high below low.
    part = sorted(settings.lake_dir.rglob("symbol=ETH-USDT/date=*/part.parquet"))[1]
    frame = pl.read_parquet(part)
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(pl.col("low") * 0.9).otherwise(pl.col("high")).alias("high")
    )
    frame.write_parquet(part)

    with pytest.raises(DataValidationError, match=r"quarantined .*ETH/USDT: expect_column_pair_values"):
        nightly.run_validation(settings)

    lake = Lake(settings.lake_dir)
    assert lake.read_state("validated") is None
    reports = list((settings.lake_dir / "quarantine").glob("*/report.json"))
    assert len(reports) == 1 and "high >= low" in reports[0].read_text()
    with pytest.raises(OperatorError, match="run the validation stage first"):
        nightly.run_features(settings)


def test_operator_errors_fail_the_airflow_task_without_retry() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.airflow_wiring import run_stage

    def broken() -> dict[str, object]:
        raise DataValidationError("batch x quarantined")

    with pytest.raises(AirflowFailException, match="DataValidationError: batch x quarantined"):
        run_stage(broken)
