"""Recorded market data as the simulator's feed: one int64 row per book-level change or trade.

A `Feed` is five aligned numpy arrays (one row per event, in event-time order):

- ``kind``: `BID` / `ASK` (a level's new absolute size; 0 removes it), `BUY_TRADE` / `SELL_TRADE` (the
  aggressor's side), `BID_CLEAR` / `ASK_CLEAR` (drop every level from the best up to ``px``: a snapshot
  follows);
- ``exch_ts``: exchange time, ns UTC (Binance ``E`` for depth, ``T`` for trades);
- ``local_ts``: when our process receives it, ns, on the exchange's clock: the recorder's stamp plus the
  venue's clock offset (`clock_offset_ns`), made non-decreasing so both clocks order the rows alike;
- ``px``: price in ticks of ``tick_size``; ``qty``: size in lots of ``lot_size`` (ints: the hot path
  never touches a float or a Decimal).

Building one from a Binance capture (`feed_from_binance_capture`) follows Binance's order-book rules:
the REST snapshot first, diffs in update-id order, diffs already in the snapshot dropped (spot: ``u <=
lastUpdateId``; USD-M: ``u < lastUpdateId``), the chain checked (spot: ``U == previous u + 1``; USD-M:
``pu == previous u``; breaks are counted in ``gaps``), and trades before the snapshot dropped (the book is
unknown then). Tick and lot sizes come from `MarketInfo` when given, else from the data itself (the
greatest common step of every price and size seen). The parse is cached as ``.npz`` under
``.cache/sim/`` (gitignored; ``ALPHATIDE_SIM_CACHE_DIR`` moves it), keyed by the files' names, sizes and
mtimes.

`feed_from_frames` builds the same rows from the lake's ``trades`` and ``book_snapshots`` frames
(each snapshot becomes the level changes from the previous one).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.domain.marketdata import BookDiff, BookSnapshot, Trade
from pipelines.marketdata.binance_capture import BinanceMarket, infer_market, iter_binance_capture

BID, ASK, BUY_TRADE, SELL_TRADE, BID_CLEAR, ASK_CLEAR = 1, 2, 3, 4, 5, 6
_SCALE = 10**8  # prices and sizes are read at 1e-8 resolution before finding their step
_CACHE_VERSION = "2"
# ALPHATIDE_SIM_CACHE_DIR moves it (e.g. outside a read-only checkout)
DEFAULT_CACHE = Path(
    os.environ.get("ALPHATIDE_SIM_CACHE_DIR") or Path(__file__).resolve().parents[2] / ".cache" / "sim"
)


@dataclass(frozen=True)
class Feed:
    """One market (venue, symbol) as int rows; see the module docstring."""

    venue: str
    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    kind: np.ndarray
    exch_ts: np.ndarray
    local_ts: np.ndarray
    px: np.ndarray
    qty: np.ndarray
    gaps: int = 0
    clock_offset_ns: int = 0
    update_id: np.ndarray | None = None  # per row: the venue's book update id (diffs, snapshot), else 0

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def feed_latency_ns(self) -> np.ndarray:
        """local receive time minus exchange time per row (what a replayed latency model reads)."""
        return self.local_ts - self.exch_ts


def _step(values: np.ndarray) -> int:
    """Greatest common step (at 1e-8) of the non-zero values."""
    nz = values[values > 0]
    return int(np.gcd.reduce(nz)) if nz.size else 1


def _decimal_step(units: int) -> Decimal:
    return (Decimal(units) / Decimal(_SCALE)).normalize()


def _to_units(step: Decimal) -> int:
    return int(step * _SCALE)


def finish_feed(
    venue: str,
    symbol: str,
    kind: Sequence[int],
    exch_ns: Sequence[int],
    recv_ns: Sequence[int],
    price: Sequence[float],
    qty: Sequence[float],
    *,
    tick_size: Decimal | None = None,
    lot_size: Decimal | None = None,
    clock_offset_ns: int | None = None,
    base_latency_ns: int = 0,
    gaps: int = 0,
    update_id: Sequence[int] | None = None,
) -> Feed:
    """Rows (any order) -> a `Feed`: sorted by exchange time (stable), converted to ticks and lots.

    ``clock_offset_ns`` None: the smallest shift that makes every row arrive no earlier than
    ``base_latency_ns`` after it happened (the recorder's clock ran behind the exchange's).
    """
    k = np.asarray(kind, dtype=np.int64)
    ets = np.asarray(exch_ns, dtype=np.int64)
    rts = np.asarray(recv_ns, dtype=np.int64)
    p_units = np.rint(np.asarray(price, dtype=np.float64) * _SCALE).astype(np.int64)
    q_units = np.rint(np.asarray(qty, dtype=np.float64) * _SCALE).astype(np.int64)
    order = np.argsort(ets, kind="stable")
    k, ets, rts, p_units, q_units = k[order], ets[order], rts[order], p_units[order], q_units[order]
    uid = np.asarray(update_id, dtype=np.int64)[order] if update_id is not None else None
    tick_u = _to_units(tick_size) if tick_size is not None else _step(p_units)
    lot_u = _to_units(lot_size) if lot_size is not None else _step(q_units)
    if clock_offset_ns is None:
        min_latency = int((rts - ets).min()) if len(rts) else 0
        clock_offset_ns = -min_latency + base_latency_ns if min_latency < base_latency_ns else 0
    local = np.maximum.accumulate(rts + clock_offset_ns) if len(rts) else rts
    local = np.maximum(local, ets)
    return Feed(
        venue,
        symbol,
        _decimal_step(tick_u),
        _decimal_step(lot_u),
        k,
        ets,
        local,
        np.rint(p_units / tick_u).astype(np.int64),
        np.rint(q_units / lot_u).astype(np.int64),
        gaps,
        clock_offset_ns,
        uid,
    )


class _Rows:
    """Column lists the loaders append to."""

    def __init__(self) -> None:
        self.kind: list[int] = []
        self.ets: list[int] = []
        self.rts: list[int] = []
        self.px: list[float] = []
        self.qty: list[float] = []
        self.uid: list[int] = []

    def add(self, kind: int, ets: int, rts: int, px: float, qty: float, uid: int = 0) -> None:
        self.uid.append(uid)
        self.kind.append(kind)
        self.ets.append(ets)
        self.rts.append(rts)
        self.px.append(px)
        self.qty.append(qty)

    def snapshot(self, snap: BookSnapshot, ets: int, rts: int) -> None:
        uid = snap.last_update_id or 0
        if snap.bids:
            self.add(BID_CLEAR, ets, rts, snap.bids[-1].price, 0.0, uid)
            for lvl in snap.bids:
                self.add(BID, ets, rts, lvl.price, lvl.qty, uid)
        if snap.asks:
            self.add(ASK_CLEAR, ets, rts, snap.asks[-1].price, 0.0, uid)
            for lvl in snap.asks:
                self.add(ASK, ets, rts, lvl.price, lvl.qty, uid)

    def diff(self, diff: BookDiff, rts: int) -> None:
        ets, uid = diff.ts_us * 1000, diff.final_update_id
        for lvl in diff.bids:
            self.add(BID, ets, rts, lvl.price, lvl.qty, uid)
        for lvl in diff.asks:
            self.add(ASK, ets, rts, lvl.price, lvl.qty, uid)


def _sequence(
    snapshot: BookSnapshot, diffs: list[tuple[int, BookDiff]], market: BinanceMarket
) -> tuple[list[tuple[int, BookDiff]], int]:
    """The diffs to apply after the snapshot, in update-id order, and the number of chain breaks."""
    last = snapshot.last_update_id or 0
    if market == "spot":
        kept = [(r, d) for r, d in diffs if d.final_update_id > last]
    else:
        kept = [(r, d) for r, d in diffs if d.final_update_id >= last]
    kept.sort(key=lambda rd: rd[1].final_update_id)
    gaps = 0
    prev: int | None = None
    for _, d in kept:
        if prev is None:
            ok = d.first_update_id <= last + (1 if market == "spot" else 0)
        elif market == "spot":
            ok = d.first_update_id == prev + 1
        else:
            ok = d.prev_final_update_id == prev
        gaps += 0 if ok else 1
        prev = d.final_update_id
    return kept, gaps


def _parse_capture(paths: list[Path], symbol: str, market: BinanceMarket, venue: str) -> tuple[_Rows, int]:
    snapshot: tuple[int, BookSnapshot] | None = None
    diffs: list[tuple[int, BookDiff]] = []
    trades: list[tuple[int, Trade]] = []
    for ce in iter_binance_capture(paths, market=market, kinds=("trade", "depth", "snapshot")):
        ev = ce.event
        if ev.symbol != symbol:
            continue
        if isinstance(ev, BookDiff):
            diffs.append((ce.recv_ns, ev))
        elif isinstance(ev, Trade):
            trades.append((ce.recv_ns, ev))
        elif isinstance(ev, BookSnapshot) and snapshot is None:
            snapshot = (ce.recv_ns, ev)
    if snapshot is None:
        raise ValueError(f"{symbol}: the capture holds no REST depth snapshot; the book cannot be built")
    snap_recv, snap = snapshot
    kept, gaps = _sequence(snap, diffs, market)
    first_diff_ts = kept[0][1].ts_us * 1000 if kept else snap_recv
    snap_ts = min(snap.ts_us * 1000, first_diff_ts) if snap.ts_us is not None else first_diff_ts
    rows = _Rows()
    rows.snapshot(snap, snap_ts, max(snap_recv, kept[0][0]) if kept else snap_recv)
    for rts, d in kept:
        rows.diff(d, rts)
    for rts, t in trades:
        ets = t.ts_us * 1000
        if ets >= snap_ts:
            rows.add(BUY_TRADE if t.aggressor_side == "buy" else SELL_TRADE, ets, rts, t.price, t.qty)
    return rows, gaps


def _cache_key(paths: list[Path], *parts: object) -> str:
    h = hashlib.sha256(_CACHE_VERSION.encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    h.update(repr(parts).encode())
    return h.hexdigest()[:24]


def feed_from_binance_capture(
    paths: Iterable[Path | str],
    symbol: str,
    *,
    market: BinanceMarket | None = None,
    tick_size: Decimal | None = None,
    lot_size: Decimal | None = None,
    clock_offset_ns: int | None = None,
    base_latency_ns: int = 0,
    cache_dir: Path | None = DEFAULT_CACHE,
) -> Feed:
    """The feed of ``symbol`` (ccxt form, e.g. ``BTC/USDT:USDT``) from consecutive capture files."""
    files = sorted(Path(p) for p in paths)
    if not files:
        raise ValueError("no capture files given")
    mkt: BinanceMarket = market or infer_market(files[0])
    venue = {"spot": "binance", "usdm": "binanceusdm"}[mkt]
    key = _cache_key(files, symbol, mkt, tick_size, lot_size, clock_offset_ns, base_latency_ns)
    cached = cache_dir / f"{key}.npz" if cache_dir is not None else None
    if cached is not None and cached.exists():
        return _load(cached)
    rows, gaps = _parse_capture(files, symbol, mkt, venue)
    feed = finish_feed(
        venue, symbol, rows.kind, rows.ets, rows.rts, rows.px, rows.qty, tick_size=tick_size,
        lot_size=lot_size, clock_offset_ns=clock_offset_ns, base_latency_ns=base_latency_ns, gaps=gaps,
        update_id=rows.uid,
    )
    if cached is not None:
        _save(feed, cached)
    return feed


def _save(feed: Feed, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(
        tmp, kind=feed.kind, exch_ts=feed.exch_ts, local_ts=feed.local_ts, px=feed.px, qty=feed.qty,
        update_id=feed.update_id if feed.update_id is not None else np.zeros(0, np.int64),
        meta=np.array([feed.venue, feed.symbol, str(feed.tick_size), str(feed.lot_size), str(feed.gaps),
                       str(feed.clock_offset_ns)]),
    )
    tmp.replace(path)


def _load(path: Path) -> Feed:
    with np.load(path) as z:
        venue, symbol, tick, lot, gaps, offset = (str(x) for x in z["meta"])
        uid = z["update_id"] if len(z["update_id"]) else None
        return Feed(venue, symbol, Decimal(tick), Decimal(lot), z["kind"], z["exch_ts"], z["local_ts"], z["px"],
                    z["qty"], int(gaps), int(offset), uid)


def feed_from_frames(
    trades: pl.DataFrame,
    book_snapshots: pl.DataFrame,
    *,
    venue: str,
    symbol: str,
    tick_size: Decimal | None = None,
    lot_size: Decimal | None = None,
    latency_ns: int = 0,
) -> Feed:
    """A feed from the lake's frames (`TRADES_SCHEMA`, `BOOK_SNAPSHOT_SCHEMA`) of one symbol.

    Every snapshot (rows sharing a ``ts``) replaces the book: levels it no longer lists are removed.
    Local time is ``recv_ts`` for trades when present, exchange time + ``latency_ns`` otherwise.
    """
    rows = _Rows()
    book = book_snapshots.filter(pl.col("symbol") == symbol).sort("ts", "side", "level")
    prev: dict[tuple[int, float], float] = {}
    for (ts,), group in book.group_by(["ts"], maintain_order=True):
        ets = _ns(ts)
        now = {(BID if s == "bid" else ASK, p): q for s, p, q in group.select("side", "price", "qty").iter_rows()}
        for (side, p) in prev.keys() - now.keys():
            rows.add(side, ets, ets + latency_ns, p, 0.0)
        for (side, p), q in now.items():
            if prev.get((side, p)) != q:
                rows.add(side, ets, ets + latency_ns, p, q)
        prev = now
    tr = trades.filter(pl.col("symbol") == symbol)
    has_recv = "recv_ts" in tr.columns
    for row in tr.iter_rows(named=True):
        ets = _ns(row["ts"])
        rts = _ns(row["recv_ts"]) if has_recv and row["recv_ts"] is not None else ets + latency_ns
        rows.add(BUY_TRADE if row["aggressor_side"] == "buy" else SELL_TRADE, ets, rts, row["price"], row["qty"])
    return finish_feed(venue, symbol, rows.kind, rows.ets, rows.rts, rows.px, rows.qty, tick_size=tick_size,
                       lot_size=lot_size, clock_offset_ns=0)


def _ns(ts: object) -> int:
    if hasattr(ts, "timestamp"):
        return round(ts.timestamp() * 1e6) * 1000  # type: ignore[union-attr]
    if isinstance(ts, int):
        return ts * 1000  # µs ints (the lake's precision)
    raise TypeError(f"unsupported timestamp {ts!r}")

