"""Candle files the replay source understands, found anywhere under a folder, read into one schema.

Layouts (a folder may mix them; every file becomes `symbol, open_time (µs UTC), open, high, low, close,
volume`):

1. The shared sample: `*_<tf>_*.parquet` with a `symbol` column (`binance_spot_5m_2024H1.parquet`).
2. freqtrade: `user_data/data/<exchange>/<PAIR>-<tf>.feather|json|parquet` (spot, `BTC_USDT-5m.feather`)
   and `.../futures/<PAIR>_<SETTLE>-<tf>-futures.<ext>` (`BTC_USDT_USDT-5m-futures.feather`, symbol
   `BTC/USDT:USDT`). feather/parquet hold `date, open, high, low, close, volume`; json (freqtrade's
   default "values" orient) a list of `[epoch ms, open, high, low, close, volume]`.
3. Binance public data (data.binance.vision klines): `<SYMBOL>-<tf>-YYYY-MM.zip` (monthly) or
   `<SYMBOL>-<tf>-YYYY-MM-DD.zip` (daily), or the CSV inside unzipped; with or without a header row;
   open times in epoch milliseconds or (spot files from 2025 on) microseconds. The symbol (`BTCUSDT`)
   is split at the longest known quote currency suffix (`KNOWN_QUOTES`).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "1d")
KNOWN_QUOTES = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USDP", "DAI", "BTC", "ETH", "BNB", "EUR", "TRY",
                "BRL", "JPY", "GBP", "AUD", "KRW", "XRP", "DOGE", "SOL")
_TF = "|".join(TIMEFRAMES)
_SAMPLE = re.compile(rf"_({_TF})_.*\.parquet$")
_FREQTRADE = re.compile(rf"^(?P<pair>[A-Z0-9]+(?:_[A-Z0-9]+){{1,2}})-(?P<tf>{_TF})(?P<futures>-futures)?"
                        r"\.(?P<ext>feather|json|parquet)$")
_BINANCE = re.compile(rf"^(?P<symbol>[A-Z0-9]+)-(?P<tf>{_TF})-\d{{4}}-\d{{2}}(?:-\d{{2}})?\.(?P<ext>zip|csv)$")
_US_THRESHOLD = 10**14  # epoch ms stay below this until the year 5138; epoch µs are above it since 1973

LAYOUTS = (
    "'*_<tf>_*.parquet' with a symbol column (the shared sample)",
    "freqtrade 'user_data/data/<exchange>/<PAIR>-<tf>.feather|json|parquet' "
    "(futures '<BASE>_<QUOTE>_<SETTLE>-<tf>-futures.<ext>')",
    "Binance public data '<SYMBOL>-<tf>-YYYY-MM[-DD].zip' or the unzipped '.csv'",
)
BINANCE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
                   "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore")


@dataclass(frozen=True)
class CandleFile:
    path: Path
    layout: str  # "sample", "freqtrade" or "binance"
    timeframe: str
    symbol: str | None  # None: the file has a symbol column


def split_binance_symbol(symbol: str) -> str:
    """`BTCUSDT` -> `BTC/USDT` at the longest known quote suffix; unknown quotes raise ValueError."""
    for quote in sorted(KNOWN_QUOTES, key=len, reverse=True):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return f"{symbol[: -len(quote)]}/{quote}"
    raise ValueError(f"cannot tell the quote currency of {symbol!r} (known: {', '.join(KNOWN_QUOTES)})")


def _freqtrade_symbol(pair: str, futures: bool) -> str:
    parts = pair.split("_")
    if futures and len(parts) == 3:
        return f"{parts[0]}/{parts[1]}:{parts[2]}"
    if len(parts) == 2:
        return f"{parts[0]}/{parts[1]}"
    raise ValueError(f"freqtrade pair {pair!r} is neither BASE_QUOTE nor BASE_QUOTE_SETTLE (futures)")


def discover(directory: Path) -> list[CandleFile]:
    """Every candle file under `directory` (recursively) in one of the known layouts."""
    found: list[CandleFile] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.name
        if (match := _FREQTRADE.match(name)) is not None:
            symbol = _freqtrade_symbol(match["pair"], bool(match["futures"]))
            found.append(CandleFile(path, "freqtrade", match["tf"], symbol))
        elif (match := _BINANCE.match(name)) is not None:
            found.append(CandleFile(path, "binance", match["tf"], split_binance_symbol(match["symbol"])))
        elif (match := _SAMPLE.search(name)) is not None:
            found.append(CandleFile(path, "sample", match.group(1), None))
    return found


def _epoch(column: pl.Expr) -> pl.Expr:
    """Epoch integers in ms or µs (told apart by size) as µs UTC datetimes."""
    value = column.cast(pl.Int64)
    micros = pl.when(value >= _US_THRESHOLD).then(value).otherwise(value * 1000)
    return pl.from_epoch(micros, time_unit="us").dt.replace_time_zone("UTC")


def _as_utc(column: str, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_integer():
        return _epoch(pl.col(column))
    expr = pl.col(column)
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        expr = expr.dt.replace_time_zone("UTC")
    return expr.dt.convert_time_zone("UTC").dt.cast_time_unit("us")


def _shaped(frame: pl.LazyFrame, symbol: str, time_column: str, dtype: pl.DataType) -> pl.LazyFrame:
    return frame.select(
        pl.lit(symbol).alias("symbol"),
        _as_utc(time_column, dtype).alias("open_time"),
        *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")),
    )


def _read_freqtrade(file: CandleFile) -> pl.LazyFrame:
    assert file.symbol is not None
    ext = file.path.suffix
    if ext == ".json":
        rows = json.loads(file.path.read_text() or "[]")
        frame = pl.DataFrame(
            rows, schema=["date", "open", "high", "low", "close", "volume"], orient="row"
        ).with_columns(pl.col("date").cast(pl.Int64))
        return _shaped(frame.lazy(), file.symbol, "date", pl.Int64())
    lazy = pl.scan_ipc(file.path) if ext == ".feather" else pl.scan_parquet(file.path)
    return _shaped(lazy, file.symbol, "date", lazy.collect_schema()["date"])


def _binance_csv(data: bytes, symbol: str) -> pl.LazyFrame:
    first = data.split(b"\n", 1)[0]
    header = not first[:1].isdigit()
    frame = pl.read_csv(
        io.BytesIO(data),
        has_header=header,
        new_columns=None if header else list(BINANCE_COLUMNS),
        schema_overrides={"open_time": pl.Int64},
    )
    frame = frame.rename({frame.columns[0]: "open_time"}) if header else frame
    return _shaped(frame.lazy(), symbol, "open_time", pl.Int64())


def _read_binance(file: CandleFile) -> pl.LazyFrame:
    assert file.symbol is not None
    if file.path.suffix == ".csv":
        return _binance_csv(file.path.read_bytes(), file.symbol)
    with zipfile.ZipFile(file.path) as archive:
        members = [m for m in archive.namelist() if m.endswith(".csv")]
        if not members:
            raise ValueError(f"{file.path} holds no CSV file")
        return pl.concat([_binance_csv(archive.read(m), file.symbol) for m in members])


def read(files: Iterable[CandleFile]) -> pl.LazyFrame:
    """One lazy frame over the files (same timeframe expected), duplicates of (symbol, open_time) dropped."""
    parts: list[pl.LazyFrame] = []
    for file in files:
        if file.layout == "sample":
            lazy = pl.scan_parquet(file.path)
            dtype = lazy.collect_schema()["open_time"]
            parts.append(
                lazy.select(
                    pl.col("symbol").cast(pl.String),
                    _as_utc("open_time", dtype).alias("open_time"),
                    *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")),
                )
            )
        elif file.layout == "freqtrade":
            parts.append(_read_freqtrade(file))
        else:
            parts.append(_read_binance(file))
    if not parts:
        raise ValueError("no candle files to read")
    frame = pl.concat(parts, how="vertical")
    return frame.unique(["symbol", "open_time"], keep="first", maintain_order=True) if len(parts) > 1 else frame
