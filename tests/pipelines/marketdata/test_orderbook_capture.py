"""OrderBook against the recorded Binance capture: after every applied diff the book's top equals the
capture's own bookTicker stream (see `test_book_matches_capture_book_ticker` for the exact rule).

Real-data test: skipped with a reason when the shared capture is absent.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.domain.marketdata import BookDiff, BookLevel, BookSnapshot, BookTicker
from pipelines.marketdata.binance_capture import iter_binance_capture
from pipelines.marketdata.orderbook import DiffResult, OrderBook, SyncRule


@dataclass
class TickerCheck:
    diffs_compared: int = 0
    tickers_compared: int = 0
    tickers_superseded: int = 0  # a newer ticker in the same diff window: the book never sits at that id
    mismatches: int = 0


def _check_book_against_tickers(files: list[Path], rule: SyncRule) -> TickerCheck:
    events = [ce.event for ce in iter_binance_capture(files, kinds=("depth", "snapshot", "bookTicker"))]
    tickers = sorted((e for e in events if isinstance(e, BookTicker)), key=lambda t: t.update_id)
    ticker_ids = [t.update_id for t in tickers]
    book = OrderBook(tickers[0].symbol, rule)
    check = TickerCheck()
    compared_ids: set[int] = set()
    applied_ranges: list[tuple[int, int]] = []  # (U, u) of diffs applied once synced
    pending_removal: tuple[str, float] | None = None  # see the spot exception below
    # Receive order is used only to feed the book; the comparison pairs events by update id, because
    # bookTicker and depth come on different streams and their arrival order says nothing.
    for ev in events:
        if isinstance(ev, BookTicker):
            continue
        if isinstance(ev, BookSnapshot):
            book.apply_snapshot(ev)
            continue
        assert isinstance(ev, BookDiff)
        result = book.apply_diff(ev)
        assert result is not DiffResult.GAP, book.status().reason
        if result is not DiffResult.APPLIED:
            continue
        if pending_removal is not None:
            side, price = pending_removal
            assert BookLevel(price, 0.0) in (ev.bids if side == "bid" else ev.asks), (
                f"level {side} {price} the depth stream missed was not removed by the next diff"
            )
            pending_removal = None
        applied_ranges.append((ev.first_update_id, ev.final_update_id))
        # Rule: after applying the diff that ends at update id u, the book's best bid and ask (prices and
        # quantities) equal the newest bookTicker whose update id is <= u.
        i = bisect.bisect_right(ticker_ids, ev.final_update_id) - 1
        if i < 0:
            continue
        ticker = tickers[i]
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is not None and ask is not None and not book.is_crossed()
        check.diffs_compared += 1
        compared_ids.add(ticker.update_id)
        want_bid = BookLevel(ticker.bid_price, ticker.bid_qty)
        want_ask = BookLevel(ticker.ask_price, ticker.ask_qty)
        if (bid, ask) == (want_bid, want_ask):
            continue
        # The one exception, seen twice in spot BTCUSDT: depth@100ms omitted a level that bookTicker had
        # already shown inside the diff's window (a better price, absent from the book), the other side
        # agrees, and the next diff carries that level's removal (asserted when it arrives).
        check.mismatches += 1
        assert rule is SyncRule.SPOT, f"USD-M mismatch at u={ev.final_update_id}: {ticker}"
        assert (bid == want_bid) != (ask == want_ask), f"both sides differ at u={ev.final_update_id}"
        if bid != want_bid:
            side, level = "bid", want_bid
            assert want_bid.price > bid.price, f"bid {bid} vs bookTicker {want_bid}"
        else:
            side, level = "ask", want_ask
            assert want_ask.price < ask.price, f"ask {ask} vs bookTicker {want_ask}"
        pending_removal = (side, level.price)
    assert pending_removal is None
    assert book.is_synced, book.status().reason
    # Every ticker after sync lies inside an applied diff's [U, u]: the bookTicker id is a depth update id,
    # and on USD-M none falls between one diff's u and the next diff's U (futures ids are not contiguous).
    first_synced_u = applied_ranges[0][1]
    starts = [r[0] for r in applied_ranges]
    for tid in ticker_ids:
        if first_synced_u < tid <= applied_ranges[-1][1]:
            j = bisect.bisect_right(starts, tid) - 1
            assert applied_ranges[j][0] <= tid <= applied_ranges[j][1], tid
            if tid in compared_ids:
                check.tickers_compared += 1
            else:
                check.tickers_superseded += 1
    return check


REALDATA_MARKETS = [
    pytest.param("spot", "btcusdt", SyncRule.SPOT, 2, id="spot-BTCUSDT"),
    pytest.param("spot", "ethusdt", SyncRule.SPOT, 0, id="spot-ETHUSDT"),
    pytest.param("usdm", "btcusdt", SyncRule.FUTURES, 0, id="usdm-BTCUSDT"),
    pytest.param("usdm", "ethusdt", SyncRule.FUTURES, 0, id="usdm-ETHUSDT"),
]


@pytest.mark.realdata
@pytest.mark.parametrize(("market", "sym", "rule", "known_anomalies"), REALDATA_MARKETS)
def test_book_matches_capture_book_ticker(
    shared_data: Path, market: str, sym: str, rule: SyncRule, known_anomalies: int
) -> None:
    files = sorted((shared_data / "binance_ticks" / market).glob(f"{sym}_*.gz"))
    assert files, f"no {market}/{sym} capture files"

    check = _check_book_against_tickers(files, rule)

    print(f"{market} {sym}: {check}")  # the counts, for the record (-s)
    assert check.diffs_compared > 6000  # ~6.5k diffs per market, all of them after the first sync
    assert check.tickers_compared > 5000
    assert check.mismatches == known_anomalies  # the recording is fixed: any other count is a regression
