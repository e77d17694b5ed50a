"""ccxt `upbit` pointed at the fake Upbit venue: KRW candles (paged backwards by the venue), trades with the
aggressor side, order-book snapshots, metadata, and backoff on Upbit's "too many requests" error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.backfill import Backfiller, load_market_metadata
from pipelines.config import DataConfig
from pipelines.lake import Lake
from pipelines.sources.binance import CcxtCandleSource
from pipelines.sources.synthetic import SyntheticSource
from tests.fakes.upbit_venue import FakeUpbit

AS_OF = datetime(2026, 3, 2, tzinfo=UTC)
START = AS_OF - timedelta(days=2)


@pytest.fixture(scope="module")
def recorded() -> pl.DataFrame:
    source = SyntheticSource(as_of=AS_OF, days=2, n_symbols=2, quote="KRW")
    return source.fetch_candles(["BTC/KRW", "ETH/KRW"], "5m", START, AS_OF)


def _trades() -> pl.DataFrame:
    rng = np.random.default_rng(5)
    n = 700
    offsets = np.sort(rng.integers(0, 3_600_000, size=n))
    return pl.DataFrame(
        {
            "symbol": ["BTC/KRW"] * n,
            "ts": [AS_OF - timedelta(hours=1) + timedelta(milliseconds=int(o)) for o in offsets],
            "price": np.round(9e7 + rng.normal(0, 1e5, n), -3),
            "qty": np.round(rng.exponential(0.01, n), 8),
            "buyer_is_maker": rng.random(n) < 0.4,
            "trade_id": np.arange(17_000_000, 17_000_000 + n),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def _source(fake: FakeUpbit, sleeps: list[float]) -> CcxtCandleSource:
    return CcxtCandleSource("upbit", urls=fake.ccxt_urls(), sleep=sleeps.append, backoff_s=0.25, clock=lambda: AS_OF)


def test_upbit_candles_trades_and_book_through_ccxt(recorded: pl.DataFrame, tmp_path: Path) -> None:
    trades = _trades()
    lake = Lake(tmp_path)
    with FakeUpbit(recorded, trades=trades) as fake:
        sleeps: list[float] = []
        source = _source(fake, sleeps)
        fake.fail_429 = 2
        # Act
        report = Backfiller(source, lake, DataConfig(book_depth=15), progress=False).run(
            ["BTC/KRW", "ETH/KRW"], ["candles_5m", "trades", "book_snapshots"], START, AS_OF
        )
        markets = load_market_metadata(source, lake, ttl=timedelta(hours=1))
    # Assert: Upbit's "too many requests" error body was backed off like a 429.
    assert sleeps == [0.25, 0.5]
    stored = lake.read_candles("upbit", "5m")
    assert stored["ts"].to_list() == recorded["ts"].to_list()
    assert stored["close"].to_list() == pytest.approx(recorded["close"].to_list())
    assert report.refetched_bars == 0 and report.venue_outages == []
    # 288 bars a day need two backward pages of 200 per chunk.
    assert len([p for p, _ in fake.requests if p.startswith("/v1/candles/minutes/5")]) >= 8
    got = lake.read_trades("upbit", ["BTC/KRW"])
    assert len(got) == 500  # Upbit serves the most recent trades only: one page of at most 500
    newest = trades.sort("ts").tail(500)
    sides = dict(zip(got["trade_id"], got["aggressor_side"], strict=True))
    assert all(
        sides[str(t)] == ("sell" if m else "buy")
        for t, m in zip(newest["trade_id"], newest["buyer_is_maker"], strict=True)
    )
    top = lake.book_top("upbit")
    assert top["symbol"].to_list() == ["BTC/KRW", "ETH/KRW"] and (top["ask"] > top["bid"]).all()
    btc = markets.filter(pl.col("symbol") == "BTC/KRW").row(0, named=True)
    assert btc["venue_symbol"] == "KRW-BTC" and btc["quote"] == "KRW" and btc["taker_fee"] == 0.0005
