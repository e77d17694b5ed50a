"""The backfill engine driven through the real ccxt client against the fake Binance venue on 127.0.0.1."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.backfill import Backfiller, load_market_metadata, parse_kinds
from pipelines.config import DataConfig
from pipelines.errors import OperatorError, SourceUnavailableError
from pipelines.lake import Lake
from pipelines.sources.binance import CcxtCandleSource
from pipelines.sources.synthetic import SyntheticSource
from pipelines.validation import validate_book, validate_candles
from tests.fakes.binance_venue import FakeBinance

AS_OF = datetime(2026, 1, 10, tzinfo=UTC)
START = AS_OF - timedelta(days=3)
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


@pytest.fixture(scope="module")
def recorded() -> pl.DataFrame:
    source = SyntheticSource(as_of=AS_OF, days=3, n_symbols=3)
    return source.fetch_candles(SYMBOLS, "5m", START, AS_OF)


def _trades(n: int = 2500) -> pl.DataFrame:
    """Seeded trades for BTC/USDT over the last two hours, several per millisecond at times."""
    rng = np.random.default_rng(3)
    offsets_ms = np.sort(rng.integers(0, 2 * 3_600_000, size=n))
    ts = [AS_OF - timedelta(hours=2) + timedelta(milliseconds=int(o)) for o in offsets_ms]
    return pl.DataFrame(
        {
            "symbol": ["BTC/USDT"] * n,
            "ts": ts,
            "price": np.round(60_000 + rng.normal(0, 20, n), 2),
            "qty": np.round(rng.exponential(0.05, n), 5),
            "buyer_is_maker": rng.random(n) < 0.5,
            "trade_id": np.arange(1_000_000, 1_000_000 + n),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def _source(fake: FakeBinance, sleeps: list[float], max_retries: int = 3) -> CcxtCandleSource:
    return CcxtCandleSource(
        "binance",
        urls=fake.ccxt_urls(),
        sleep=sleeps.append,
        backoff_s=0.5,
        max_retries=max_retries,
        clock=lambda: AS_OF,
    )


def _config() -> DataConfig:
    return DataConfig(book_depth=5)


def _bytes(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("part.parquet"))}


def test_pages_candles_and_trades_into_the_lake_with_watermarks(recorded: pl.DataFrame, tmp_path: Path) -> None:
    trades = _trades()
    with FakeBinance(recorded, trades=trades) as fake:
        sleeps: list[float] = []
        engine = Backfiller(_source(fake, sleeps), Lake(tmp_path), _config(), progress=False)

        report = engine.run(["BTC/USDT", "ETH/USDT"], ["candles_5m", "trades"], START, AS_OF)

    lake = Lake(tmp_path)
    stored = lake.read_candles("binance", "5m")
    expected = recorded.filter(pl.col("symbol").is_in(["BTC/USDT", "ETH/USDT"]))
    assert stored["ts"].to_list() == expected["ts"].to_list()
    assert stored["close"].to_list() == pytest.approx(expected["close"].to_list(), rel=1e-12)
    assert report.rows["candles_5m"] == len(expected) and report.refetched_bars == 0
    # Trades: 3 days in 1-hour windows, paged by 1000 inside the busy last two hours; nothing lost or doubled.
    got = lake.read_trades("binance", ["BTC/USDT"])
    assert got["trade_id"].to_list() == [str(i) for i in trades["trade_id"]]
    # Aggressor side: buyer is maker means the taker sold.
    sides = dict(zip(got["trade_id"], got["aggressor_side"], strict=True))
    assert all(
        sides[str(t)] == ("sell" if m else "buy")
        for t, m in zip(trades["trade_id"], trades["buyer_is_maker"], strict=True)
    )
    assert got["ts"].dtype == pl.Datetime("us", "UTC")
    assert len(fake.trade_requests) > 72  # one request per hour at least, plus pages in the busy hours
    assert engine.watermark("candles_5m", "BTC/USDT") == AS_OF
    assert engine.watermark("trades", "BTC/USDT") == AS_OF
    assert sleeps == []


def test_interrupted_run_resumes_from_the_watermark_without_duplicates(recorded: pl.DataFrame, tmp_path: Path) -> None:
    # Arrange: the venue drops every connection from the 5th data request on, more times than we retry.
    with FakeBinance(recorded) as fake:
        sleeps: list[float] = []
        fake.drop_from_request, fake.drop_count = 5, 4
        engine = Backfiller(_source(fake, sleeps, max_retries=3), Lake(tmp_path), _config(), progress=False)
        # Act 1: the run is interrupted with a retryable error, after backing off 0.5, 1, 2 s.
        with pytest.raises(SourceUnavailableError, match="fetch_ohlcv"):
            engine.run(SYMBOLS, ["candles_5m"], START, AS_OF)
        assert sleeps == [0.5, 1.0, 2.0]
        mark = engine.watermark("candles_5m", "ETH/USDT")
        assert mark is not None and START < mark < AS_OF  # part of ETH was done
        done_before = len(fake.requests)
        # Act 2: the same command again.
        report = engine.run(SYMBOLS, ["candles_5m"], START, AS_OF)
        resumed = fake.requests[done_before:]
    # Assert: nothing refetched for BTC, ETH resumes at its watermark, and the lake is exactly the venue's.
    eth_starts = [int(q["startTime"]) for q in resumed if q["symbol"] == "ETHUSDT"]
    assert eth_starts[0] == int(mark.timestamp() * 1000)
    assert not [q for q in resumed if q["symbol"] == "BTCUSDT"]
    stored = Lake(tmp_path).read_candles("binance", "5m")
    assert len(stored) == len(recorded) == stored.select("symbol", "ts").n_unique()
    assert stored["ts"].to_list() == recorded["ts"].to_list()
    assert report.venue_outages == [] and report.symbol_gaps == []


@pytest.mark.parametrize("status", [429, 418])
def test_rate_limit_answers_are_backed_off_exponentially(recorded: pl.DataFrame, tmp_path: Path, status: int) -> None:
    with FakeBinance(recorded) as fake:
        sleeps: list[float] = []
        fake.fail_429, fake.fail_status = 2, status
        Backfiller(_source(fake, sleeps), Lake(tmp_path), _config(), progress=False).run(
            ["SOL/USDT"], ["candles_1h"], START, AS_OF
        )
    assert sleeps == [0.5, 1.0]


def test_a_hole_left_by_the_venue_is_refetched(recorded: pl.DataFrame, tmp_path: Path) -> None:
    hole = (AS_OF - timedelta(days=2, hours=5), AS_OF - timedelta(days=2, hours=3))
    with FakeBinance(recorded) as fake:
        fake.transient_holes = [("ETH/USDT", *hole)]
        report = Backfiller(_source(fake, []), Lake(tmp_path), _config(), progress=False).run(
            SYMBOLS, ["candles_5m"], START, AS_OF
        )
    assert report.refetched_holes == 1 and report.refetched_bars == 24  # two hours of 5m bars
    stored = Lake(tmp_path).read_candles("binance", "5m")
    assert stored["ts"].to_list() == recorded["ts"].to_list()
    assert Lake(tmp_path).read_gaps("binance", "candles_5m").is_empty()


def test_a_venue_wide_outage_is_recorded_and_never_filled(recorded: pl.DataFrame, tmp_path: Path) -> None:
    outage = (AS_OF - timedelta(days=1, hours=6), AS_OF - timedelta(days=1, hours=5))
    venue_has = recorded.filter(~((pl.col("ts") >= outage[0]) & (pl.col("ts") < outage[1])))
    lake = Lake(tmp_path)
    with FakeBinance(venue_has) as fake:
        report = Backfiller(_source(fake, []), lake, _config(), progress=False).run(
            SYMBOLS, ["candles_5m"], START, AS_OF
        )
        asked_again = len(fake.requests)
        Backfiller(_source(fake, []), lake, _config(), progress=False).run(SYMBOLS, ["candles_5m"], START, AS_OF)
        assert len(fake.requests) == asked_again  # a recorded outage is not asked for again every night

    assert [(o["symbol"], o["bars"]) for o in report.venue_outages] == [(s, 12) for s in SYMBOLS]
    outages = lake.venue_outages("binance", "candles_5m")
    assert outages["start"].to_list() == [outage[0]] * 3 and outages["end"].to_list() == [outage[1]] * 3
    stored = lake.read_candles("binance", "5m")
    assert len(stored) == len(venue_has)  # no invented bars
    # The gate excuses the recorded outage, and only it.
    assert validate_candles(stored, timeframe="5m", outages=outages).success
    unexcused = validate_candles(stored, timeframe="5m")
    assert {f.column for f in unexcused.failures} == {"bar_spacing_s"}
    count = lake.duckdb().execute("select count(*) from venue_outages where kind = 'candles_5m'").fetchone()
    assert count == (3,)


def test_a_hole_in_one_symbol_only_is_a_symbol_gap(recorded: pl.DataFrame, tmp_path: Path) -> None:
    hole = (AS_OF - timedelta(hours=10), AS_OF - timedelta(hours=9))
    venue_has = recorded.filter(
        ~((pl.col("symbol") == "SOL/USDT") & (pl.col("ts") >= hole[0]) & (pl.col("ts") < hole[1]))
    )
    with FakeBinance(venue_has) as fake:
        report = Backfiller(_source(fake, []), Lake(tmp_path), _config(), progress=False).run(
            SYMBOLS, ["candles_5m"], START, AS_OF
        )
    assert report.venue_outages == []
    assert report.symbol_gaps == [
        {"symbol": "SOL/USDT", "start": hole[0].isoformat(), "end": hole[1].isoformat(), "bars": 12}
    ]


def test_rerunning_a_window_rewrites_it_identically(recorded: pl.DataFrame, tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    with FakeBinance(recorded) as fake:
        Backfiller(_source(fake, []), lake, _config(), progress=False).run(SYMBOLS, ["candles_5m"], START, AS_OF)
        first = _bytes(tmp_path)
        # Forget the watermarks: the same day is fetched and written again.
        (tmp_path / "_state" / "watermarks.json").unlink()
        report = Backfiller(_source(fake, []), lake, _config(), progress=False).run(
            SYMBOLS, ["candles_5m"], START, AS_OF
        )
    assert report.rows["candles_5m"] == len(recorded)
    assert _bytes(tmp_path) == first


def test_order_book_snapshots_and_market_metadata(recorded: pl.DataFrame, tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    clock_now = [AS_OF]
    with FakeBinance(recorded) as fake:
        source = _source(fake, [])
        report = Backfiller(source, lake, _config(), progress=False).run(["BTC/USDT"], ["book_snapshots"], START, AS_OF)
        markets = load_market_metadata(source, lake, ttl=timedelta(hours=24), clock=lambda: clock_now[0])
        calls = fake.exchange_info_requests
        cached = load_market_metadata(source, lake, ttl=timedelta(hours=24), clock=lambda: clock_now[0])
        assert fake.exchange_info_requests == calls  # served from the lake's cache
        clock_now[0] = AS_OF + timedelta(hours=25)
        load_market_metadata(source, lake, ttl=timedelta(hours=24), clock=lambda: clock_now[0])
        assert fake.exchange_info_requests == calls + 1  # too old: asked the venue again
    assert report.rows["book_snapshots"] == 10
    top = lake.book_top("binance")
    assert top.height == 1 and top["bid"][0] < top["ask"][0]
    assert validate_book(top).success
    btc = cached.filter(pl.col("symbol") == "BTC/USDT").row(0, named=True)
    assert markets.equals(cached)
    assert (btc["tick_size"], btc["lot_size"], btc["min_notional"]) == (0.01, 1e-5, 5.0)
    assert btc["taker_fee"] is not None and btc["venue_symbol"] == "BTCUSDT"


def test_a_long_run_shows_a_progress_bar(recorded: pl.DataFrame, tmp_path: Path) -> None:
    stream = io.StringIO()
    with FakeBinance(recorded) as fake:
        Backfiller(_source(fake, []), Lake(tmp_path), _config(), progress_stream=stream).run(
            SYMBOLS, ["candles_5m"], START, AS_OF
        )
    assert "backfill binance" in stream.getvalue() and "9/9" in stream.getvalue()


def test_bad_requests_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(OperatorError, match="unknown backfill kind"):
        parse_kinds(["candles_7m"])
    synthetic = SyntheticSource(as_of=AS_OF, days=2, n_symbols=1)
    with pytest.raises(OperatorError, match="candles only, not trades"):
        Backfiller(synthetic, Lake(tmp_path), progress=False).run(["BTC/USDT"], ["trades"], START, AS_OF)
    with pytest.raises(OperatorError, match="window is empty"):
        Backfiller(synthetic, Lake(tmp_path), progress=False).run(["BTC/USDT"], ["candles_5m"], AS_OF, START)


def test_the_issue_scenario_429s_a_dropped_connection_and_a_hole(recorded: pl.DataFrame, tmp_path: Path) -> None:
    """Klines and trades paged; 429s backed off; the connection drops mid-run; the venue leaves a hole.
    Re-running the same command finishes the job: no duplicates, the hole re-fetched."""
    trades = _trades(1500)
    hole = (AS_OF - timedelta(days=1, hours=2), AS_OF - timedelta(days=1, hours=1))
    lake = Lake(tmp_path)
    with FakeBinance(recorded, trades=trades) as fake:
        sleeps: list[float] = []
        fake.transient_holes = [("ETH/USDT", *hole)]
        fake.fail_429 = 1
        fake.drop_from_request, fake.drop_count = 6, 4
        engine = Backfiller(_source(fake, sleeps, max_retries=3), lake, _config(), progress=False)
        kinds = ["candles_5m", "trades"]

        with pytest.raises(SourceUnavailableError):
            engine.run(["BTC/USDT", "ETH/USDT"], kinds, START, AS_OF)
        report = engine.run(["BTC/USDT", "ETH/USDT"], kinds, START, AS_OF)

    assert sleeps[:4] == [0.5, 0.5, 1.0, 2.0]  # the 429, then the drops until the retries ran out
    stored = lake.read_candles("binance", "5m")
    expected = recorded.filter(pl.col("symbol").is_in(["BTC/USDT", "ETH/USDT"]))
    assert stored.select("symbol", "ts").equals(expected.select("symbol", "ts"))
    assert report.refetched_bars == 12 and report.symbol_gaps == [] and report.venue_outages == []
    got = lake.read_trades("binance", ["BTC/USDT"])
    assert got["trade_id"].to_list() == [str(i) for i in trades["trade_id"]]


def _minute_bars(symbols: list[str], start: datetime, end: datetime) -> pl.DataFrame:
    """Seeded 1m bars (a random walk per symbol, volume on every bar)."""
    from pipelines.domain.candles import normalize_candles

    rng = np.random.default_rng(11)
    n = int((end - start) / timedelta(minutes=1))
    frames = []
    for i, symbol in enumerate(symbols):
        close = (10.0 + i) * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        frames.append(
            pl.DataFrame(
                {
                    "symbol": [symbol] * n,
                    "ts": pl.datetime_range(start, end - timedelta(minutes=1), "1m", time_zone="UTC", eager=True),
                    "open": open_,
                    "high": np.maximum(open_, close) * 1.0005,
                    "low": np.minimum(open_, close) * 0.9995,
                    "close": close,
                    "volume": rng.uniform(5, 50, n),
                }
            )
        )
    return normalize_candles(pl.concat(frames))


def test_a_1m_venue_outage_with_a_ragged_edge_is_one_outage_and_the_day_validates(tmp_path: Path) -> None:
    # Ten listed symbols; the venue stops 10:00-10:20 for most of them, but two still have the 10:00 bar and
    # one resumes a bar late (10:21): the ragged edge of one outage, as Binance's 1m data shows it.
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT",
               "ADA/USDT", "AVAX/USDT", "LINK/USDT", "DOT/USDT", "LTC/USDT"]
    start, as_of = AS_OF - timedelta(days=1), AS_OF
    bars = _minute_bars(symbols, start, as_of)
    down, up = start + timedelta(hours=10), start + timedelta(hours=10, minutes=20)
    early = {"SOL/USDT", "XRP/USDT"}  # one extra bar at the start of the outage
    late = {"DOT/USDT"}  # one bar more missing at its end
    ts, sym = pl.col("ts"), pl.col("symbol")
    missing = (
        (ts >= down) & (ts < up) & ~(sym.is_in(list(early)) & (ts == down))
    ) | (sym.is_in(list(late)) & (ts == up))
    venue_has = bars.filter(~missing)
    lake = Lake(tmp_path)

    with FakeBinance(venue_has, interval_ms=60_000) as fake:
        report = Backfiller(_source(fake, []), lake, _config(), progress=False).run(
            symbols, ["candles_1m"], start, as_of
        )

    assert report.symbol_gaps == []
    recorded = {o["symbol"]: (o["start"], o["end"], o["bars"]) for o in report.venue_outages}
    assert len(report.venue_outages) == len(symbols)  # one outage per symbol, edge included
    assert recorded["BTC/USDT"] == (down.isoformat(), up.isoformat(), 20)
    assert recorded["SOL/USDT"] == ((down + timedelta(minutes=1)).isoformat(), up.isoformat(), 19)
    assert recorded["DOT/USDT"] == (down.isoformat(), (up + timedelta(minutes=1)).isoformat(), 21)
    outages = lake.venue_outages("binance", "candles_1m")
    assert len(outages) == len(symbols) and lake.read_gaps("binance", "candles_1m", "symbol_gap").is_empty()
    stored = lake.read_candles("binance", "1m")
    assert len(stored) == len(venue_has)  # nothing invented
    assert validate_candles(stored, timeframe="1m", outages=outages).success


def test_a_hole_shared_by_too_few_symbols_stays_a_symbol_gap() -> None:
    from pipelines.backfill import classify_holes

    step = timedelta(minutes=1)
    t0 = AS_OF - timedelta(hours=1)
    first = {f"S{i}/USDT": AS_OF - timedelta(days=1) for i in range(10)}
    holes = {f"S{i}/USDT": [t0 + k * step for k in range(5)] for i in range(7)}  # 70% < 80%

    outages, gaps = classify_holes(holes, first, step, share=0.8)

    assert outages == [] and len(gaps) == 7
    outages, gaps = classify_holes(holes, first, step, share=0.7)
    assert len(outages) == 7 and gaps == []
