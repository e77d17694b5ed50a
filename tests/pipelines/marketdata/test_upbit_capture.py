"""Upbit SIMPLE-format capture parser: trades with aggressor side, whole-book snapshots, ccxt symbols."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pipelines.domain.marketdata import BookLevel, BookSnapshot, Trade
from pipelines.marketdata.orderbook import OrderBook
from pipelines.marketdata.upbit_capture import (
    UpbitFormatError,
    iter_upbit_capture,
    load_upbit_trades,
    parse_upbit_message,
    upbit_symbol,
)

# Shapes copied from the recorded file (order book cut to 2 units).
HEADER = [
    "wss://api.upbit.com/websocket/v1 <-> 1618678261.681707",
    'wss://api.upbit.com/websocket/v1 <- 1618678262.670261: [{"ticket":"x"},{"format":"SIMPLE"}]',
]
TRADE_BID = (
    '1618678263.010785: b\'{"ty":"trade","cd":"KRW-LAMB","tms":1618678262712,"td":"2021-04-17",'
    '"ttm":"16:51:02","ttms":1618678262000,"tp":127.0,"tv":46.48838371,"ab":"BID","pcp":123.00000000,'
    '"c":"RISE","cp":4.00000000,"sid":1618678262000003,"st":"REALTIME"}\''
)
TRADE_ASK = TRADE_BID.replace('"ab":"BID"', '"ab":"ASK"').replace("000003", "000004")
BOOK = (
    '1618678263.105828: b\'{"ty":"orderbook","cd":"BTC-XTZ","tms":1618678262640,"tas":1.0,'
    '"tbs":1.0,"obu":[{"ap":0.0001,"bp":0.00009,"as":10.5,"bs":20.25},'
    '{"ap":0.00011,"bp":0.00008,"as":3.0,"bs":0.0}],"st":"REALTIME"}\''
)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return path


def test_trades_and_books_become_domain_events(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "UPBIT.ws.1.0", [*HEADER, TRADE_BID, TRADE_ASK, BOOK])

    events = list(iter_upbit_capture(path))

    assert [e.event for e in events] == [
        Trade("upbit", "LAMB/KRW", 1618678262000_000, 127.0, 46.48838371, "buy", "1618678262000003"),
        Trade("upbit", "LAMB/KRW", 1618678262000_000, 127.0, 46.48838371, "sell", "1618678262000004"),
        BookSnapshot(
            "upbit",
            "XTZ/BTC",
            1618678262640_000,
            None,
            (BookLevel(0.00009, 20.25),),  # the 0-size bid unit is padding, not a level
            (BookLevel(0.0001, 10.5), BookLevel(0.00011, 3.0)),
        ),
    ]
    assert events[0].recv_ns == 1618678263_010785000  # parsed exactly, not through a float


def test_escaped_bytes_literal_is_decoded(tmp_path: Path) -> None:
    escaped = TRADE_BID.replace(
        '"c":"RISE"', '"c":"\\xeb\\xb9\\x84"'
    )  # non-ASCII bytes, as repr() writes them
    path = write_lines(tmp_path / "UPBIT.ws.1.0", [escaped])

    (event,) = (e.event for e in iter_upbit_capture(path))

    assert isinstance(event, Trade) and event.aggressor_side == "buy"


def test_malformed_message_names_file_and_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "UPBIT.ws.1.0", [*HEADER, '1618678263.0: b\'{"ty":"trade"}\''])

    with pytest.raises(UpbitFormatError, match=r"UPBIT\.ws\.1\.0:3"):
        list(iter_upbit_capture(path))


def test_other_message_types_are_skipped() -> None:
    assert parse_upbit_message({"ty": "ticker", "cd": "KRW-BTC"}) is None


@pytest.mark.parametrize(("code", "symbol"), [("KRW-BTC", "BTC/KRW"), ("BTC-ETH", "ETH/BTC")])
def test_upbit_symbol_to_ccxt(code: str, symbol: str) -> None:
    assert upbit_symbol(code) == symbol


def test_upbit_symbol_rejects_non_codes() -> None:
    with pytest.raises(ValueError):
        upbit_symbol("KRWBTC")


@pytest.mark.realdata
def test_real_upbit_capture(shared_data: Path) -> None:
    path = shared_data / "upbit_ws_sample" / "UPBIT.ws.62.0"

    events = [e.event for e in iter_upbit_capture(path)]
    trades = load_upbit_trades(path)

    kinds = Counter(type(e).__name__ for e in events)
    assert kinds == {"Trade": 304, "BookSnapshot": 145}
    assert dict(trades.group_by("aggressor_side").len().iter_rows()) == {"sell": 200, "buy": 104}
    assert set(trades["symbol"]) == {"LAMB/KRW", "WAVES/KRW", "ITAM/BTC"}
    books = [e for e in events if isinstance(e, BookSnapshot)]
    assert all(len(b.bids) == 15 and len(b.asks) == 15 for b in books)
    # Whole books straight into the order book: synced at once, best first, never crossed.
    for b in books:
        book = OrderBook(b.symbol)
        book.apply_snapshot(b)
        status = book.status(now_us=b.ts_us)
        assert status.trusted, status.reason
        assert book.best_bid() == b.bids[0] and book.best_ask() == b.asks[0]
