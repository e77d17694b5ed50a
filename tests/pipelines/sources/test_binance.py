"""The ccxt candle source, driven through the real ccxt client against a local fake venue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from pipelines.errors import SourceUnavailableError
from pipelines.sources.binance import CcxtCandleSource
from pipelines.sources.synthetic import SyntheticSource
from tests.fakes.binance_venue import FakeBinance

AS_OF = datetime(2026, 1, 10, tzinfo=UTC)


@pytest.fixture
def recorded() -> pl.DataFrame:
    source = SyntheticSource(as_of=AS_OF, days=5, n_symbols=3)
    return source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=5), AS_OF)


def _source(fake: FakeBinance, sleeps: list[float]) -> CcxtCandleSource:
    return CcxtCandleSource(
        "binance",
        urls=fake.ccxt_urls(),
        sleep=sleeps.append,
        backoff_s=0.5,
        max_retries=3,
        clock=lambda: AS_OF,
    )


def test_pages_klines_into_the_candle_schema(recorded: pl.DataFrame) -> None:
    # Arrange: 3 days of 5m bars is 864 bars, more than one page of 1000 only across symbols.
    with FakeBinance(recorded) as fake:
        sleeps: list[float] = []
        source = _source(fake, sleeps)
        # Act
        symbols = source.list_symbols("USDT")
        got = source.fetch_candles(["BTC/USDT"], "5m", AS_OF - timedelta(days=5), AS_OF)
    # Assert
    assert symbols == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    expected = recorded.filter(pl.col("symbol") == "BTC/USDT")
    assert len(got) == len(expected) == 5 * 288
    assert got["ts"].to_list() == expected["ts"].to_list()
    assert got["close"].to_list() == pytest.approx(expected["close"].to_list(), rel=1e-12)
    assert len(fake.requests) == 2  # 1440 bars need two pages of 1000
    assert sleeps == []


def test_backs_off_exponentially_on_429_then_succeeds(recorded: pl.DataFrame) -> None:
    with FakeBinance(recorded) as fake:
        sleeps: list[float] = []
        source = _source(fake, sleeps)
        source.list_symbols("USDT")
        fake.fail_429 = 2
        got = source.fetch_candles(["ETH/USDT"], "5m", AS_OF - timedelta(days=1), AS_OF)
    assert len(got) == 288
    assert sleeps == [0.5, 1.0]


def test_dropped_connection_is_retried(recorded: pl.DataFrame) -> None:
    with FakeBinance(recorded) as fake:
        sleeps: list[float] = []
        source = _source(fake, sleeps)
        source.list_symbols("USDT")
        fake.drop_connections = 1
        got = source.fetch_candles(["SOL/USDT"], "5m", AS_OF - timedelta(days=1), AS_OF)
    assert len(got) == 288
    assert sleeps == [0.5]


def test_gives_up_with_a_retryable_error_after_max_retries(recorded: pl.DataFrame) -> None:
    with FakeBinance(recorded) as fake:
        sleeps: list[float] = []
        source = _source(fake, sleeps)
        source.list_symbols("USDT")
        fake.fail_429 = 10
        with pytest.raises(SourceUnavailableError, match="fetch_ohlcv ETH/USDT"):
            source.fetch_candles(["ETH/USDT"], "5m", AS_OF - timedelta(days=1), AS_OF)
    assert sleeps == [0.5, 1.0, 2.0]


def test_unreachable_venue_reports_not_reachable() -> None:
    source = CcxtCandleSource("binance", urls={"public": "http://127.0.0.1:9/api/v3"}, timeout_s=1)
    assert source.reachable() is False
