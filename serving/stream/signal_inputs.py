"""The trailing statistics behind the `SignalEvent` fields the trading rules read (SPEC 9-10).

Per symbol, from the stream's own trades and signals (and the warm-up bars), using only data up
to the moment of the signal:

- ``volume``: quote volume traded over the last bar length (one timeframe) of exchange time; None until
  the stream has seen a whole bar length of trades (a partial window would understate it).
- ``volume_norm``: mean quote volume of the last `norm_bars` closed bars (warm-up candles count).
- ``spread_norm``: exponentially weighted mean of the spread (``spread_pct``) of the earlier signals,
  half-life `spread_norm_halflife_s` of exchange time, reported once `spread_norm_min_s` were seen.
- ``volatility``: standard deviation (ddof 1) of the last `norm_bars` one-bar returns (at least 5),
  as the backtest computes it (`pipelines.backtest`: rolling std of bar returns).
- ``expected_return``: the model's expected remaining return of a long, as the backtest's EV trail:
  (2 p_up - 1) x (avg_win + avg_loss) / 2, the averages over the last `payoff_bars` bar returns (at
  least 10 returns).
- ``kyle_lambda_threshold``: the `kyle_percentile` of the trailing bar-close Kyle's lambdas (at least 5).

Every update is O(1) except the bar close (O(window), once per bar). Not thread-safe: one stream
thread owns it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from pipelines.realtime_config import RealtimeConfig

MIN_VOLATILITY_RETURNS = 5
MIN_PAYOFF_RETURNS = 10
MIN_KYLE_VALUES = 5


@dataclass
class _SymbolStats:
    returns: deque[float]
    bar_volumes: deque[float]
    kyle: deque[float]
    bar_start: int | None = None  # open time of the bar being built from trades (µs)
    bar_quote: float = 0.0
    bar_partial: bool = False  # the stream's first bar began before its first trade: volume incomplete
    last_price: float = 0.0
    last_close: float | None = None
    last_bar_us: int | None = None  # open time of the last closed bar
    window: deque[tuple[int, float]] = field(default_factory=deque)  # (ts_us, quote) of recent trades
    window_quote: float = 0.0
    first_trade_us: int | None = None
    spread_mean: float | None = None
    spread_us: int | None = None
    first_spread_us: int | None = None


@dataclass(frozen=True)
class SignalInputs:
    spread_norm: float | None
    volume: float | None
    volume_norm: float | None
    volatility: float | None
    expected_return: float | None
    kyle_lambda_threshold: float | None


class TrailingStats:
    def __init__(self, config: RealtimeConfig, bar_us: int):
        self.config = config
        self.bar_us = bar_us
        self._symbols: dict[str, _SymbolStats] = {}

    def _state(self, symbol: str) -> _SymbolStats:
        st = self._symbols.get(symbol)
        if st is None:
            cfg = self.config
            st = self._symbols[symbol] = _SymbolStats(
                returns=deque(maxlen=max(cfg.norm_bars, cfg.payoff_bars)),
                bar_volumes=deque(maxlen=cfg.norm_bars),
                kyle=deque(maxlen=cfg.kyle_history_bars),
            )
        return st

    # ---- inputs ------------------------------------------------------------------------------------
    def on_bar(self, symbol: str, ts_us: int, close: float, quote_volume: float | None) -> None:
        """A closed bar opening at `ts_us` (warm-up candles, and the bars the stream's trades close);
        volume None = unknown. A return is counted only between adjacent bars: a hole in the history
        (a warm-up lake days older than the stream) is not one bar's move."""
        st = self._state(symbol)
        adjacent = st.last_bar_us is not None and ts_us - st.last_bar_us == self.bar_us
        if adjacent and st.last_close is not None and st.last_close > 0 and close > 0:
            st.returns.append(close / st.last_close - 1.0)
        st.last_close, st.last_bar_us = close, ts_us
        if quote_volume is not None and math.isfinite(quote_volume) and quote_volume >= 0:
            st.bar_volumes.append(quote_volume)

    def on_trade(self, symbol: str, ts_us: int, price: float, qty: float) -> None:
        st = self._state(symbol)
        start = ts_us - ts_us % self.bar_us
        if st.bar_start is None:
            st.bar_start, st.bar_partial = start, ts_us > start
        elif start > st.bar_start:
            # Its return counts; the volume of the stream's first (partial) bar does not.
            self.on_bar(symbol, st.bar_start, st.last_price, None if st.bar_partial else st.bar_quote)
            st.bar_start, st.bar_quote, st.bar_partial = start, 0.0, False
        quote = price * qty
        st.bar_quote += quote
        st.last_price = price
        if st.first_trade_us is None:
            st.first_trade_us = ts_us
        st.window.append((ts_us, quote))
        st.window_quote += quote
        self._trim(st, ts_us - self.bar_us)

    @staticmethod
    def _trim(st: _SymbolStats, horizon_us: int) -> None:
        while st.window and st.window[0][0] <= horizon_us:
            st.window_quote -= st.window.popleft()[1]
        if not st.window:
            st.window_quote = 0.0  # no float residue once the window is empty

    def on_spread(self, symbol: str, ts_us: int, spread: float) -> None:
        if not math.isfinite(spread) or spread < 0:
            return
        st = self._state(symbol)
        if st.spread_mean is None or st.spread_us is None:
            st.spread_mean, st.spread_us, st.first_spread_us = spread, ts_us, ts_us
            return
        dt_s = max(0.0, (ts_us - st.spread_us) / 1e6)
        weight = 1.0 - 0.5 ** (dt_s / self.config.spread_norm_halflife_s)
        st.spread_mean += weight * (spread - st.spread_mean)
        st.spread_us = max(st.spread_us, ts_us)

    def on_kyle(self, symbol: str, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            self._state(symbol).kyle.append(value)

    # ---- outputs -----------------------------------------------------------------------------------
    def inputs(self, symbol: str, at_us: int, p_up: float) -> SignalInputs:
        st = self._symbols.get(symbol)
        if st is None:
            return SignalInputs(None, None, None, None, None, None)
        cfg = self.config
        volume = None
        if st.first_trade_us is not None and at_us - st.first_trade_us >= self.bar_us:
            self._trim(st, at_us - self.bar_us)  # signals come at or after the newest trade
            volume = max(0.0, st.window_quote)
        volume_norm = float(np.mean(st.bar_volumes)) if st.bar_volumes else None
        spread_norm = None
        observed_s = (st.spread_us - st.first_spread_us) / 1e6 if st.spread_us and st.first_spread_us else 0.0
        if st.spread_mean is not None and observed_s >= cfg.spread_norm_min_s:
            spread_norm = st.spread_mean
        returns = list(st.returns)
        recent = returns[-cfg.norm_bars :]
        volatility = float(np.std(recent, ddof=1)) if len(recent) >= MIN_VOLATILITY_RETURNS else None
        expected = None
        payoff = returns[-cfg.payoff_bars :]
        if len(payoff) >= MIN_PAYOFF_RETURNS:
            wins = [r for r in payoff if r > 0]
            losses = [-r for r in payoff if r <= 0]
            avg_win = sum(wins) / len(wins) if wins else 0.0
            avg_loss = sum(losses) / len(losses) if losses else 0.0
            expected = (2.0 * p_up - 1.0) * (avg_win + avg_loss) / 2.0
        kyle = (
            float(np.percentile(np.asarray(st.kyle), cfg.kyle_percentile)) if len(st.kyle) >= MIN_KYLE_VALUES else None
        )
        return SignalInputs(spread_norm, volume, volume_norm, volatility, expected, kyle)
