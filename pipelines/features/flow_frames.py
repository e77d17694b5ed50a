"""Recorded market events as the frames the batch flow features take (polars).

Inputs (all optional; what is absent gives null features):

- trades: `bars.TRADE_SCHEMA` (``symbol``, ``ts``, ``price``, ``qty``, ``is_buy``).
- book: one row per book update as recorded by `frames_from_events` (`book_schema`): ``symbol``, ``ts``,
  ``valid``, ``resync``, levels ``bid_px_1..L``, ``bid_qty_1..L``, ``ask_px_1..L``, ``ask_qty_1..L``, and the
  cancel-rate terms ``added``/``removed``.
- liquidations: ``symbol``, ``ts``, ``price``, ``qty``, ``is_buy`` (the forced order bought: a short was
  liquidated).

`frames_from_events` builds these from an event stream with the same per-symbol clock clamp as the live
engine. Part of `pipelines.features.flow`, which re-exports every name here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import polars as pl

from pipelines.domain.marketdata import BookDiff, BookSnapshot, BookTicker, CaptureEvent, Trade
from pipelines.features.bars import TS_DTYPE, normalize_trades
from pipelines.features.book import BookTracker
from pipelines.features.spec import DEFAULT_PARAMS, FeatureParams

LIQUIDATION_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "ts": TS_DTYPE,
    "price": pl.Float64(),
    "qty": pl.Float64(),
    "is_buy": pl.Boolean(),
}


@dataclass(frozen=True, slots=True)
class Liquidation:
    """A forced (liquidation) order on a perpetual: ``side`` is the forced order's side.

    ``"sell"`` closes a long (pressure down), ``"buy"`` closes a short. ``ts_us``: exchange time, µs UTC.
    No capture parser produces these yet (the recorded USD-M streams have no ``forceOrder``); the type
    belongs in `pipelines.domain.marketdata` once one does.
    """

    venue: str
    symbol: str
    ts_us: int
    side: Literal["buy", "sell"]
    price: float
    qty: float


def level_columns(levels: int) -> list[str]:
    """Book level column names, bids then asks, level 1 first."""
    return [f"{kind}_{m}" for kind in ("bid_px", "bid_qty", "ask_px", "ask_qty") for m in range(1, levels + 1)]


def book_schema(levels: int) -> dict[str, pl.DataType]:
    """Schema of the book frame (one row per applied or failed diff)."""
    schema: dict[str, pl.DataType] = {
        "symbol": pl.String(),
        "ts": TS_DTYPE,
        "valid": pl.Boolean(),
        "resync": pl.Boolean(),
    }
    schema.update({name: pl.Float64() for name in level_columns(levels)})
    schema.update({"added": pl.Float64(), "removed": pl.Float64()})
    return schema


@dataclass(frozen=True, slots=True)
class EventFrames:
    """A recorded event stream as frames: trades, book rows, liquidations, and per-symbol coverage
    (``symbol``, ``start`` = first trade, ``end`` = last event time) for `bars.time_bars`."""

    trades: pl.DataFrame
    book: pl.DataFrame
    liquidations: pl.DataFrame
    coverage: pl.DataFrame


AnyEvent = CaptureEvent | Trade | BookSnapshot | BookDiff | BookTicker | Liquidation


def frames_from_events(events: Iterable[AnyEvent], params: FeatureParams = DEFAULT_PARAMS) -> EventFrames:
    """Turn events in arrival order into the frames the batch features take.

    Event time is the exchange time, clamped per symbol to the latest exchange time already seen
    (``max(ts, clock)``): streams of one symbol arrive interleaved and a few ms out of order, and an
    event cannot be placed before one that was already processed. The live engine applies the same
    clamp, which is what makes its output comparable row for row. Book tickers are ignored (spot ones
    carry no exchange time; the depth book is the book source). Runs the order-book builder, so this is
    a Python loop over events (the features on top of the frames are vectorized).
    """
    levels = params.book_levels
    clock: dict[str, int] = {}
    first_trade: dict[str, int] = {}
    trackers: dict[str, BookTracker] = {}
    t_rows: list[tuple[str, int, float, float, bool]] = []
    l_rows: list[tuple[str, int, float, float, bool]] = []
    b_rows: list[tuple[object, ...]] = []
    empty_levels = (None,) * (4 * levels)
    for item in events:
        ev = item.event if isinstance(item, CaptureEvent) else item
        if isinstance(ev, BookTicker):
            continue
        sym = ev.symbol
        now = clock.get(sym)
        ts = ev.ts_us
        if ts is not None:
            now = ts if now is None or ts > now else now
            clock[sym] = now
        if isinstance(ev, Trade):
            assert now is not None
            first_trade.setdefault(sym, now)
            t_rows.append((sym, now, ev.price, ev.qty, ev.aggressor_side == "buy"))
        elif isinstance(ev, Liquidation):
            assert now is not None
            l_rows.append((sym, now, ev.price, ev.qty, ev.side == "buy"))
        else:
            tracker = trackers.get(sym)
            if tracker is None:
                tracker = trackers[sym] = BookTracker(sym, ev.venue, levels)
            if isinstance(ev, BookSnapshot):
                upd = tracker.on_snapshot(ev, now if ev.ts_us is not None else None)
            else:
                assert now is not None
                upd = tracker.on_diff(ev, now)
            if upd is None:
                continue
            if upd.top is None:
                b_rows.append((sym, upd.ts_us, False, False, *empty_levels, 0.0, 0.0))
            else:
                top = upd.top
                b_rows.append(
                    (
                        sym,
                        upd.ts_us,
                        True,
                        upd.resync,
                        *_pad(top.bid_px, levels, None),
                        *_pad(top.bid_qty, levels, 0.0),
                        *_pad(top.ask_px, levels, None),
                        *_pad(top.ask_qty, levels, 0.0),
                        upd.added,
                        upd.removed,
                    )
                )
    return _event_frames(t_rows, l_rows, b_rows, first_trade, clock, levels)


def _event_frames(
    t_rows: list[tuple[str, int, float, float, bool]],
    l_rows: list[tuple[str, int, float, float, bool]],
    b_rows: list[tuple[object, ...]],
    first_trade: dict[str, int],
    clock: dict[str, int],
    levels: int,
) -> EventFrames:
    """The collected rows of `frames_from_events` as typed frames (times µs UTC -> `TS_DTYPE`)."""
    level_names = level_columns(levels)
    raw_ts = {"symbol": pl.String, "ts": pl.Int64, "price": pl.Float64, "qty": pl.Float64, "is_buy": pl.Boolean}
    trades = normalize_trades(pl.DataFrame(t_rows, schema=raw_ts, orient="row"))
    liqs = normalize_trades(pl.DataFrame(l_rows, schema=raw_ts, orient="row"))
    b_schema = {**book_schema(levels), "ts": pl.Int64()}
    book = pl.DataFrame(b_rows, schema=b_schema, orient="row").with_columns(
        pl.from_epoch("ts", time_unit="us").cast(TS_DTYPE)
    )
    assert book.columns == ["symbol", "ts", "valid", "resync", *level_names, "added", "removed"]
    coverage = pl.DataFrame(
        [(s, first_trade[s], clock[s]) for s in first_trade],
        schema={"symbol": pl.String, "start": pl.Int64, "end": pl.Int64},
        orient="row",
    ).with_columns(pl.from_epoch(c, time_unit="us").cast(TS_DTYPE) for c in ("start", "end"))
    return EventFrames(trades, book, liqs, coverage)


def _pad(values: tuple[float, ...], n: int, fill: float | None) -> tuple[float | None, ...]:
    return (*values, *((fill,) * (n - len(values))))
