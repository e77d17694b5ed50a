"""Recorded market data into the lake: a Binance WebSocket capture becomes `trades` and `book_snapshots`.

The capture's REST depth snapshot and depth diffs are applied in update-id order by
`pipelines.marketdata.orderbook.OrderBook` (resync on a gap); every `snapshot_every_s` seconds of exchange
time the top `depth` levels of a synced, uncrossed book are kept as one snapshot. Trades keep their
aggressor side. Rows follow `TRADES_SCHEMA` and `BOOK_SNAPSHOT_SCHEMA`, so the universe (book spreads,
trade counts) and validation (spread) read recorded data the same way as backfilled data.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.domain.marketdata import BookDiff, BookSnapshot, Trade
from pipelines.lake import BOOK_SNAPSHOT_SCHEMA, Lake
from pipelines.marketdata.binance_capture import infer_market, iter_binance_capture, trades_to_frame
from pipelines.marketdata.orderbook import OrderBook, SyncRule


def ingest_binance_capture(
    paths: Iterable[Path],
    lake: Lake,
    *,
    venue: str = "binance",
    snapshot_every_s: float = 1.0,
    depth: int = 20,
) -> dict[str, Any]:
    """Write the capture's trades and periodic book snapshots into the lake; returns counts per kind.

    Pass the consecutive files of one recording in time order. Idempotent: the lake merges by trade id
    and by snapshot time.
    """
    files = [Path(p) for p in paths]
    if not files:
        raise ValueError("no capture files given")
    rule = SyncRule.FUTURES if infer_market(files[0]) == "usdm" else SyncRule.SPOT
    every_us = int(snapshot_every_s * 1_000_000)
    books: dict[str, OrderBook] = {}
    next_at: dict[str, int] = {}
    trades = []
    rows: list[tuple[Any, ...]] = []
    resyncs = 0
    for captured in iter_binance_capture(files, kinds=("trade", "depth", "snapshot")):
        event = captured.event
        if isinstance(event, Trade):
            trades.append(captured)
            continue
        book = books.setdefault(event.symbol, OrderBook(event.symbol, rule))
        if isinstance(event, BookSnapshot):
            book.apply_snapshot(event)
            continue
        if not isinstance(event, BookDiff):
            continue
        was_synced = book.is_synced
        book.apply_diff(event)
        resyncs += int(was_synced and not book.is_synced)
        if not book.is_synced or book.is_crossed() or event.ts_us < next_at.get(event.symbol, 0):
            continue
        next_at[event.symbol] = event.ts_us - event.ts_us % every_us + every_us
        bids, asks = book.top_levels(depth)
        for side, levels in (("bid", bids), ("ask", asks)):
            rows += [
                (venue, event.symbol, event.ts_us, book.last_update_id, side, i, level.price, level.qty)
                for i, level in enumerate(levels)
            ]
    trade_frame = trades_to_frame(trades).with_columns(pl.lit(venue).alias("venue"))
    raw = {
        k: (pl.Int64() if isinstance(v, pl.Datetime) else pl.String() if isinstance(v, pl.Enum) else v)
        for k, v in BOOK_SNAPSHOT_SCHEMA.items()
    }
    book_frame = pl.DataFrame(rows, schema=raw, orient="row").select(
        pl.col(n).cast(t) for n, t in BOOK_SNAPSHOT_SCHEMA.items()
    )
    lake.write_trades(trade_frame, venue)
    lake.write_book_snapshots(book_frame, venue)
    return {
        "trades": len(trade_frame),
        "book_snapshots": book_frame.select("symbol", "ts").n_unique() if len(book_frame) else 0,
        "book_rows": len(book_frame),
        "resyncs": resyncs,
    }
