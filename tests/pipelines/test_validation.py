from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from pipelines import nightly
from pipelines.config import ValidationConfig, load_settings
from pipelines.errors import DataValidationError
from pipelines.lake import BOOK_SNAPSHOT_SCHEMA, GAPS_SCHEMA, Lake
from pipelines.sources.synthetic import SyntheticSource
from pipelines.validation import JUMP_RULE, SPACING_RULE, validate_book, validate_candles

AS_OF = datetime(2026, 4, 1, tzinfo=UTC)


def _candles() -> pl.DataFrame:
    source = SyntheticSource(as_of=AS_OF, days=2, n_symbols=2)
    return source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=2), AS_OF)


def test_clean_batch_passes() -> None:
    report = validate_candles(_candles())
    assert report.success, report.summary()
    assert report.rows == 2 * 576 and report.symbols == 2


def test_ohlc_violation_names_the_rule_and_the_row() -> None:
    candles = _candles()
    bad_ts = candles.filter(pl.col("symbol") == "ETH/USDT")["ts"][10]
    broken = candles.with_columns(
        pl.when((pl.col("symbol") == "ETH/USDT") & (pl.col("ts") == bad_ts))
        .then(pl.col("low") * 0.5)
        .otherwise(pl.col("high"))
        .alias("high")
    )
    report = validate_candles(broken)
    assert not report.success
    rules = {(f.symbol, f.rule, f.column) for f in report.failures}
    assert ("ETH/USDT", "expect_column_pair_values_a_to_be_greater_than_b", "high >= low") in rules
    failure = next(f for f in report.failures if f.column == "high >= low")
    assert failure.count == 1 and failure.rows[0]["ts"] == bad_ts.isoformat()
    assert all(f.symbol == "ETH/USDT" for f in report.failures)


def test_duplicate_and_out_of_order_timestamps_fail() -> None:
    candles = _candles().filter(pl.col("symbol") == "BTC/USDT")
    duplicated = pl.concat([candles.head(5), candles.slice(4, 1), candles.slice(5)])
    report = validate_candles(duplicated)
    rules = {f.rule for f in report.failures}
    assert {"expect_column_values_to_be_unique", "expect_column_values_to_be_increasing"} <= rules


def test_non_positive_price_fails() -> None:
    candles = _candles().with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(0.0).otherwise(pl.col("low")).alias("low")
    )
    report = validate_candles(candles)
    assert any(f.rule == "expect_column_values_to_be_between" and f.column == "low" for f in report.failures)


def _outage(symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        [
            (
                "synthetic",
                "candles_5m",
                symbol,
                start,
                end,
                int((end - start) / timedelta(minutes=5)),
                "venue_outage",
                AS_OF,
            )
        ],
        schema=GAPS_SCHEMA,
        orient="row",
    )


def test_bar_spacing_must_equal_the_timeframe_except_recorded_outages() -> None:
    candles = _candles()
    btc = candles.filter(pl.col("symbol") == "BTC/USDT")
    hole_start, hole_end = btc["ts"][100], btc["ts"][103]  # bars 100..102 missing
    holed = candles.filter(~((pl.col("symbol") == "BTC/USDT") & pl.col("ts").is_between(hole_start, hole_end, "left")))

    report = validate_candles(holed, timeframe="5m")

    assert [(f.symbol, f.column, f.count) for f in report.failures] == [("BTC/USDT", "bar_spacing_s", 1)]
    failure = report.failures[0]
    assert failure.description == SPACING_RULE
    assert failure.rows[0]["ts"] == hole_end.isoformat() and failure.rows[0]["bar_spacing_s"] == 4 * 300
    assert validate_candles(holed, timeframe="5m", outages=_outage("BTC/USDT", hole_start, hole_end)).success
    # An outage recorded for another symbol excuses nothing here.
    assert not validate_candles(holed, timeframe="5m", outages=_outage("ETH/USDT", hole_start, hole_end)).success


def test_a_price_jump_without_volume_fails_and_with_volume_passes() -> None:
    candles = _candles().filter(pl.col("symbol") == "ETH/USDT")
    i = 400
    jump = pl.int_range(pl.len()) == i
    spiked = candles.with_columns(
        pl.when(jump).then(pl.col("close") * 1.5).otherwise(pl.col("close")).alias("close"),
    ).with_columns(pl.when(jump).then(pl.col("close")).otherwise(pl.col("high")).alias("high"))

    silent = validate_candles(
        spiked.with_columns(pl.when(jump).then(0.0).otherwise(pl.col("volume")).alias("volume")), timeframe="5m"
    )
    traded = validate_candles(spiked, timeframe="5m")

    assert [(f.column, f.count) for f in silent.failures] == [("jump_without_volume", 1)]
    assert silent.failures[0].description == JUMP_RULE
    assert silent.failures[0].rows[0]["ts"] == candles["ts"][i].isoformat()
    assert traded.success, traded.summary()


def test_book_spread_must_stay_under_the_limit() -> None:
    top = pl.DataFrame(
        {
            "symbol": ["BTC/USDT", "BTC/USDT", "ALT/USDT"],
            "ts": [AS_OF, AS_OF + timedelta(seconds=1), AS_OF],
            "bid": [100.0, 100.0, 1.0],
            "ask": [100.01, 100.02, 1.2],
        }
    ).with_columns(((pl.col("ask") - pl.col("bid")) / ((pl.col("ask") + pl.col("bid")) / 2)).alias("spread"))
    report = validate_book(top)
    assert [(f.symbol, f.column, f.count) for f in report.failures] == [("ALT/USDT", "spread", 1)]
    assert validate_book(top, ValidationConfig(max_spread_pct=0.5)).success


def test_the_nightly_gate_checks_book_spreads_where_book_data_exists(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(
        {
            "ALPHATIDE_SOURCE": "synthetic",
            "ALPHATIDE_DATA__HISTORY_DAYS": "2",
            "ALPHATIDE_DATA__SYNTHETIC_SYMBOLS": "4",
        },
        home=tmp_path,
    )
    nightly.run_universe(settings, now=AS_OF)
    batch = nightly.run_backfill(settings)
    lake = Lake(settings.lake_dir)
    inside = datetime.fromisoformat(batch["end"]) - timedelta(hours=3)
    wide = pl.DataFrame(
        [
            ("synthetic", "ETH/USDT", inside, None, side, 0, price, 1.0)
            for side, price in (("bid", 90.0), ("ask", 110.0))
        ],
        schema=list(BOOK_SNAPSHOT_SCHEMA),
        orient="row",
    )
    lake.write_book_snapshots(wide, "synthetic")

    with pytest.raises(DataValidationError, match=r"ETH/USDT: expect_column_values_to_be_between \(spread\)"):
        nightly.run_validation(settings)

    assert lake.read_state("validated") is None
    report = next((settings.lake_dir / "quarantine").glob("*/report.json")).read_text()
    assert '"column": "spread"' in report
