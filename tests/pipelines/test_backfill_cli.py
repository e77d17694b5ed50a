"""`alphatide backfill` and `alphatide universe` end to end on the synthetic source in a temporary home."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.lake import Lake


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ALPHATIDE_HOME", str(tmp_path))
    monkeypatch.setenv("ALPHATIDE_SOURCE", "synthetic")
    monkeypatch.setenv("ALPHATIDE_DATA__SYNTHETIC_SYMBOLS", "6")
    return tmp_path


def test_universe_json_has_one_object_per_candidate(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    day = (datetime.now(UTC) - timedelta(days=1)).date()

    code = main(["universe", "--date", day.isoformat(), "--json"])

    assert code == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(rows) == 6
    assert all({"symbol", "tier", "score", "reasons"} <= set(r) for r in rows)
    by_symbol = {r["symbol"]: r for r in rows}
    assert by_symbol["BTC/USDT"]["tier"] == 1 and by_symbol["BTC/USDT"]["reasons"][0].startswith("tier 1: major")
    assert all(r["tier"] in (1, 2, 3, None) and isinstance(r["reasons"], list) and r["reasons"] for r in rows)
    # Stored as that date's universe: asking again reads it back unchanged.
    assert Lake(home / "lake").universe_dates() == [day]
    main(["universe", "--date", day.isoformat(), "--json"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == rows


def test_backfill_command_fills_the_lake_and_resumes(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    until = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = until - timedelta(days=2)
    argv = ["backfill", "--symbols", "BTC/USDT,ETH/USDT", "--kinds", "candles", "--timeframe", "1h"]
    argv += ["--since", since.date().isoformat(), "--until", until.date().isoformat(), "--no-progress"]

    def report() -> dict:
        out = capsys.readouterr().out
        return json.loads(out[out.find("{") :])  # type: ignore[no-any-return]

    assert main(argv) == 0
    first = report()
    assert first["new_rows"] == 2 * 48 and first["venue_outages"] == []
    assert len(Lake(home / "lake").read_candles("synthetic", "1h")) == 2 * 48

    assert main(argv) == 0  # the watermarks say everything is there
    again = report()
    assert again["new_rows"] == 0 and again["kinds"] == ["candles_1h"]


def test_bad_arguments_are_clear_errors(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["universe", "--date", "2024-13-01"]) == 2
    assert "--date '2024-13-01' is not a date" in capsys.readouterr().err
    assert main(["backfill", "--symbols", "BTC/USDT", "--kinds", "ticks"]) == 2
    assert "unknown backfill kind" in capsys.readouterr().err


def test_a_date_the_source_has_no_data_for_stores_nothing(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The synthetic market starts a few months before "now": a day years earlier has no bars at all.
    assert main(["universe", "--date", "2020-01-01"]) == 2
    assert "nothing stored" in capsys.readouterr().err
    assert Lake(home / "lake").universe_dates() == []


def test_backfill_command_keeps_a_failing_batch_out_of_the_lake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import polars as pl

    from pipelines.sources.synthetic import SyntheticSource

    until = datetime(2026, 3, 3, tzinfo=UTC)
    source = SyntheticSource(as_of=until, days=2, n_symbols=2)
    bars = source.fetch_candles(source.list_symbols("USDT"), "5m", until - timedelta(days=2), until)
    bad = bars.with_columns(  # one bar of BTC/USDT with high below low
        pl.when((pl.col("symbol") == "BTC/USDT") & (pl.int_range(pl.len()) == 40))
        .then(pl.col("low") * 0.9).otherwise(pl.col("high")).alias("high")
    )
    (tmp_path / "replay").mkdir()
    bad.rename({"ts": "open_time"}).write_parquet(tmp_path / "replay" / "rec_5m_x.parquet")
    monkeypatch.setenv("ALPHATIDE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ALPHATIDE_SOURCE", "replay")
    monkeypatch.setenv("ALPHATIDE_REPLAY_DIR", str(tmp_path / "replay"))
    argv = ["backfill", "--symbols", "BTC/USDT,ETH/USDT", "--kinds", "candles", "--timeframe", "5m",
            "--since", "2026-03-01", "--until", "2026-03-03", "--no-progress"]

    assert main(argv) == 2

    err = capsys.readouterr().err
    assert "quarantined" in err and "BTC/USDT: expect_column_pair_values_a_to_be_greater_than_b (high >= low)" in err
    lake = Lake(tmp_path / "home" / "lake")
    assert lake.read_candles("binance", "5m").is_empty() and lake.read_state("watermarks") is None
