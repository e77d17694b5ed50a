"""Venue-independent market-data types: trades, order-book snapshots and diffs, best bid/ask tickers.

Conventions shared by every type here:

- Time: ``ts_us`` is the *exchange's* event time as an ``int`` of microseconds since the Unix epoch, UTC.
  An int (not a ``datetime``) because a capture holds hundreds of thousands of events and the lake stores
  microsecond UTC timestamps anyway (``polars.Datetime("us", "UTC")``). It is ``None`` where the venue
  sends no time (Binance spot ``bookTicker`` and REST depth snapshots).
- Local receive time is not part of these types: it belongs to how an event was received (see
  `CaptureEvent`), and the recorder's clock may be off from the exchange's (1.27 s in the Binance capture).
- Prices and quantities are ``float``: market data is read, compared and averaged, never used to size an
  order, and floats keep parsing ~170k messages per market cheap. The same decimal string always parses to
  the same float, so prices are exact dictionary keys. Orders use ``Decimal`` elsewhere (rounded to the
  venue's tick and lot).
- Quantities are in the base asset (BTC for ``BTC/USDT``); prices in the quote asset per base unit.
- Symbols are ccxt unified symbols: ``BTC/USDT`` (spot), ``BTC/USDT:USDT`` (USDT-margined perpetual),
  ``BTC/KRW``. ``venue`` is the ccxt exchange id (``binance``, ``binanceusdm``, ``upbit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

Side = Literal["buy", "sell"]


class BookLevel(NamedTuple):
    """One price level: ``qty`` (base asset) resting at ``price`` (quote per base).

    A ``NamedTuple`` rather than a dataclass: a capture holds ~1.4 million levels and a tuple is two to
    three times cheaper to build; it is immutable all the same. In a `BookDiff`, ``qty == 0`` means
    "remove this level".
    """

    price: float
    qty: float


Levels = tuple[BookLevel, ...]


@dataclass(frozen=True, slots=True)
class Trade:
    """One public trade.

    ``aggressor_side`` is the side of the taker (the order that crossed the spread): ``"buy"`` lifted an
    ask, ``"sell"`` hit a bid. ``ts_us`` is the venue's trade (match) time, microseconds since the epoch, UTC.
    ``trade_id`` is a string as in ccxt, because not every venue's ids are integers.
    """

    venue: str
    symbol: str
    ts_us: int
    price: float
    qty: float
    aggressor_side: Side
    trade_id: str


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """A full (or top-N) order book at ``last_update_id``.

    ``bids`` are sorted best (highest) first, ``asks`` best (lowest) first. ``last_update_id`` is ``None``
    for venues that send whole books with no update-id sequence (Upbit): such a snapshot is complete by
    itself and no diffs follow it. ``ts_us`` is exchange time (µs, UTC) or ``None`` when not sent.
    """

    venue: str
    symbol: str
    ts_us: int | None
    last_update_id: int | None
    bids: Levels
    asks: Levels


@dataclass(frozen=True, slots=True)
class BookDiff:
    """An incremental order-book update covering update ids ``first_update_id`` .. ``final_update_id``.

    Quantities are absolute (the new size at that price), not deltas; ``qty == 0`` removes the level.
    ``prev_final_update_id`` is the ``final_update_id`` of the previous diff on the same stream when the
    venue sends it (Binance USD-M ``pu``), else ``None`` (Binance spot, where ids are contiguous instead).
    ``ts_us`` is the exchange event time (µs, UTC).
    """

    venue: str
    symbol: str
    ts_us: int
    first_update_id: int
    final_update_id: int
    prev_final_update_id: int | None
    bids: Levels
    asks: Levels


@dataclass(frozen=True, slots=True)
class BookTicker:
    """Best bid and ask after order-book update ``update_id`` (the same id space as `BookDiff` ids).

    ``ts_us`` is exchange time (µs, UTC), ``None`` where the venue does not send it (Binance spot).
    """

    venue: str
    symbol: str
    ts_us: int | None
    update_id: int
    bid_price: float
    bid_qty: float
    ask_price: float
    ask_qty: float


MarketEvent = Trade | BookSnapshot | BookDiff | BookTicker


@dataclass(frozen=True, slots=True)
class CaptureEvent:
    """A market event as received: ``recv_ns`` is the receiver's local clock, nanoseconds since the epoch.

    Use ``event.ts_us`` (exchange time) for event time; ``recv_ns`` only for receive latency and for
    ordering events as they arrived across streams.
    """

    recv_ns: int
    event: MarketEvent
