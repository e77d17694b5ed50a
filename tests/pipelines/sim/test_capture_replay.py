"""Replaying the shared Binance capture: the simulated book equals the venue's own bookTicker."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import shared_data_dir
from pipelines.marketdata.binance_capture import iter_binance_capture
from pipelines.sim.book import L2Book
from pipelines.sim.feed import BUY_TRADE, SELL_TRADE, feed_from_binance_capture

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def ticks() -> Path:
    path = shared_data_dir() / "binance_ticks"
    if not path.is_dir():
        pytest.skip(f"the Binance capture is not at {path} (set SHARED_DATA_DIR); realdata test")
    return path


@pytest.mark.parametrize(("market", "symbol"), [("usdm", "BTC/USDT:USDT"), ("spot", "BTC/USDT")])
def test_the_replayed_book_matches_the_captured_book_ticker(ticks: Path, market: str, symbol: str,
                                                            tmp_path: Path) -> None:
    # Arrange: the feed (snapshot + diffs in update-id order) and the bookTicker stream of the same files
    files = sorted((ticks / market).glob("btcusdt_*.gz"))
    feed = feed_from_binance_capture(files, symbol, cache_dir=tmp_path)
    assert feed.gaps == 0 and feed.update_id is not None
    tick = float(feed.tick_size)
    tickers = {
        ce.event.update_id: (round(ce.event.bid_price / tick), round(ce.event.ask_price / tick))  # type: ignore[union-attr]
        for ce in iter_binance_capture(files, kinds=("bookTicker",))
    }
    # Act: replay the book; after each update id's last row, compare with the ticker of that id
    book, compared, equal = L2Book(), 0, 0
    kind, px, qty, uid = feed.kind.tolist(), feed.px.tolist(), feed.qty.tolist(), feed.update_id.tolist()
    depth_rows = [r for r in range(len(kind)) if kind[r] not in (BUY_TRADE, SELL_TRADE)]
    for n, r in enumerate(depth_rows):
        book.apply(kind[r], px[r], qty[r])
        last_of_id = n + 1 == len(depth_rows) or uid[depth_rows[n + 1]] != uid[r]
        if last_of_id and uid[r] in tickers:
            compared += 1
            equal += (book.best_bid, book.best_ask) == tickers[uid[r]]
    # Assert: hundreds of instants where both describe the same book state, all equal
    assert compared > 300
    assert equal == compared


def test_the_parse_is_cached(ticks: Path, tmp_path: Path) -> None:
    files = sorted((ticks / "usdm").glob("ethusdt_*.gz"))
    first = feed_from_binance_capture(files, "ETH/USDT:USDT", cache_dir=tmp_path)
    assert list(tmp_path.glob("*.npz"))
    again = feed_from_binance_capture(files, "ETH/USDT:USDT", cache_dir=tmp_path)
    assert len(first) == len(again) > 100_000
    assert (first.px == again.px).all() and first.tick_size == again.tick_size
    # the recorder's clock ran ~1.27 s behind the exchange: the offset puts receive times after event times
    assert 1.2e9 < first.clock_offset_ns < 1.4e9
    assert (first.local_ts >= first.exch_ts).all()
