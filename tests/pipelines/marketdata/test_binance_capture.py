"""Binance capture parser: message shapes (spot and USD-M), times, aggressor side, frames, real counts."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from pipelines.domain.marketdata import BookDiff, BookLevel, BookSnapshot, BookTicker, Trade
from pipelines.marketdata.binance_capture import (
    TRADES_SCHEMA,
    CaptureFormatError,
    binance_symbol,
    infer_market,
    iter_binance_capture,
    load_binance_book_tickers,
    load_binance_trades,
)

# Shapes copied from the recorded files (values shortened).
SPOT_LINES = [
    '1723161253937085768 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,'
    '"s":"BTCUSDT","U":50093239189,"u":50093239202,"b":[["61737.63000000","0.00000000"]],'
    '"a":[["61837.64000000","1.54698000"],["61839.85000000","0.00000000"]]}}',
    '1723161254087891268 {"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT",'
    '"b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}',
    '1723161254087896568 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
    '"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}',
    '1723161254087896600 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255344,"s":"BTCUSDT",'
    '"t":3735683260,"p":"61837.64000000","q":"0.50000000","T":1723161255343,"m":false,"M":true}}',
    '1723161254206652067 {"lastUpdateId":50093239218,"bids":[["61837.63000000","3.78826000"],'
    '["61837.62000000","0.61700000"]],"asks":[["61837.64000000","1.54698000"]]}',
    '1723161254206652100 {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT"}}',
    "",
]
USDM_LINES = [
    '1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,'
    '"T":1723161256298,"s":"BTCUSDT","U":5123107832006,"u":5123107837557,"pu":5123107831937,'
    '"b":[["58710.20","0.014"]],"a":[["61800.30","2.510"]]}}',
    '1723161255088169167 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,'
    '"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,'
    '"E":1723161256313}}',
    '1723161255088176367 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,'
    '"T":1723161256321,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}',
    '1723161255319702566 {"lastUpdateId":5123107852948,"E":1723161256501,"T":1723161256493,'
    '"bids":[["61800.20","2.909"]],"asks":[["61800.30","1.091"]]}',
]


def write_capture(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def test_spot_messages_become_typed_events_with_exchange_time(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "spot" / "btcusdt_20240808.gz", SPOT_LINES)

    events = list(iter_binance_capture(path))

    assert [type(e.event) for e in events] == [BookDiff, BookTicker, Trade, Trade, BookSnapshot]
    diff, ticker, sell, buy, snapshot = (e.event for e in events)
    assert diff == BookDiff(
        "binance",
        "BTC/USDT",
        1723161255208_000,
        50093239189,
        50093239202,
        None,
        (BookLevel(61737.63, 0.0),),
        (BookLevel(61837.64, 1.54698), BookLevel(61839.85, 0.0)),
    )
    assert ticker == BookTicker(
        "binance", "BTC/USDT", None, 50093239212, 61837.63, 3.78826, 61837.64, 1.54698
    )
    assert sell == Trade("binance", "BTC/USDT", 1723161255342_000, 61837.63, 0.02, "sell", "3735683259")
    assert isinstance(buy, Trade) and buy.aggressor_side == "buy"  # m false: the buyer was the taker
    assert snapshot == BookSnapshot(
        "binance",
        "BTC/USDT",
        None,
        50093239218,
        (BookLevel(61837.63, 3.78826), BookLevel(61837.62, 0.617)),
        (BookLevel(61837.64, 1.54698),),
    )
    assert events[0].recv_ns == 1723161253937085768  # local clock kept apart, at full precision


def test_usdm_messages_carry_pu_and_times(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "usdm" / "btcusdt_20240808.gz", USDM_LINES)

    diff, ticker, trade, snapshot = (e.event for e in iter_binance_capture(path))

    assert isinstance(diff, BookDiff) and diff.prev_final_update_id == 5123107831937
    assert diff.symbol == "BTC/USDT:USDT" and diff.venue == "binanceusdm"
    assert diff.ts_us == 1723161256299_000  # E (event time), not T
    assert isinstance(ticker, BookTicker) and ticker.ts_us == 1723161256313_000
    assert isinstance(trade, Trade) and trade.ts_us == 1723161256321_000  # T (trade time)
    assert trade.aggressor_side == "buy"
    assert isinstance(snapshot, BookSnapshot) and snapshot.ts_us == 1723161256501_000
    assert snapshot.last_update_id == 5123107852948


def test_kinds_filter_skips_other_streams(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "spot" / "btcusdt_20240808.gz", SPOT_LINES)

    trades = list(iter_binance_capture(path, kinds=("trade",)))
    books = list(iter_binance_capture(path, kinds=("depth", "snapshot")))

    assert [type(e.event) for e in trades] == [Trade, Trade]
    assert [type(e.event) for e in books] == [BookDiff, BookSnapshot]
    with pytest.raises(ValueError, match="unknown kinds"):
        list(iter_binance_capture(path, kinds=("aggTrade",)))


def test_snapshot_first_in_file_takes_the_symbol_from_the_file_name(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "spot" / "ethusdt_20240808.gz", [SPOT_LINES[4]])

    (event,) = (e.event for e in iter_binance_capture(path))

    assert isinstance(event, BookSnapshot) and event.symbol == "ETH/USDT"


def test_explicit_market_and_resolver_override_inference(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "capture.gz", SPOT_LINES[2:3])

    (event,) = (e.event for e in iter_binance_capture(path, market="spot", resolve_symbol=lambda s: "X/Y"))

    assert event.symbol == "X/Y"
    with pytest.raises(ValueError, match="pass market="):
        list(iter_binance_capture(path))


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "spot" / "btcusdt_20240808.gz", [SPOT_LINES[0], "17231612 {not json"])

    with pytest.raises(CaptureFormatError, match=r"btcusdt_20240808\.gz:2"):
        list(iter_binance_capture(path))


def test_missing_field_is_a_format_error(tmp_path: Path) -> None:
    line = '1 {"stream":"btcusdt@trade","data":{"s":"BTCUSDT","p":"1","q":"1","T":1,"t":1}}'  # no "m"
    path = write_capture(tmp_path / "spot" / "btcusdt_20240808.gz", [line])

    with pytest.raises(CaptureFormatError, match="'m'"):
        list(iter_binance_capture(path))


def test_plain_text_capture_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "spot" / "btcusdt_20240808.txt"
    path.parent.mkdir()
    path.write_text("\n".join(SPOT_LINES[:3]) + "\n")

    assert len(list(iter_binance_capture(path))) == 3


@pytest.mark.parametrize(
    ("exchange_id", "market", "expected"),
    [
        ("BTCUSDT", "spot", "BTC/USDT"),
        ("ethbtc", "spot", "ETH/BTC"),
        ("BTCFDUSD", "spot", "BTC/FDUSD"),
        ("BTCUSDT", "usdm", "BTC/USDT:USDT"),
    ],
)
def test_binance_symbol_to_ccxt(exchange_id: str, market: str, expected: str) -> None:
    assert binance_symbol(exchange_id, market) == expected  # type: ignore[arg-type]


def test_binance_symbol_rejects_unknown_quote() -> None:
    with pytest.raises(ValueError, match="resolve_symbol"):
        binance_symbol("FOOXYZ", "spot")


def test_infer_market_from_folder() -> None:
    assert infer_market(Path("/data/binance_ticks/usdm/btcusdt_20240808.gz")) == "usdm"
    assert infer_market(Path("spot/x.gz")) == "spot"


def test_trades_frame_has_utc_microsecond_times(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "spot" / "btcusdt_20240808.gz", SPOT_LINES)

    frame = load_binance_trades(path)

    assert frame.schema == pl.Schema(TRADES_SCHEMA)
    assert frame["aggressor_side"].to_list() == ["sell", "buy"]
    assert frame["ts"][0].isoformat() == "2024-08-08T23:54:15.342000+00:00"
    assert frame["recv_ts"][0].isoformat() == "2024-08-08T23:54:14.087896+00:00"


def test_book_tickers_frame_has_null_time_on_spot(tmp_path: Path) -> None:
    spot = write_capture(tmp_path / "spot" / "btcusdt_20240808.gz", SPOT_LINES)
    usdm = write_capture(tmp_path / "usdm" / "btcusdt_20240808.gz", USDM_LINES)

    frame = load_binance_book_tickers([spot, usdm])

    assert frame["symbol"].to_list() == ["BTC/USDT", "BTC/USDT:USDT"]
    assert frame["ts"].null_count() == 1 and frame["ts"][1] is not None
    assert frame["update_id"].to_list() == [50093239212, 5123107839020]


# ---- real data ---------------------------------------------------------------------------------------
@pytest.mark.realdata
@pytest.mark.parametrize(
    ("market", "expected_trades"),
    # ~35k trades per market (data README); exact counts of the fixed recording.
    [("spot", 19_904 + 14_515), ("usdm", 21_313 + 14_076)],
)
def test_real_capture_trade_counts_sides_and_times(
    shared_data: Path, market: str, expected_trades: int
) -> None:
    files = sorted((shared_data / "binance_ticks" / market).glob("*.gz"))

    trades = load_binance_trades(files)

    assert trades.height == expected_trades
    sides = dict(trades.group_by("aggressor_side").len().iter_rows())
    assert sides.keys() == {"buy", "sell"} and min(sides.values()) > trades.height // 4
    # Trade ids are consecutive per symbol: nothing dropped, nothing parsed twice.
    gaps = trades.group_by("symbol").agg(pl.col("trade_id").cast(pl.Int64).diff().drop_nulls().unique())
    assert gaps["trade_id"].to_list() == [[1], [1]]
    # Exchange time, not local time: the recorder's clock ran ~1.27 s behind the exchange's.
    lag_s = trades.select((pl.col("recv_ts") - pl.col("ts")).dt.total_microseconds().median() / 1e6).item()
    assert -1.30 < lag_s < -1.24
    assert trades.group_by("symbol").agg(pl.col("ts").is_sorted())["ts"].all()


@pytest.mark.realdata
def test_real_capture_message_counts(shared_data: Path) -> None:
    files = sorted((shared_data / "binance_ticks" / "usdm").glob("*.gz"))

    counts = Counter(type(e.event).__name__ for e in iter_binance_capture(files))

    assert counts == {
        "BookTicker": 66_089 + 53_992,
        "BookDiff": 6_551 + 6_586,
        "Trade": 35_389,
        "BookSnapshot": 2,
    }
