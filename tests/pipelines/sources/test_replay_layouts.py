"""Replay of the layouts traders already have: freqtrade data folders and Binance public-data klines.

Every file is written by the test itself, small, in the layout its tool produces.
"""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.errors import ConfigError
from pipelines.sources.candle_files import split_binance_symbol
from pipelines.sources.replay import ReplaySource

T0 = datetime(2024, 1, 1, tzinfo=UTC)
STEP = {"1m": timedelta(minutes=1), "5m": timedelta(minutes=5), "1h": timedelta(hours=1)}


def _bars(timeframe: str, n: int = 6, base: float = 100.0) -> pl.DataFrame:
    times = [T0 + STEP[timeframe] * i for i in range(n)]
    close = [base + i for i in range(n)]
    return pl.DataFrame(
        {
            "date": times,
            "open": [c - 0.5 for c in close],
            "high": [c + 1 for c in close],
            "low": [c - 1 for c in close],
            "close": close,
            "volume": [10.0 + i for i in range(n)],
        }
    ).with_columns(pl.col("date").dt.cast_time_unit("ms"))


def _freqtrade(root: Path, pair: str, timeframe: str, ext: str, futures: bool = False) -> pl.DataFrame:
    folder = root / "user_data" / "data" / "binance" / ("futures" if futures else "")
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{pair}-{timeframe}" + ("-futures" if futures else "") + f".{ext}"
    bars = _bars(timeframe)
    if ext == "feather":
        bars.write_ipc(folder / name)
    elif ext == "parquet":
        bars.write_parquet(folder / name)
    else:  # freqtrade's json: orient "values", epoch ms
        rows = bars.with_columns(pl.col("date").dt.epoch("ms")).rows()
        (folder / name).write_text(json.dumps([list(r) for r in rows]))
    return bars


def _binance_csv(bars: pl.DataFrame, *, header: bool, micros: bool) -> str:
    lines = ["open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
             "taker_buy_quote_volume,ignore"] if header else []
    for t, o, h, lo, c, v in bars.rows():
        start = int(t.timestamp() * (1_000_000 if micros else 1000))
        lines.append(f"{start},{o},{h},{lo},{c},{v},{start + 1},{v * c},7,{v / 2},{v * c / 2},0")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("timeframe", ["1m", "5m", "1h"])
@pytest.mark.parametrize("ext", ["feather", "json", "parquet"])
def test_freqtrade_spot_and_futures_files_replay(tmp_path: Path, timeframe: str, ext: str) -> None:
    spot = _freqtrade(tmp_path, "BTC_USDT", timeframe, ext)
    _freqtrade(tmp_path, "ETH_USDT_USDT", timeframe, ext, futures=True)

    source = ReplaySource(tmp_path / "user_data")
    got = source.fetch_candles(["BTC/USDT", "ETH/USDT:USDT"], timeframe, T0, T0 + STEP[timeframe] * 6)

    assert source.list_symbols("USDT") == ["BTC/USDT", "ETH/USDT:USDT"]
    assert got.group_by("symbol").len().sort("symbol")["len"].to_list() == [6, 6]
    btc = got.filter(pl.col("symbol") == "BTC/USDT")
    assert btc["close"].to_list() == spot["close"].to_list()
    assert btc["ts"].to_list() == [T0 + STEP[timeframe] * i for i in range(6)]
    assert got["ts"].dtype == pl.Datetime("us", "UTC")
    assert source.as_of() == T0 + STEP[timeframe] * 6


@pytest.mark.parametrize("timeframe", ["1m", "5m", "1h"])
def test_binance_public_data_zips_and_csvs_with_and_without_header_in_ms_and_us(
    tmp_path: Path, timeframe: str
) -> None:
    bars = _bars(timeframe)
    # monthly zip, no header, ms (the classic archive); daily zip with a header in µs (2025 spot files)
    with zipfile.ZipFile(tmp_path / f"BTCUSDT-{timeframe}-2024-01.zip", "w") as archive:
        archive.writestr(f"BTCUSDT-{timeframe}-2024-01.csv", _binance_csv(bars.head(3), header=False, micros=False))
    with zipfile.ZipFile(tmp_path / f"BTCUSDT-{timeframe}-2024-01-01.zip", "w") as archive:
        archive.writestr(f"BTCUSDT-{timeframe}-2024-01-01.csv", _binance_csv(bars.tail(3), header=True, micros=True))
    # an unzipped CSV of another pair, with a header, ms
    (tmp_path / f"ETHBTC-{timeframe}-2024-01.csv").write_text(_binance_csv(bars, header=True, micros=False))

    source = ReplaySource(tmp_path)
    got = source.fetch_candles(["BTC/USDT", "ETH/BTC"], timeframe, T0, T0 + STEP[timeframe] * 6)

    assert source.list_symbols("USDT") == ["BTC/USDT"] and source.list_symbols("BTC") == ["ETH/BTC"]
    btc = got.filter(pl.col("symbol") == "BTC/USDT")
    assert btc["ts"].to_list() == [T0 + STEP[timeframe] * i for i in range(6)]  # µs and ms agree
    assert btc["close"].to_list() == bars["close"].to_list()
    assert got.filter(pl.col("symbol") == "ETH/BTC")["volume"].to_list() == bars["volume"].to_list()


def test_a_coarser_timeframe_is_built_from_finer_files(tmp_path: Path) -> None:
    _freqtrade(tmp_path, "BTC_USDT", "1m", "feather")
    five = ReplaySource(tmp_path).fetch_candles(["BTC/USDT"], "5m", T0, T0 + timedelta(minutes=5))
    assert len(five) == 1 and five["volume"].item() == pytest.approx(sum(10.0 + i for i in range(5)))


def test_errors_name_the_layouts_looked_for_and_the_timeframe_asked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no candle files") as empty:
        ReplaySource(tmp_path, timeframe="1m")
    message = str(empty.value)
    assert "*_1m_*.parquet" in message and "<PAIR>-1m.feather" in message and "<SYMBOL>-1m-YYYY-MM" in message
    assert "_5m_" not in message

    _freqtrade(tmp_path, "BTC_USDT", "1h", "json")
    with pytest.raises(ConfigError, match="no 1m candles") as coarse:
        ReplaySource(tmp_path).fetch_candles(["BTC/USDT"], "1m", T0, T0 + timedelta(hours=1))
    assert "it has 1h" in str(coarse.value) and "<PAIR>-1m.feather" in str(coarse.value)


def test_binance_symbols_split_at_the_longest_known_quote() -> None:
    assert split_binance_symbol("BTCFDUSD") == "BTC/FDUSD"
    assert split_binance_symbol("ETHBTC") == "ETH/BTC"
    with pytest.raises(ValueError, match="quote currency"):
        split_binance_symbol("FOOBAR")
