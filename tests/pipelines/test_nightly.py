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


def test_universe_backfill_and_validation_fill_the_lake_only_on_commit(settings: Settings) -> None:
    universe = nightly.run_universe(settings, now=NOW)
    assert universe["date"] == "2026-09-10" and universe["source"] == "synthetic"
    assert universe["symbols"][:4] == ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]
    assert len(universe["symbols"]) == 5
    lake = Lake(settings.lake_dir)

    batch = nightly.run_backfill(settings)

    assert lake.read_candles("synthetic", "5m").is_empty()  # staged, not in the lake yet
    assert lake.read_state("watermarks") is None
    nightly.run_validation(settings)
    stored = lake.read_candles("synthetic", "5m")
    assert batch["new_rows"] == len(stored) == 5 * 4 * 288
    assert stored["ts"].max() < datetime(2026, 9, 10, tzinfo=UTC)
    assert lake.read_state("watermarks") == {
        f"synthetic/candles_5m/{s}": "2026-09-10T00:00:00+00:00" for s in universe["symbols"]
    }
    assert not lake.staging_dir(batch["batch_id"]).exists()


def test_backfill_is_incremental_and_idempotent(settings: Settings) -> None:
    nightly.run_universe(settings, now=NOW)
    nightly.run_backfill(settings)
    nightly.run_validation(settings)
    lake = Lake(settings.lake_dir)
    before = {p: p.read_bytes() for p in settings.lake_dir.rglob("part.parquet")}

    again = nightly.run_backfill(settings)
    nightly.run_validation(settings)

    assert again["new_rows"] == 0  # the watermarks say everything is there
    assert {p: p.read_bytes() for p in settings.lake_dir.rglob("part.parquet")} == before
    assert len(lake.read_candles("synthetic", "5m")) == 5 * 4 * 288


def test_an_interrupted_backfill_resumes_its_staged_batch(settings: Settings) -> None:
    nightly.run_universe(settings, now=NOW)
    first = nightly.run_backfill(settings)  # staged; validation has not run (say the worker died)

    again = nightly.run_backfill(settings)

    assert again["batch_id"] == first["batch_id"] and again["new_rows"] == 0


def test_a_failing_batch_is_quarantined_and_nothing_downstream_runs(settings: Settings) -> None:
    nightly.run_universe(settings, now=NOW)
    nightly.run_backfill(settings)
    # Corrupt one staged bar: high below low.
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
    assert lake.read_candles("synthetic", "5m").is_empty()  # no row of the failing batch entered the lake
    assert lake.read_state("watermarks") is None  # so the re-run fetches the same window again
    reports = list((settings.lake_dir / "quarantine").glob("*/report.json"))
    assert len(reports) == 1 and "high >= low" in reports[0].read_text()
    assert list((settings.lake_dir / "quarantine").glob("*/staged/venue=synthetic/kind=candles_5m/symbol=ETH-USDT"))
    with pytest.raises(OperatorError, match="run the validation stage first"):
        nightly.run_features(settings)

    # The source's data is fine: the re-run fetches it again, it passes and enters the lake.
    again = nightly.run_backfill(settings)
    nightly.run_validation(settings)

    assert again["new_rows"] == 5 * 4 * 288
    assert len(lake.read_candles("synthetic", "5m")) == 5 * 4 * 288


def test_operator_errors_fail_the_airflow_task_without_retry() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.airflow_wiring import run_stage

    def broken() -> dict[str, object]:
        raise DataValidationError("batch x quarantined")

    with pytest.raises(AirflowFailException, match="DataValidationError: batch x quarantined"):
        run_stage(broken)


def test_only_transient_errors_are_left_to_airflow_retries() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.airflow_wiring import run_stage
    from pipelines.errors import SourceUnavailableError

    def flaky() -> dict[str, object]:
        raise SourceUnavailableError("binance timed out")

    def buggy() -> dict[str, object]:
        raise KeyError("symbol")

    with pytest.raises(SourceUnavailableError):  # not converted: Airflow retries it
        run_stage(flaky)
    with pytest.raises(AirflowFailException, match="unexpected KeyError"):
        run_stage(buggy)


def test_a_corrupt_lake_file_is_an_operator_error_naming_the_file(settings: Settings) -> None:
    from pipelines.lake import CorruptFileError

    nightly.run_universe(settings, now=NOW)
    nightly.run_backfill(settings)
    part = sorted(settings.lake_dir.rglob("symbol=SOL-USDT/date=*/part.parquet"))[0]
    part.write_bytes(part.read_bytes()[:100])  # truncated

    with pytest.raises(CorruptFileError, match=f"corrupt lake file {part}") as raised:
        nightly.run_validation(settings)
    assert isinstance(raised.value, OperatorError)


def test_the_universe_is_published_only_when_the_chain_succeeds(settings: Settings) -> None:
    lake = Lake(settings.lake_dir)
    nightly.run_universe(settings, now=NOW)
    nightly.run_backfill(settings)
    part = sorted(settings.lake_dir.rglob("symbol=BTC-USDT/date=*/part.parquet"))[0]
    pl.read_parquet(part).with_columns(pl.lit(-1.0).alias("low")).write_parquet(part)
    with pytest.raises(DataValidationError):
        nightly.run_validation(settings)

    assert lake.read_universe() is None  # the failed chain published nothing
    assert lake.universe_dates() == []
