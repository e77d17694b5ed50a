"""A feed from the lake's `trades` and `book_snapshots` (what the backfill and the recorder store)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from bench.common import shared_data_dir
from pipelines.lake import BOOK_SNAPSHOT_SCHEMA, TRADES_SCHEMA, Lake
from pipelines.sim.book import L2Book
from pipelines.sim.feed import ASK, BID, BUY_TRADE, SELL_TRADE, feed_from_frames
from pipelines.sources.recorded import ingest_binance_capture


def _t(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_snapshots_become_level_changes_and_trades_keep_their_side() -> None:
    # Arrange: two 1-level-per-side snapshots (the bid moves from 100 to 101), one sell trade between
    books = pl.DataFrame(
        [("v", "X/USDT", _t(1000), 1, "bid", 0, 100.0, 2.0), ("v", "X/USDT", _t(1000), 1, "ask", 0, 102.0, 1.0),
         ("v", "X/USDT", _t(2000), 2, "bid", 0, 101.0, 3.0), ("v", "X/USDT", _t(2000), 2, "ask", 0, 102.0, 1.0)],
        schema=BOOK_SNAPSHOT_SCHEMA, orient="row",
    )
    trades = pl.DataFrame(
        [("v", "X/USDT", _t(1500), 100.0, 0.5, "sell", "7", _t(1503))], schema=TRADES_SCHEMA, orient="row",
    )
    # Act
    feed = feed_from_frames(trades, books, venue="v", symbol="X/USDT")
    # Assert: tick 1, lot 0.5 from the data; the 100 bid is removed when the next snapshot lacks it
    assert (str(feed.tick_size), str(feed.lot_size)) == ("1", "0.5")
    rows = list(zip(feed.kind.tolist(), (feed.exch_ts // 1_000_000).tolist(), feed.px.tolist(), feed.qty.tolist(),
                    strict=True))
    assert rows == [(BID, 1000, 100, 4), (ASK, 1000, 102, 2), (SELL_TRADE, 1500, 100, 1), (BID, 2000, 100, 0),
                    (BID, 2000, 101, 6)]
    assert int(feed.local_ts[2] - feed.exch_ts[2]) == 3_000_000  # the trade's own receive time


@pytest.mark.realdata
def test_the_recorded_lake_replays_to_the_same_top_of_book(tmp_path: Path) -> None:
    files = sorted((shared_data_dir() / "binance_ticks" / "usdm").glob("btcusdt_*.gz"))
    if not files:
        pytest.skip("the Binance capture is not under ../shared/data/binance_ticks; realdata test")
    # Arrange: the recorder's lake (1 s snapshots of 20 levels, trades)
    lake = Lake(tmp_path / "lake")
    ingest_binance_capture(files, lake, venue="binanceusdm")
    trades = lake.read_trades("binanceusdm")
    books = lake.read_book_snapshots("binanceusdm")
    # Act
    feed = feed_from_frames(trades, books, venue="binanceusdm", symbol="BTC/USDT:USDT")
    # Assert: every trade is there with its side; after each snapshot the replayed top is the stored level 0
    kinds = feed.kind.tolist()
    assert kinds.count(BUY_TRADE) + kinds.count(SELL_TRADE) == trades.height
    top = books.filter(pl.col("level") == 0).pivot(on="side", index="ts", values="price").sort("ts")
    expected = {int(ts.timestamp() * 1e6) * 1000: (b, a) for ts, b, a in top.select("ts", "bid", "ask").iter_rows()}
    book, seen = L2Book(), 0
    ets = feed.exch_ts.tolist()
    tick = float(feed.tick_size)
    for r, (k, p, q) in enumerate(zip(kinds, feed.px.tolist(), feed.qty.tolist(), strict=True)):
        if k in (BID, ASK):
            book.apply(k, p, q)
        last_of_ts = r + 1 == len(kinds) or ets[r + 1] != ets[r]
        if last_of_ts and ets[r] in expected:
            seen += 1
            bid, ask = expected[ets[r]]
            assert (book.best_bid, book.best_ask) == (round(bid / tick), round(ask / tick))
    assert seen == len(expected) > 200
