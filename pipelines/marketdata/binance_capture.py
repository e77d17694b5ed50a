"""Parse raw Binance WebSocket captures (spot and USD-M) into domain events.

File format (gzip or plain text), one message per line::

    <local receive time, integer ns since the epoch> <combined-stream JSON>

where the JSON is ``{"stream": "<sym>@<kind>", "data": {...}}`` for ``trade``, ``depth@100ms`` /
``depth@0ms`` / ``depth`` (diffs) and ``bookTicker`` streams. The first file of a recording also holds one
REST depth snapshot line, ``{"lastUpdateId": ..., "bids": [...], "asks": [...]}`` (USD-M adds ``E``/``T``),
which names no symbol: it belongs to the symbol of the file.

Times: every event carries the exchange's time (trade ``T``, depth/bookTicker ``E``) in µs UTC; the local
stamp is kept apart in `CaptureEvent.recv_ns` because the recorder's clock is not the exchange's.

Trades: Binance's ``m`` is "the buyer is the maker", so ``m == true`` means the taker (aggressor) sold.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Collection, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Literal

import polars as pl

from pipelines.domain.marketdata import (
    BookDiff,
    BookLevel,
    BookSnapshot,
    BookTicker,
    CaptureEvent,
    Levels,
    Trade,
)
from pipelines.errors import OperatorError

try:  # orjson parses these files 3-5x faster than the standard library; json is the fallback
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - exercised only where orjson is not installed
    import json

    _loads = json.loads

BinanceMarket = Literal["spot", "usdm"]
StreamKind = Literal["trade", "depth", "bookTicker", "snapshot"]
ALL_KINDS: frozenset[str] = frozenset({"trade", "depth", "bookTicker", "snapshot"})

# ccxt exchange ids: Binance spot and Binance USD-M futures are separate exchanges in ccxt.
VENUE_BY_MARKET: dict[BinanceMarket, str] = {"spot": "binance", "usdm": "binanceusdm"}

# Quote assets tried, longest first, to split an exchange id like "BTCUSDT" when no market table from
# `load_markets` is given. Parsing recorded files must work offline; live code passes `resolve_symbol`.
_QUOTES = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "JPY")

# A line of one of these streams is cheap to recognise before JSON parsing (used by `kinds` filtering).
_KIND_MARKERS: dict[str, bytes] = {
    "trade": b'@trade"',
    "depth": b"@depth",
    "bookTicker": b'@bookTicker"',
    "snapshot": b'{"lastUpdateId"',
}


class CaptureFormatError(OperatorError):
    """A capture line does not have the documented shape (the message names file and line)."""


def binance_symbol(exchange_id: str, market: BinanceMarket) -> str:
    """ccxt unified symbol for a Binance id: ``BTCUSDT`` -> ``BTC/USDT`` (spot) or ``BTC/USDT:USDT`` (USD-M).

    Offline fallback only: splits on a known quote asset. Raises `ValueError` when none matches.
    """
    exchange_id = exchange_id.upper()
    for quote in _QUOTES:
        if exchange_id.endswith(quote) and len(exchange_id) > len(quote):
            base = exchange_id[: -len(quote)]
            # USD-M perpetuals settle in their quote asset: ccxt writes BASE/QUOTE:SETTLE.
            return f"{base}/{quote}:{quote}" if market == "usdm" else f"{base}/{quote}"
    raise ValueError(f"cannot split Binance symbol {exchange_id!r}: pass resolve_symbol from load_markets")


def infer_market(path: Path) -> BinanceMarket:
    """``spot`` or ``usdm`` from the capture's folder name (``.../spot/x.gz``, ``.../usdm/x.gz``)."""
    for part in reversed(path.parts[:-1]):
        if part in ("spot", "usdm"):
            return part  # type: ignore[return-value]  # narrowed by the membership test
    raise ValueError(f"cannot tell spot from usdm for {path}: pass market=")


def _open(path: Path) -> gzip.GzipFile | BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _levels(raw: list[list[str]]) -> Levels:
    return tuple([BookLevel(float(p), float(q)) for p, q in raw])


class _Parser:
    """Turns the JSON of one file into events; holds the per-file symbol context and the symbol cache."""

    __slots__ = ("_symbols", "file_name", "last_symbol", "market", "resolve", "venue")

    def __init__(self, market: BinanceMarket, resolve: Callable[[str], str], file_name: str) -> None:
        self.market = market
        self.venue = VENUE_BY_MARKET[market]
        self.resolve = resolve
        self.file_name = file_name
        self.last_symbol: str | None = None
        self._symbols: dict[str, str] = {}

    def symbol(self, exchange_id: str) -> str:
        # Cached: resolving per message would cost more than parsing the message.
        sym = self._symbols.get(exchange_id)
        if sym is None:
            sym = self._symbols[exchange_id] = self.resolve(exchange_id)
        self.last_symbol = sym
        return sym

    def snapshot_symbol(self) -> str:
        """A snapshot line names no symbol: it is the file's (one symbol per file, e.g. ``btcusdt_*.gz``)."""
        if self.last_symbol is not None:
            return self.last_symbol
        return self.symbol(self.file_name.split("_", 1)[0].split(".", 1)[0])

    def parse(self, msg: dict[str, Any]) -> Trade | BookDiff | BookTicker | BookSnapshot | None:
        stream = msg.get("stream")
        if stream is None:
            if "lastUpdateId" in msg:
                return self.snapshot(msg)
            raise KeyError("neither 'stream' nor 'lastUpdateId'")
        data = msg["data"]
        kind = stream[stream.index("@") + 1 :]
        if kind == "bookTicker":
            return BookTicker(
                self.venue,
                self.symbol(data["s"]),
                data["E"] * 1000 if "E" in data else None,  # spot bookTicker carries no time
                data["u"],
                float(data["b"]),
                float(data["B"]),
                float(data["a"]),
                float(data["A"]),
            )
        if kind == "trade":
            return Trade(
                self.venue,
                self.symbol(data["s"]),
                data["T"] * 1000,
                float(data["p"]),
                float(data["q"]),
                "sell" if data["m"] else "buy",  # m: buyer is maker => the taker sold
                str(data["t"]),
            )
        if kind.startswith("depth"):
            return BookDiff(
                self.venue,
                self.symbol(data["s"]),
                data["E"] * 1000,
                data["U"],
                data["u"],
                data.get("pu"),
                _levels(data["b"]),
                _levels(data["a"]),
            )
        return None  # a stream this parser does not model (aggTrade, markPrice, ...): skipped by contract

    def snapshot(self, msg: dict[str, Any]) -> BookSnapshot:
        return BookSnapshot(
            self.venue,
            self.snapshot_symbol(),
            msg["E"] * 1000 if "E" in msg else None,  # USD-M REST depth has E; spot has none
            msg["lastUpdateId"],
            _levels(msg["bids"]),
            _levels(msg["asks"]),
        )


def iter_binance_capture(
    paths: Path | str | Iterable[Path | str],
    *,
    market: BinanceMarket | None = None,
    kinds: Collection[str] = ALL_KINDS,
    resolve_symbol: Callable[[str], str] | None = None,
) -> Iterator[CaptureEvent]:
    """Stream the events of one or more capture files, in file order then line order (receive order).

    Args:
        paths: capture files (``.gz`` or plain); pass consecutive files of one recording in time order.
        market: ``"spot"`` or ``"usdm"``; default: inferred from each file's folder name.
        kinds: subset of ``{"trade", "depth", "bookTicker", "snapshot"}`` to yield; other lines are
            skipped before JSON parsing (a trades-only pass is several times faster).
        resolve_symbol: exchange id -> ccxt symbol (e.g. from ``load_markets``); default `binance_symbol`.

    Yields:
        `CaptureEvent` with ``recv_ns`` (local clock, ns) and a `Trade`, `BookDiff`, `BookTicker` or
        `BookSnapshot` whose ``ts_us`` is exchange time in µs UTC. Streams of other kinds are skipped.

    Raises:
        CaptureFormatError: a line is not ``<int> <json>`` of a known shape (names the file and line).
    """
    unknown = set(kinds) - ALL_KINDS
    if unknown:
        raise ValueError(f"unknown kinds {sorted(unknown)}; expected a subset of {sorted(ALL_KINDS)}")
    markers = tuple(_KIND_MARKERS[k] for k in kinds)
    filtering = len(markers) < len(_KIND_MARKERS)
    for path in [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]:
        mkt = market or infer_market(path)
        parser = _Parser(mkt, resolve_symbol or partial(binance_symbol, market=mkt), path.name)
        with _open(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if filtering and not any(m in line for m in markers):
                    continue
                try:
                    recv, payload = line.split(b" ", 1)
                    event = parser.parse(_loads(payload))
                    recv_ns = int(recv)
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    if not line.strip():
                        continue  # a blank line (e.g. a trailing newline) carries nothing
                    raise CaptureFormatError(f"{path}:{lineno}: malformed capture line: {exc!r}") from exc
                if event is not None:
                    yield CaptureEvent(recv_ns, event)


TRADES_SCHEMA: dict[str, pl.DataType] = {
    "venue": pl.String(),
    "symbol": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
    "price": pl.Float64(),
    "qty": pl.Float64(),
    "aggressor_side": pl.Enum(["buy", "sell"]),
    "trade_id": pl.String(),
    "recv_ts": pl.Datetime("us", "UTC"),
}


def trades_to_frame(events: Iterable[CaptureEvent]) -> pl.DataFrame:
    """The `Trade` events among ``events`` as a frame with `TRADES_SCHEMA`, in the given order.

    ``ts`` is exchange trade time and ``recv_ts`` the local receive time, both tz-aware UTC at µs
    precision (the lake's precision; see DESIGN.md on nanosecond timestamps).
    """
    cols: dict[str, list[Any]] = {name: [] for name in TRADES_SCHEMA}
    for ce in events:
        t = ce.event
        if isinstance(t, Trade):
            cols["venue"].append(t.venue)
            cols["symbol"].append(t.symbol)
            cols["ts"].append(t.ts_us)
            cols["price"].append(t.price)
            cols["qty"].append(t.qty)
            cols["aggressor_side"].append(t.aggressor_side)
            cols["trade_id"].append(t.trade_id)
            cols["recv_ts"].append(ce.recv_ns // 1000)
    # Build from ints and cast: cheaper than making 35k datetime objects.
    frame = pl.DataFrame(
        {
            **{k: v for k, v in cols.items() if k not in ("ts", "recv_ts")},
            "ts": pl.Series(cols["ts"], dtype=pl.Int64),
            "recv_ts": pl.Series(cols["recv_ts"], dtype=pl.Int64),
        }
    )
    return frame.select(pl.col(name).cast(dtype) for name, dtype in TRADES_SCHEMA.items())


def load_binance_trades(
    paths: Path | str | Iterable[Path | str],
    *,
    market: BinanceMarket | None = None,
    resolve_symbol: Callable[[str], str] | None = None,
) -> pl.DataFrame:
    """All trades of the capture files as one frame (`TRADES_SCHEMA`), in receive order."""
    return trades_to_frame(
        iter_binance_capture(paths, market=market, kinds=("trade",), resolve_symbol=resolve_symbol)
    )


BOOK_TICKER_SCHEMA: dict[str, pl.DataType] = {
    "venue": pl.String(),
    "symbol": pl.String(),
    "update_id": pl.Int64(),
    "ts": pl.Datetime("us", "UTC"),
    "bid_price": pl.Float64(),
    "bid_qty": pl.Float64(),
    "ask_price": pl.Float64(),
    "ask_qty": pl.Float64(),
    "recv_ts": pl.Datetime("us", "UTC"),
}


def load_binance_book_tickers(
    paths: Path | str | Iterable[Path | str],
    *,
    market: BinanceMarket | None = None,
    resolve_symbol: Callable[[str], str] | None = None,
) -> pl.DataFrame:
    """All bookTicker events as a frame (`BOOK_TICKER_SCHEMA`), in receive order.

    ``ts`` (exchange time) is null on spot, whose bookTicker stream sends no time; ``recv_ts`` is local.
    """
    rows: list[tuple[Any, ...]] = []
    for ce in iter_binance_capture(
        paths, market=market, kinds=("bookTicker",), resolve_symbol=resolve_symbol
    ):
        b = ce.event
        assert isinstance(b, BookTicker)  # guaranteed by kinds=("bookTicker",)
        rows.append(
            (
                b.venue,
                b.symbol,
                b.update_id,
                b.ts_us,
                b.bid_price,
                b.bid_qty,
                b.ask_price,
                b.ask_qty,
                ce.recv_ns // 1000,
            )
        )
    raw_schema = {k: (pl.Int64() if isinstance(v, pl.Datetime) else v) for k, v in BOOK_TICKER_SCHEMA.items()}
    frame = pl.DataFrame(rows, schema=raw_schema, orient="row")
    return frame.select(pl.col(name).cast(dtype) for name, dtype in BOOK_TICKER_SCHEMA.items())
