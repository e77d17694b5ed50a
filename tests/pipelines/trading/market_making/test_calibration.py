"""The nightly calibration: A, k, sigma per symbol from the lake's trades and book snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.config import load_settings
from pipelines.lake import BOOK_SNAPSHOT_SCHEMA, TRADES_SCHEMA, Lake
from pipelines.trading.market_making.calibration import (
    mm_params_path,
    params_for,
    read_mm_params,
    run_mm_calibration,
)

START = datetime(2024, 8, 8, 23, 50, tzinfo=UTC)
A, K, SIGMA = 3.0, 0.5, 0.4  # orders/s per side, per price unit, price units per sqrt(s)


def synthetic_lake(root: Path, seconds: int = 1800, seed: int = 9) -> Lake:
    """One book snapshot a second (a Brownian mid) and Poisson market orders reaching Exp(k) depths
    from the snapshot before them: the lake holds exactly the model the fit assumes."""
    rng = np.random.default_rng(seed)
    mids = 1000.0 + np.cumsum(rng.normal(0.0, SIGMA, seconds))
    book_rows = []
    for i, mid in enumerate(mids):
        ts = START + timedelta(seconds=i)
        book_rows += [
            ("binance", "ETH/USDT", ts, i, "bid", 0, mid - 0.05, 1.0),
            ("binance", "ETH/USDT", ts, i, "ask", 0, mid + 0.05, 1.0),
        ]
    trade_rows = []
    for side, name in ((1.0, "buy"), (-1.0, "sell")):
        times = np.sort(rng.uniform(0.0, seconds - 1, rng.poisson(A * (seconds - 1))))
        for j, t in enumerate(times):
            mid = mids[int(t)]
            ts = START + timedelta(seconds=float(t))
            price = mid + side * rng.exponential(1.0 / K)
            trade_rows.append(("binance", "ETH/USDT", ts, price, 0.01, name, f"{name}{j}", ts))
    lake = Lake(root)
    lake.write_book_snapshots(pl.DataFrame(book_rows, schema=BOOK_SNAPSHOT_SCHEMA, orient="row"), "binance")
    lake.write_trades(pl.DataFrame(trade_rows, schema=TRADES_SCHEMA, orient="row"), "binance")
    return lake


def test_nightly_fit_recovers_the_parameters_and_stores_a_table(tmp_path: Path) -> None:
    settings = load_settings({}, home=tmp_path)
    synthetic_lake(settings.lake_dir)

    summary = run_mm_calibration(settings, now=START + timedelta(days=1))

    assert summary["fitted"] == ["binance/ETH/USDT"]
    table = read_mm_params(mm_params_path(settings.lake_dir))
    row = table["binance/ETH/USDT"]
    assert row["A"] == pytest.approx(A, rel=0.10) and row["k"] == pytest.approx(K, rel=0.10)
    assert row["sigma"] == pytest.approx(SIGMA, rel=0.10)
    fit, sigma = params_for(table, "ETH/USDT", "binance")
    assert fit is not None and fit.source == "nightly" and sigma == pytest.approx(row["sigma"])


def test_nightly_fit_on_an_empty_lake_stores_an_empty_table(tmp_path: Path) -> None:
    settings = load_settings({}, home=tmp_path)
    summary = run_mm_calibration(settings)
    assert summary["fitted"] == [] and read_mm_params(mm_params_path(settings.lake_dir)) == {}
    assert params_for({}, "BTC/USDT") == (None, None)


@pytest.mark.realdata
def test_nightly_fit_on_the_recorded_binance_capture(shared_data: Path, tmp_path: Path) -> None:
    from pipelines.sources.recorded import ingest_binance_capture

    settings = load_settings({}, home=tmp_path)
    files = sorted((shared_data / "binance_ticks" / "spot").glob("btcusdt_*.gz"))
    ingest_binance_capture(files, Lake(settings.lake_dir))

    run_mm_calibration(settings)

    row = read_mm_params(mm_params_path(settings.lake_dir))["binance/BTC/USDT"]
    # About 11 minutes of BTCUSDT at ~61,600: thousands of taker orders, a per-second sigma of a few
    # dollars, and depths of a few dollars (k per USD well below 1: a mis-scaled k would be ~1e4).
    assert row["orders"] > 1000 and row["r2"] > 0.5
    assert 0.5 < row["sigma"] < 50 and 0.01 < row["k"] < 5 and row["A"] > 0.1


def test_cli_calibrate_runs_the_nightly_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from pipelines.cli import main

    monkeypatch.setenv("ALPHATIDE_HOME", str(tmp_path))
    synthetic_lake(load_settings({}, home=tmp_path).lake_dir, seconds=600)
    assert main(["mm", "calibrate"]) == 0
    assert json.loads(capsys.readouterr().out)["fitted"] == ["binance/ETH/USDT"]
