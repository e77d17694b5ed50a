from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.lake import BOOK_SNAPSHOT_SCHEMA, GAPS_SCHEMA, MARKETS_SCHEMA, TRADES_SCHEMA, Lake
from pipelines.sources.synthetic import SyntheticSource

AS_OF = datetime(2026, 2, 3, tzinfo=UTC)


def _candles(days: int = 3) -> pl.DataFrame:
    source = SyntheticSource(as_of=AS_OF, days=days, n_symbols=2)
    return source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=days), AS_OF)


def test_partitions_by_venue_kind_symbol_and_day(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    written = lake.write_candles(_candles(), "binance", "5m")
    assert written == 2 * 3
    assert (tmp_path / "venue=binance/kind=candles_5m/symbol=BTC-USDT/date=2026-01-31/part.parquet").exists()
    assert lake.candle_symbols("binance", "5m") == ["BTC/USDT", "ETH/USDT"]


def test_rewriting_the_same_rows_is_idempotent(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    candles = _candles()
    lake.write_candles(candles, "binance", "5m")
    first = {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")}
    lake.write_candles(candles, "binance", "5m")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")} == first
    assert lake.read_candles("binance", "5m").equals(candles)


def test_partial_day_merges_with_what_is_stored(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    candles = _candles()
    cut = AS_OF - timedelta(hours=5)
    lake.write_candles(candles.filter(pl.col("ts") < cut), "binance", "5m")
    lake.write_candles(candles.filter(pl.col("ts") >= cut - timedelta(hours=1)), "binance", "5m")  # overlap
    assert lake.read_candles("binance", "5m").equals(candles)


def test_reads_a_time_window_and_queries_through_duckdb(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.write_candles(_candles(), "binance", "5m")
    start, end = AS_OF - timedelta(days=1), AS_OF - timedelta(hours=12)
    window = lake.read_candles("binance", "5m", ["ETH/USDT"], start, end)
    assert len(window) == 144 and window["ts"].min() == start
    count = lake.duckdb().execute("select count(*) from candles_5m where symbol = 'BTC/USDT'").fetchone()
    assert count == (3 * 288,)


def test_universe_history_keeps_every_date(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.write_universe(pl.DataFrame({"date": [date(2026, 1, 1)], "symbol": ["BTC/USDT"]}), date(2026, 1, 1))
    lake.write_universe(pl.DataFrame({"date": [date(2026, 1, 2)], "symbol": ["ETH/USDT"]}), date(2026, 1, 2))
    assert lake.universe_dates() == [date(2026, 1, 1), date(2026, 1, 2)]
    latest = lake.read_universe()
    assert latest is not None and latest["symbol"].to_list() == ["ETH/USDT"]
    past = lake.read_universe(date(2026, 1, 1))
    assert past is not None and past["symbol"].to_list() == ["BTC/USDT"]


def _trade_rows(ids: list[int], start: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "venue": ["binance"] * len(ids),
            "symbol": ["BTC/USDT"] * len(ids),
            "ts": [start + timedelta(seconds=i) for i in ids],
            "price": [100.0 + i for i in ids],
            "qty": [0.5] * len(ids),
            "aggressor_side": ["buy" if i % 2 else "sell" for i in ids],
            "trade_id": [str(i) for i in ids],
            "recv_ts": [None] * len(ids),
        }
    ).select(pl.col(n).cast(t) for n, t in TRADES_SCHEMA.items())


def test_trades_merge_by_trade_id_across_days(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    start = AS_OF - timedelta(seconds=3)  # straddles midnight: two day partitions
    lake.write_trades(_trade_rows([0, 1, 2, 3], start), "binance")
    lake.write_trades(_trade_rows([2, 3, 4, 5], start), "binance")  # overlap: ids 2 and 3 again
    got = lake.read_trades("binance")
    assert got["trade_id"].to_list() == ["0", "1", "2", "3", "4", "5"]
    assert sorted(p.parent.name for p in (tmp_path / "venue=binance/kind=trades").rglob("part.parquet")) == [
        "date=2026-02-02",
        "date=2026-02-03",
    ]
    assert got["aggressor_side"].dtype == pl.Enum(["buy", "sell"])
    assert lake.duckdb().execute("select count(*) from trades where aggressor_side = 'buy'").fetchone() == (3,)


def test_book_snapshots_give_the_top_of_book_and_daily_spreads(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    rows = [
        ("binance", "BTC/USDT", AS_OF + timedelta(minutes=m), 7, side, level, price, 1.0)
        for m, bid, ask in ((0, 99.0, 101.0), (1, 99.5, 100.5))
        for side, prices in (("bid", (bid, bid - 1)), ("ask", (ask, ask + 1)))
        for level, price in enumerate(prices)
    ]
    frame = pl.DataFrame(rows, schema=list(BOOK_SNAPSHOT_SCHEMA), orient="row").select(
        pl.col(n).cast(t) for n, t in BOOK_SNAPSHOT_SCHEMA.items()
    )
    lake.write_book_snapshots(frame, "binance")
    lake.write_book_snapshots(frame, "binance")  # idempotent
    top = lake.book_top("binance")
    assert top["bid"].to_list() == [99.0, 99.5] and top["spread"].to_list() == pytest.approx([0.02, 0.01])
    daily = lake.daily_book_spreads("binance")
    assert daily.row(0) == ("BTC/USDT", AS_OF.date(), pytest.approx(0.015))
    assert lake.duckdb().execute("select count(*) from book_snapshots").fetchone() == (8,)


def test_gaps_markets_and_universe_are_views_too(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    gap = pl.DataFrame(
        [("binance", "candles_5m", "BTC/USDT", AS_OF, AS_OF + timedelta(hours=1), 12, "venue_outage", AS_OF)],
        schema=list(GAPS_SCHEMA),
        orient="row",
    )
    lake.record_gaps(gap)
    lake.record_gaps(gap)  # the same hole once
    markets = pl.DataFrame(
        [{"venue": "binance", "symbol": "BTC/USDT", "tick_size": 0.01, "fetched_at": AS_OF}],
        schema_overrides={"fetched_at": pl.Datetime("us", "UTC")},
    )
    lake.write_markets(
        markets.with_columns(*(pl.lit(None).alias(c) for c in MARKETS_SCHEMA if c not in markets.columns)), "binance"
    )
    lake.write_universe(
        pl.DataFrame({"date": [date(2026, 1, 1)], "symbol": ["BTC/USDT"], "tier": [1]}), date(2026, 1, 1)
    )
    con = lake.duckdb()
    assert con.execute("select count(*) from venue_outages").fetchone() == (1,)
    assert con.execute("select tick_size from markets where symbol = 'BTC/USDT'").fetchone() == (0.01,)
    assert con.execute("select tier from universe").fetchone() == (1,)
    assert lake.venue_outages("binance", "candles_5m")["missing_bars"].to_list() == [12]
    assert lake.read_gaps("binance", "candles_1m").is_empty()


def test_a_replaced_universe_keeps_its_earlier_version(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    day = date(2026, 1, 1)
    first = pl.DataFrame({"date": [day], "symbol": ["BTC/USDT"], "tier": [1]})
    lake.write_universe(first, day)
    lake.write_universe(first, day)  # the same table: nothing to keep
    assert lake.universe_versions(day) == []
    second = pl.DataFrame({"date": [day], "symbol": ["ETH/USDT"], "tier": [1]})
    lake.write_universe(second, day)
    versions = lake.universe_versions(day)
    assert len(versions) == 1 and pl.read_parquet(versions[0]).equals(first)
    current = lake.read_universe(day)
    assert current is not None and current.equals(second)
    assert lake.universe_dates() == [day]
