"""The Binance capture into the lake: trades with aggressor side, book snapshots from snapshot + diffs."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from pipelines.lake import Lake
from pipelines.sources.recorded import ingest_binance_capture
from pipelines.validation import validate_book

pytestmark = pytest.mark.realdata


def test_spot_capture_becomes_trades_and_book_snapshots(shared_data: Path, tmp_path: Path) -> None:
    files = sorted((shared_data / "binance_ticks" / "spot").glob("btcusdt_*.gz"))[:1]  # 23:54-00:00
    lake = Lake(tmp_path)

    counts = ingest_binance_capture(files, lake, snapshot_every_s=5.0, depth=10)

    trades = lake.read_trades("binance", ["BTC/USDT"])
    assert counts["trades"] == len(trades) > 5_000
    assert set(trades["aggressor_side"].unique()) == {"buy", "sell"}
    top = lake.book_top("binance", ["BTC/USDT"])
    # About 6 minutes of recording, one snapshot every 5 s once the book is synced.
    assert counts["book_snapshots"] == len(top) and 50 < len(top) <= 6 * 12 + 1
    assert (top["ask"] > top["bid"]).all() and top["spread"].max() < 1e-3
    assert validate_book(top).success
    # Snapshot prices agree with the trades printed around them.
    assert top["bid"].min() > trades["price"].min() * 0.99 and top["ask"].max() < trades["price"].max() * 1.01
    daily = lake.daily_book_spreads("binance")
    assert daily["day"].cast(pl.String).to_list()[0] == "2024-08-08"
