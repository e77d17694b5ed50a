"""The real-time hot score of SPEC section 3: which symbols of the universe the tier works right now.

    hot = 0.40 momentum_20m + 0.25 volume_surge(5m/60m) + 0.15 volatility_20m + 0.10 (1/spread)
          + 0.05 order_flow_10m + 0.05 regime_match          (weights and windows: StreamConfig.hot_*)

Components, per symbol, from trades and the book top (exchange time, one-minute buckets):
- momentum_20m: last price / close of the minute 20 minutes ago - 1.
- volume_surge: mean quote volume per minute over the last 5 minutes / over the last 60 minutes.
- volatility_20m: standard deviation of one-minute log returns over the last 20 minutes.
- 1/spread: inverse of the latest (ask - bid) / mid (ranked as "narrower is better").
- order_flow_10m: (aggressive buy - sell quote volume) / total quote volume over the last 10 minutes.
- regime_match: 1 when the symbol trends (Hurst of the last closed bar above `hot_trending_hurst`, the top
  of SPEC 10's random-walk band), 0 when it is a random walk or mean-reverting; unknown = 0.5.

Each component is rank-normalized across the symbols to [0, 1] (average rank of ties / (n - 1); a single
symbol gets 0.5); a component a symbol lacks (too little history, no book yet) gets the neutral 0.5, so
missing data neither promotes nor buries a symbol. Cost: O(1) per trade or quote (the current minute's
bucket is updated in place); `rank()` is O(symbols x window) once a minute.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise

from pydantic import BaseModel, Field

from pipelines.config import StreamConfig

_US_PER_MIN = 60_000_000
COMPONENTS = ("momentum", "volume_surge", "volatility", "inverse_spread", "order_flow", "regime_match")


class HotEntry(BaseModel):
    """One ranked symbol: its hot score and the raw (un-ranked) component values (None = unknown)."""

    symbol: str
    rank: int = Field(description="1 = hottest")
    score: float = Field(description="Weighted sum of rank-normalized components, 0..1")
    momentum_20m: float | None
    volume_surge: float | None
    volatility_20m: float | None
    spread: float | None
    order_flow_10m: float | None
    regime_match: float | None


class HotRanking(BaseModel):
    """The latest ranking: the top N of the watched symbols, hottest first."""

    computed_at: datetime | None = Field(description="Wall-clock UTC time of the computation")
    as_of: datetime | None = Field(description="Exchange time (UTC) of the newest event it includes")
    symbols_ranked: int
    top: list[HotEntry]


@dataclass
class _Minute:
    start_us: int
    close: float
    quote_volume: float = 0.0
    buy_quote: float = 0.0
    sell_quote: float = 0.0


@dataclass
class _SymbolState:
    minutes: deque[_Minute]
    last_price: float | None = None
    spread: float | None = None
    hurst: float | None = None
    clock_us: int = 0


class HotScoreBoard:
    def __init__(self, config: StreamConfig):
        self.config = config
        self._keep = max(config.hot_surge_long_min, config.hot_momentum_min, config.hot_volatility_min,
                         config.hot_order_flow_min) + 2
        self._symbols: dict[str, _SymbolState] = {}
        self.latest = HotRanking(computed_at=None, as_of=None, symbols_ranked=0, top=[])

    def _state(self, symbol: str) -> _SymbolState:
        st = self._symbols.get(symbol)
        if st is None:
            st = self._symbols[symbol] = _SymbolState(minutes=deque(maxlen=self._keep))
        return st

    # ---- updates (O(1)) -------------------------------------------------------------------------
    def on_trade(self, symbol: str, ts_us: int, price: float, qty: float, is_buy: bool) -> None:
        st = self._state(symbol)
        minute = ts_us - ts_us % _US_PER_MIN
        bucket = st.minutes[-1] if st.minutes else None
        if bucket is None or minute > bucket.start_us:
            bucket = _Minute(minute, price)
            st.minutes.append(bucket)
        quote = price * qty
        bucket.close = price
        bucket.quote_volume += quote
        if is_buy:
            bucket.buy_quote += quote
        else:
            bucket.sell_quote += quote
        st.last_price = price
        st.clock_us = max(st.clock_us, ts_us)

    def on_quote(self, symbol: str, bid: float, ask: float) -> None:
        if bid > 0 and ask > bid:
            self._state(symbol).spread = (ask - bid) / ((ask + bid) / 2)

    def on_hurst(self, symbol: str, hurst: float | None) -> None:
        self._state(symbol).hurst = hurst

    # ---- ranking --------------------------------------------------------------------------------
    def components(self, symbol: str) -> dict[str, float | None]:
        st = self._symbols[symbol]
        cfg = self.config
        now_minute = st.clock_us - st.clock_us % _US_PER_MIN
        by_start = {m.start_us: m for m in st.minutes}

        def window(minutes: int) -> list[_Minute]:
            # The minutes [now - minutes, now], current (partial) one included; missing minutes had no trade.
            return [by_start[s] for s in range(now_minute - minutes * _US_PER_MIN, now_minute + 1, _US_PER_MIN)
                    if s in by_start]

        momentum = None
        past = by_start.get(now_minute - cfg.hot_momentum_min * _US_PER_MIN)
        if past is not None and st.last_price is not None and past.close > 0:
            momentum = st.last_price / past.close - 1.0
        surge = None
        oldest = st.minutes[0].start_us if st.minutes else now_minute
        if now_minute - oldest >= (cfg.hot_surge_long_min - 1) * _US_PER_MIN:
            short = sum(m.quote_volume for m in window(cfg.hot_surge_short_min - 1)) / cfg.hot_surge_short_min
            long_ = sum(m.quote_volume for m in window(cfg.hot_surge_long_min - 1)) / cfg.hot_surge_long_min
            surge = short / long_ if long_ > 0 else None
        volatility = None
        closes = [m.close for m in window(cfg.hot_volatility_min)]
        if len(closes) >= 3:
            rets = [math.log(b / a) for a, b in pairwise(closes) if a > 0 and b > 0]
            if len(rets) >= 2:
                mean = sum(rets) / len(rets)
                volatility = math.sqrt(sum((r - mean) ** 2 for r in rets) / (len(rets) - 1))
        flow_minutes = window(cfg.hot_order_flow_min - 1)
        total = sum(m.buy_quote + m.sell_quote for m in flow_minutes)
        order_flow = (sum(m.buy_quote - m.sell_quote for m in flow_minutes) / total) if total > 0 else None
        regime = None if st.hurst is None else (1.0 if st.hurst > cfg.hot_trending_hurst else 0.0)
        return {
            "momentum": momentum,
            "volume_surge": surge,
            "volatility": volatility,
            "inverse_spread": (1.0 / st.spread) if st.spread else None,
            "order_flow": order_flow,
            "regime_match": regime,
            "spread": st.spread,
        }

    def rank(self, now: datetime | None = None) -> HotRanking:
        """Recompute the ranking over every symbol seen; stores it in `latest` and returns it."""
        cfg = self.config
        symbols = sorted(self._symbols)
        raw = {s: self.components(s) for s in symbols}
        weights = {
            "momentum": cfg.hot_weight_momentum,
            "volume_surge": cfg.hot_weight_volume_surge,
            "volatility": cfg.hot_weight_volatility,
            "inverse_spread": cfg.hot_weight_inverse_spread,
            "order_flow": cfg.hot_weight_order_flow,
            "regime_match": cfg.hot_weight_regime_match,
        }
        scores = dict.fromkeys(symbols, 0.0)
        for name, weight in weights.items():
            ranks = rank_normalize({s: raw[s][name] for s in symbols})
            for s in symbols:
                scores[s] += weight * ranks[s]
        ordered = sorted(symbols, key=lambda s: (-scores[s], s))[: cfg.hot_top_n]
        newest = max((self._symbols[s].clock_us for s in symbols), default=0)
        self.latest = HotRanking(
            computed_at=now or datetime.now(UTC),
            as_of=datetime.fromtimestamp(newest / 1e6, UTC) if newest else None,
            symbols_ranked=len(symbols),
            top=[
                HotEntry(
                    symbol=s,
                    rank=i + 1,
                    score=round(scores[s], 12),
                    momentum_20m=raw[s]["momentum"],
                    volume_surge=raw[s]["volume_surge"],
                    volatility_20m=raw[s]["volatility"],
                    spread=raw[s]["spread"],
                    order_flow_10m=raw[s]["order_flow"],
                    regime_match=raw[s]["regime_match"],
                )
                for i, s in enumerate(ordered)
            ],
        )
        return self.latest


def rank_normalize(values: dict[str, float | None]) -> dict[str, float]:
    """Average rank of each known value scaled to [0, 1] (ties share their mean rank); unknown = 0.5."""
    known = sorted((v, s) for s, v in values.items() if v is not None and math.isfinite(v))
    out = dict.fromkeys(values, 0.5)
    n = len(known)
    if n <= 1:
        return out
    i = 0
    while i < n:
        j = i
        while j + 1 < n and known[j + 1][0] == known[i][0]:
            j += 1
        mean_rank = (i + j) / 2
        for k in range(i, j + 1):
            out[known[k][1]] = mean_rank / (n - 1)
        i = j + 1
    return out
