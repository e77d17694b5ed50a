"""Parse Upbit WebSocket captures in Upbit's SIMPLE format into domain events.

Capture file format (as written by cryptofeed's raw-data recorder), one record per line::

    <local time, float seconds since the epoch>: b'<message JSON>'

plus connection lines (``wss://... <-> <time>``), the sent subscription (``wss://... <- <time>: [...]``)
and blank lines, which carry no market data and are skipped.

SIMPLE-format fields used here (Upbit abbreviates the DEFAULT format's names):

- common: ``ty`` type (``trade`` / ``orderbook``), ``cd`` market code (``KRW-BTC``: quote first),
  ``tms`` message timestamp (ms, UTC).
- trade: ``ttms`` trade timestamp (ms, UTC), ``tp`` price, ``tv`` volume (base asset), ``ab`` the
  aggressor (``ASK`` = a seller hit the bid, ``BID`` = a buyer lifted the ask), ``sid`` sequential id.
- orderbook: ``obu`` units best first, each ``ap``/``as`` ask price/size and ``bp``/``bs`` bid price/size.
  Upbit sends the whole book (15 levels) every time, so each message is a `BookSnapshot` without an
  update id (see `pipelines.marketdata.orderbook`).

Symbols become ccxt symbols: ``KRW-BTC`` -> ``BTC/KRW``; venue is ``upbit``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.domain.marketdata import BookLevel, BookSnapshot, CaptureEvent, Side, Trade
from pipelines.errors import OperatorError
from pipelines.marketdata.binance_capture import trades_to_frame

try:  # same parser choice as the Binance capture reader
    import orjson

    _loads: Callable[[bytes | str], Any] = orjson.loads
except ImportError:  # pragma: no cover - exercised only where orjson is not installed
    import json

    _loads = json.loads

VENUE = "upbit"

# Upbit's ask_bid names the side of the taker order.
_AGGRESSOR: dict[str, Side] = {"ASK": "sell", "BID": "buy"}


class UpbitFormatError(OperatorError):
    """A capture line or message does not have the documented SIMPLE shape (names file and line)."""


def upbit_symbol(code: str) -> str:
    """``KRW-BTC`` -> ``BTC/KRW`` (Upbit writes the quote first; ccxt writes the base first)."""
    quote, sep, base = code.partition("-")
    if not sep or not quote or not base:
        raise ValueError(f"not an Upbit market code: {code!r}")
    return f"{base}/{quote}"


def _ns_from_seconds(text: str) -> int:
    # Parse "1618678263.010785" exactly: a float would lose the last microsecond digits.
    whole, _, frac = text.strip().partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def parse_upbit_message(msg: dict[str, Any]) -> Trade | BookSnapshot | None:
    """One decoded SIMPLE-format message as a `Trade` or a `BookSnapshot`; None for other types.

    Raises `KeyError` / `ValueError` when a trade or orderbook message lacks a field.
    """
    ty = msg.get("ty")
    if ty == "trade":
        return Trade(
            VENUE,
            upbit_symbol(msg["cd"]),
            msg["ttms"] * 1000,  # trade time (ms -> µs); the 2021 capture has it at whole seconds
            float(msg["tp"]),
            float(msg["tv"]),
            _AGGRESSOR[msg["ab"]],
            str(msg["sid"]),
        )
    if ty == "orderbook":
        units = msg["obu"]
        # A unit with size 0 is padding (fewer than 15 levels on that side), not a level.
        return BookSnapshot(
            VENUE,
            upbit_symbol(msg["cd"]),
            msg["tms"] * 1000,
            None,
            tuple(BookLevel(float(u["bp"]), float(u["bs"])) for u in units if u["bs"] > 0),
            tuple(BookLevel(float(u["ap"]), float(u["as"])) for u in units if u["as"] > 0),
        )
    return None


def _payload(literal: str) -> bytes:
    # The recorder wrote repr(bytes). Without escapes it is just b'...': slice it (fast); anything
    # else (escaped non-ASCII, b"..." quoting) goes through the Python literal parser.
    if literal.startswith("b'") and literal.endswith("'") and "\\" not in literal:
        return literal[2:-1].encode()
    value = ast.literal_eval(literal)
    if not isinstance(value, bytes):
        raise ValueError("message is not a bytes literal")
    return value


def iter_upbit_capture(paths: Path | str | Iterable[Path | str]) -> Iterator[CaptureEvent]:
    """Stream `Trade` and `BookSnapshot` events from Upbit SIMPLE captures, in file and line order.

    ``recv_ns`` is the recorder's local time (ns); each event's ``ts_us`` is Upbit's time (µs UTC).
    Non-message lines and message types other than trade/orderbook are skipped.

    Raises:
        UpbitFormatError: a message line is malformed (names the file and line).
    """
    for path in [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                stamp, sep, literal = line.rstrip("\n").partition(": ")
                # Message lines start with the numeric stamp; connection/subscription lines with a URL.
                if not sep or not stamp[:1].isdigit():
                    continue
                try:
                    event = parse_upbit_message(_loads(_payload(literal.strip())))
                    recv_ns = _ns_from_seconds(stamp)
                except (ValueError, KeyError, TypeError, SyntaxError) as exc:
                    raise UpbitFormatError(f"{path}:{lineno}: malformed Upbit message: {exc!r}") from exc
                if event is not None:
                    yield CaptureEvent(recv_ns, event)


def load_upbit_trades(paths: Path | str | Iterable[Path | str]) -> pl.DataFrame:
    """All trades of the capture as a frame with `pipelines.marketdata.binance_capture.TRADES_SCHEMA`."""
    return trades_to_frame(iter_upbit_capture(paths))
