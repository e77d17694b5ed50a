"""Incremental (live stream) features: per-symbol state updated one event at a time.

The same features as `pipelines.features.batch` (definitions and parameters from
`pipelines.features.spec`), for a process that sees market events as they happen. The parity tests
feed recorded data through both and require the same values (relative difference <= 1e-9, same nulls).

Use::

    engine = FeatureEngine("5m")                       # bars built from trades
    for event in stream:                               # Trade, BookSnapshot, BookDiff, Liquidation, ...
        for row in engine.on_event(event):             # a FeatureRow per bar the event closed
            publish(row)
    engine.features_at("BTC/USDT", now_us)             # intra-bar values at any later time

    engine = FeatureEngine("5m", bars="candles")       # bars given as candles (klines)
    row = engine.on_candle("BTC/USDT", ts_us, o, h, l, c, v)

Time: exchange time in µs UTC. Per symbol the engine keeps a clock, the latest exchange time seen; an
event older than the clock (streams of one symbol interleave a few ms out of order) is taken to happen
at the clock. A bar ``[ts, ts + timeframe)`` closes when an event at or after its end arrives (or
`advance_to` says time has passed), before that event is applied: its values use events strictly
before the close. Spot book tickers carry no exchange time and are ignored (the depth book is the book
source, as in the batch path).

Cost: O(1) per trade, book diff or liquidation (a book diff also walks the top ``book_levels`` levels,
a constant); windowed sums over time use running totals and checkpoint lists trimmed as the windows
move. At each bar close the bar-window statistics are recomputed from ring buffers of at most
`FeatureParams.hurst_window` (128) bars: O(window) per bar, i.e. per 5 minutes, not per event. They are
recomputed with exactly rounded sums (`math.fsum`) rather than kept as running sums, so they do not
drift over a long-running process and do not depend on how long it has been running. The Hurst
exponent is the costliest: O(window x lags) per bar (numpy, ~50 µs).

Layout: this module holds the engine (`FeatureEngine`, per-symbol state, bar closes); the bar-window
features are `pipelines.features.incremental_bars.BarFeatures` (re-exported here) and the trade / book /
liquidation flow state is in `pipelines.features.incremental_flow`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pipelines.domain.marketdata import BookDiff, BookSnapshot, BookTicker, CaptureEvent, Trade
from pipelines.features.bars import Bar, TimeBarBuilder
from pipelines.features.flow import AnyEvent, Liquidation
from pipelines.features.incremental_bars import BarFeatures, Value
from pipelines.features.incremental_flow import _BookFlow, _LiqFlow, _TradeFlow
from pipelines.features.spec import (
    DEFAULT_PARAMS,
    FEATURE_COLUMNS,
    OFI_LEVELS,
    FeatureParams,
    timeframe_us,
)

__all__ = ["BarFeatures", "FeatureEngine", "FeatureRow", "Value"]


@dataclass(frozen=True, slots=True)
class FeatureRow:
    """Features of one closed bar: open ``ts_us``, close ``event_ts_us`` (µs UTC), and ``values`` for
    every name of `FEATURE_COLUMNS` (None = null)."""

    symbol: str
    ts_us: int
    event_ts_us: int
    values: dict[str, Value]



class _Symbol:
    """All state of one symbol."""

    def __init__(self, symbol: str, bar_us: int, p: FeatureParams, build_bars: bool) -> None:
        self.symbol = symbol
        self.clock: int | None = None
        self.bars = BarFeatures(bar_us, p)
        self.builder = TimeBarBuilder(bar_us) if build_bars else None
        self.trades = _TradeFlow(p, symbol)
        self.book: _BookFlow | None = None
        self.liq = _LiqFlow(p)
        self.liq_start: int | None = None
        # Signed-quote running total at the last few bar boundaries the clock crossed (Kyle's lambda).
        self.boundaries: deque[tuple[int, float]] = deque(maxlen=8)
        self.next_boundary: int | None = None


class FeatureEngine:
    """Incremental features for any number of symbols; see the module docstring.

    ``bars="trades"``: time bars are built from trades (`bars.TimeBarBuilder`) and every event may close
    bars. ``bars="candles"``: bars come from `on_candle`; trades, book and liquidation events (if any)
    still feed the flow features evaluated at each candle's close.
    """

    def __init__(
        self,
        timeframe: str = "5m",
        params: FeatureParams = DEFAULT_PARAMS,
        *,
        bars: Literal["trades", "candles"] = "trades",
    ) -> None:
        self.timeframe = timeframe
        self.bar_us = timeframe_us(timeframe)
        self.params = params
        self.build_bars = bars == "trades"
        self._symbols: dict[str, _Symbol] = {}
        self._last_bar_values: dict[str, dict[str, Value]] = {}  # per symbol, for features_at

    # ---- state --------------------------------------------------------------------------------------
    def _state(self, symbol: str) -> _Symbol:
        st = self._symbols.get(symbol)
        if st is None:
            st = self._symbols[symbol] = _Symbol(symbol, self.bar_us, self.params, self.build_bars)
        return st

    def symbols(self) -> list[str]:
        return list(self._symbols)

    def clock(self, symbol: str) -> int | None:
        """Latest exchange time (µs UTC) seen for ``symbol``."""
        st = self._symbols.get(symbol)
        return None if st is None else st.clock

    # ---- events -------------------------------------------------------------------------------------
    def on_event(self, event: AnyEvent) -> list[FeatureRow]:
        """Dispatch any market event; returns the rows of the bars it closed (usually none)."""
        ev = event.event if isinstance(event, CaptureEvent) else event
        if isinstance(ev, Trade):
            return self.on_trade(ev)
        if isinstance(ev, BookDiff):
            return self.on_book_diff(ev)
        if isinstance(ev, BookTicker):
            return []
        if isinstance(ev, BookSnapshot):
            return self.on_book_snapshot(ev)
        if isinstance(ev, Liquidation):
            return self.on_liquidation(ev)
        raise TypeError(f"unsupported event {type(ev).__name__}")

    def on_events(self, events: Iterable[AnyEvent]) -> list[FeatureRow]:
        """`on_event` over ``events``; all closed-bar rows, in order."""
        rows: list[FeatureRow] = []
        for ev in events:
            rows.extend(self.on_event(ev))
        return rows

    def on_trade(self, trade: Trade) -> list[FeatureRow]:
        """A public trade (its ``ts_us`` is the match time); the first one of a symbol starts its trade
        feed (bars, trade windows and VPIN buckets count from it). O(1)."""
        st = self._state(trade.symbol)
        now, rows = self._advance(st, trade.ts_us)
        is_buy = trade.aggressor_side == "buy"
        st.trades.add(now, trade.price, trade.qty, is_buy)
        if st.liq_start is None:
            st.liq_start = now
        if st.builder is not None:
            st.builder.add_trade(now, trade.price, trade.qty, is_buy)
        if st.next_boundary is None:
            self._start_boundaries(st, now)
        return rows

    def on_book_diff(self, diff: BookDiff) -> list[FeatureRow]:
        """An order-book diff, applied through the symbol's `OrderBook` (gaps invalidate the book until
        the next snapshot). O(levels in the diff + book_levels)."""
        st = self._state(diff.symbol)
        now, rows = self._advance(st, diff.ts_us)
        book = st.book
        if book is None:
            book = st.book = _BookFlow(self.params, diff.symbol, diff.venue)
        upd = book.tracker.on_diff(diff, now)
        if upd is not None:
            book.add(upd)
        return rows

    def on_book_snapshot(self, snapshot: BookSnapshot) -> list[FeatureRow]:
        """A REST (re)snapshot with an update id, or a whole-book snapshot of a venue without diffs."""
        st = self._state(snapshot.symbol)
        rows: list[FeatureRow] = []
        now: int | None = None
        if snapshot.ts_us is not None:
            now, rows = self._advance(st, snapshot.ts_us)
        book = st.book
        if book is None:
            book = st.book = _BookFlow(self.params, snapshot.symbol, snapshot.venue)
        upd = book.tracker.on_snapshot(snapshot, now)
        if upd is not None:
            book.add(upd)
        return rows

    def on_liquidation(self, liq: Liquidation) -> list[FeatureRow]:
        """A forced order on a perpetual (feeds liquidation_imbalance). O(1)."""
        st = self._state(liq.symbol)
        now, rows = self._advance(st, liq.ts_us)
        if st.liq_start is None:
            st.liq_start = now
        st.liq.add(now, liq.price * liq.qty, liq.side == "buy")
        return rows

    def advance_to(self, symbol: str, ts_us: int) -> list[FeatureRow]:
        """Tell the engine no event of ``symbol`` before ``ts_us`` is still to come: closes due bars."""
        st = self._state(symbol)
        _, rows = self._advance(st, ts_us)
        return rows

    def on_candle(
        self, symbol: str, ts_us: int, open: float, high: float, low: float, close: float, volume: float
    ) -> FeatureRow:
        """A closed candle ``[ts_us, ts_us + timeframe)`` (``bars="candles"``); returns its features.

        Candles of a symbol must come in time order; events of the symbol at or after the candle's close
        must not have been applied yet (flow values are taken at the close).
        """
        if self.build_bars:
            raise ValueError('on_candle needs FeatureEngine(bars="candles")')
        st = self._state(symbol)
        end = ts_us + self.bar_us
        if st.clock is not None and st.clock >= end:
            raise ValueError(f"{symbol}: candle closing at {end} arrived after an event at {st.clock}")
        if st.next_boundary is not None:
            self._cross_boundaries(st, end)
        return self._close_bar(st, ts_us, open, high, low, close, volume)

    def seed_bar(
        self, symbol: str, ts_us: int, open: float, high: float, low: float, close: float, volume: float
    ) -> dict[str, Value]:
        """A closed bar from history (e.g. the lake's candles), fed before the symbol's first live event.

        Warms the bar-window features (RSI, ATR, ADX, Bollinger, regimes, Hurst, ...) so a stream that
        just started scores real values instead of nulls. The bar's signed volume is unknown (Kyle's
        lambda gets None for it). Returns the bar's candle features.
        """
        st = self._state(symbol)
        if st.clock is not None:
            raise ValueError(f"{symbol}: seed_bar after live events (clock {st.clock})")
        values = st.bars.update(ts_us, open, high, low, close, volume, None)
        self._last_bar_values[symbol] = values
        return values

    def features_at(self, symbol: str, t_us: int) -> dict[str, Value]:
        """Every feature of ``symbol`` at time ``t_us`` (> its clock): flow and book values at ``t_us``,
        bar values of the last closed bar. For scoring between bar closes."""
        st = self._symbols.get(symbol)
        if st is None:
            return dict(_NULL_ROW)
        if st.clock is not None and t_us <= st.clock:
            raise ValueError(f"{symbol}: features_at({t_us}) must be after the latest event ({st.clock})")
        out = dict(self._last_bar_values.get(symbol, _NULL_ROW))
        self._flow_values(st, t_us, out)
        return {name: out[name] for name in FEATURE_COLUMNS}

    # ---- internals ----------------------------------------------------------------------------------
    def _advance(self, st: _Symbol, ts_us: int) -> tuple[int, list[FeatureRow]]:
        clock = st.clock
        now = ts_us if clock is None or ts_us > clock else clock
        rows: list[FeatureRow] = []
        if clock is None or now > clock:
            if st.next_boundary is not None and now >= st.next_boundary:
                if st.builder is not None:
                    for bar in st.builder.advance(now):
                        self._cross_boundaries(st, bar.ts_us + self.bar_us)
                        rows.append(self._close_built_bar(st, bar))
                self._cross_boundaries(st, now)
            st.clock = now
        return now, rows

    def _start_boundaries(self, st: _Symbol, now: int) -> None:
        first = now - now % self.bar_us
        st.boundaries.append((first, 0.0))  # nothing was traded before the first event
        st.next_boundary = first + self.bar_us

    def _cross_boundaries(self, st: _Symbol, now: int) -> None:
        """Record the signed-quote total at every bar boundary up to ``now`` (the last few suffice)."""
        nb = st.next_boundary
        if nb is None or now < nb:
            return
        last = now - now % self.bar_us
        first = max(nb, last - (st.boundaries.maxlen or 8) * self.bar_us)
        total = st.trades.sq
        for b in range(first, last + 1, self.bar_us):
            st.boundaries.append((b, total))
        st.next_boundary = last + self.bar_us

    def _boundary_total(self, st: _Symbol, b: int) -> Value:
        for ts, total in reversed(st.boundaries):
            if ts == b:
                return total
        return None

    def _close_built_bar(self, st: _Symbol, bar: Bar) -> FeatureRow:
        return self._close_bar(st, bar.ts_us, bar.open, bar.high, bar.low, bar.close, bar.volume)

    def _close_bar(self, st: _Symbol, ts_us: int, o: float, h: float, lo: float, c: float, v: float) -> FeatureRow:
        end = ts_us + self.bar_us
        signed: Value = None
        start = st.trades.start
        if start is not None and ts_us >= start:
            at_open, at_close = self._boundary_total(st, ts_us), self._boundary_total(st, end)
            if at_open is not None and at_close is not None:
                signed = at_close - at_open
        values = st.bars.update(ts_us, o, h, lo, c, v, signed)
        self._last_bar_values[st.symbol] = values
        out = dict(values)
        self._flow_values(st, end, out)
        return FeatureRow(st.symbol, ts_us, end, {name: out[name] for name in FEATURE_COLUMNS})

    def _flow_values(self, st: _Symbol, t_us: int, out: dict[str, Value]) -> None:
        st.trades.values(t_us, out)
        if st.book is None:
            for name in ("spread_pct", "bid_ask_imbalance", "lob_depth_imbalance", "microprice_dev"):
                out[name] = None
            out["cancel_rate_1m"] = None
            for name, _ in OFI_LEVELS:
                out[name] = None
        else:
            st.book.values(t_us, out)
        out["liquidation_imbalance"] = st.liq.value(t_us, st.liq_start)
        for k, v in out.items():
            if v is not None and not math.isfinite(v):
                out[k] = None


_NULL_ROW: dict[str, Value] = dict.fromkeys(FEATURE_COLUMNS)
