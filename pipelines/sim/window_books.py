"""Seeded outcome order books and trades of 5-minute window markets, resolved by recorded BTC candles.

No Polymarket books are recorded in `../shared/data` (its README lists Binance candles and ticks and an
Upbit sample only), so a window backtest runs on books generated here, per window, from a seed:

- Reference prints (what resolves a window, the venue's rule): the close of every candle at its end
  minus 1 ms (the last trade before the boundary), plus the last price again 1 ms before and 1 ms after
  each window's start (so the previous window settles at once). A window [W, W + 300 s) then opens at the
  close of the bar ending at W and closes at the close of its own last bar; close >= open is Up
  (`resolution`). This is the venue's rule on the recorded stream; the model's label (`window_labels`)
  compares the window's first bar open instead, which differs by the gap between two bars.
- Up mid at time t: Phi(ret / (sigma x sqrt(left / 300))) + N(0, noise) (seeded), ret = log(last
  reference price / window open), sigma = the std of the previous `sigma_windows` 5-minute log returns
  (no look-ahead); at the open it is 0.5 + noise: an uninformed market that learns from the path, never
  from the outcome. Down mid = 1 - Up mid. Clipped to [0.02, 0.98], rounded to the tick.
- Each token's book every `book_every_s`: `levels` levels of `depth` shares from mid -/+ `half_spread`
  outwards, the previous levels removed. Public trades between refreshes: sells at the bid or
  `sweep_ticks` below it (what a resting bid fills against) and buys at the ask, seeded sizes.

Rows are plain (kind, exchange ns, price, size) tuples in `pipelines.sim.feed` kinds; `serving.backtest`
turns them into `Feed`s. Prices and sizes are floats on the tick/lot grid here (the feed converts them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from pipelines.domain.window_market import Outcome
from pipelines.sim.feed import ASK, BID, BUY_TRADE, SELL_TRADE

Row = tuple[int, int, float, float]  # (kind, exchange ts ns, price, size)
MS = 1_000_000
S = 1_000_000_000


class WindowBookConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 7
    window_s: int = Field(default=300, gt=0)
    noise: float = Field(default=0.01, ge=0.0, lt=0.5, description="std of the Up mid around its fair value")
    half_spread: Decimal = Field(default=Decimal("0.01"), gt=0)
    tick_size: Decimal = Field(default=Decimal("0.01"), gt=0)
    lot_size: Decimal = Field(default=Decimal("0.01"), gt=0)
    min_size: Decimal = Field(default=Decimal(5), ge=0)
    levels: int = Field(default=3, ge=1)
    depth: float = Field(default=200.0, gt=0, description="shares per level")
    book_every_s: float = Field(default=10.0, gt=0)
    trades_per_refresh: float = Field(default=1.0, ge=0, description="Poisson mean of public trades")
    sweep_ticks: int = Field(default=4, ge=0, description="largest distance below the bid a sell prints")
    trade_size: float = Field(default=40.0, gt=0, description="mean public trade size, shares")
    sigma_windows: int = Field(default=288, ge=2)
    # the venue's fee of these markets: base fee (bps) on the price curve, as `GET /fee-rate` reports it
    fee_bps: int = Field(default=2500, ge=0)
    fee_exponent: int = Field(default=2, ge=0, le=4)

    @property
    def fee_rate(self) -> Decimal:
        return Decimal(self.fee_bps) / Decimal(10_000)


@dataclass(frozen=True)
class GeneratedWindow:
    start_s: int
    open: float
    close: float
    winner: Outcome
    books: dict[Outcome, list[Row]]  # per outcome token: level changes and public trades
    reference: list[tuple[int, float]]  # (exchange ts ns, price): from 1 ms before the start to the end


def resolution(open_price: float, close_price: float) -> Outcome:
    return Outcome.UP if close_price >= open_price else Outcome.DOWN


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _bars(candles: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, int]:
    """(bar start s, close) sorted, and the bar length in s (from the smallest step)."""
    frame = candles.sort("ts")
    starts = (frame["ts"].dt.epoch("us").to_numpy() // 1_000_000).astype(np.int64)
    closes = frame["close"].to_numpy().astype(np.float64)
    steps = np.diff(starts)
    return starts, closes, int(steps[steps > 0].min()) if steps.size else 300


def generate_windows(candles: pl.DataFrame, starts: list[int], cfg: WindowBookConfig) -> list[GeneratedWindow]:
    """One `GeneratedWindow` per start that has every bar of itself and the bar ending at its start."""
    bar_start, close, bar_s = _bars(candles)
    per = cfg.window_s // bar_s
    index = {int(s): i for i, s in enumerate(bar_start)}
    rng = np.random.default_rng(cfg.seed)
    out = []
    for w in sorted(starts):
        i = index.get(w)
        if i is None or i == 0 or i + per > len(bar_start) or bar_start[i + per - 1] != w + cfg.window_s - bar_s:
            continue
        if bar_start[i - 1] != w - bar_s:
            continue
        opened = float(close[i - 1])
        sub = close[i : i + per]
        ends = [(int(bar_start[i + k]) + bar_s) * S - MS for k in range(per)]
        reference = [(w * S - MS, opened), (w * S + MS, opened), *zip(ends, map(float, sub), strict=True)]
        sigma = _sigma(close, i, bar_s, cfg)
        books = _books(w, opened, reference, sigma, rng, cfg)
        out.append(GeneratedWindow(w, opened, float(sub[-1]), resolution(opened, float(sub[-1])), books, reference))
    return out


def _sigma(close: np.ndarray, i: int, bar_s: int, cfg: WindowBookConfig) -> float:
    step = max(cfg.window_s // bar_s, 1)
    past = close[max(0, i - step * cfg.sigma_windows) : i : step]
    if past.size < 3:
        return 0.001
    returns = np.diff(np.log(past))
    return float(max(returns.std(), 1e-5))


def _books(
    w: int, opened: float, reference: list[tuple[int, float]], sigma: float, rng: np.random.Generator,
    cfg: WindowBookConfig,
) -> dict[Outcome, list[Row]]:
    tick = float(cfg.tick_size)
    half = float(cfg.half_spread)
    rows: dict[Outcome, list[Row]] = {Outcome.UP: [], Outcome.DOWN: []}
    previous: dict[Outcome, list[tuple[int, float]]] = {Outcome.UP: [], Outcome.DOWN: []}
    t_ns, end_ns, every = w * S + 50 * MS, (w + cfg.window_s) * S, int(cfg.book_every_s * S)
    while t_ns < end_ns:
        last = [p for ts, p in reference if ts <= t_ns]
        price = last[-1] if last else opened
        left = (end_ns - t_ns) / S / cfg.window_s
        fair = _phi(math.log(price / opened) / (sigma * math.sqrt(max(left, 1e-3))))
        up_mid = min(max(fair + float(rng.normal(0.0, cfg.noise)) if cfg.noise else fair, 0.02), 0.98)
        for outcome, mid in ((Outcome.UP, up_mid), (Outcome.DOWN, 1.0 - up_mid)):
            bid = round(round((mid - half) / tick) * tick, 10)
            ask = round(round((mid + half) / tick) * tick, 10)
            bid, ask = max(bid, tick), min(ask, 1.0 - tick)
            levels = [(BID, round(bid - k * tick, 10)) for k in range(cfg.levels) if bid - k * tick >= tick]
            levels += [(ASK, round(ask + k * tick, 10)) for k in range(cfg.levels) if ask + k * tick <= 1 - tick]
            stale = [lv for lv in previous[outcome] if lv not in levels]
            out = rows[outcome]
            out.extend((k, t_ns, p, 0.0) for k, p in stale)
            out.extend((k, t_ns, p, cfg.depth) for k, p in levels)
            previous[outcome] = levels
            out.extend(_trades(t_ns, every, bid, ask, rng, cfg))
        t_ns += every
    return rows


def _trades(
    t_ns: int, every: int, bid: float, ask: float, rng: np.random.Generator, cfg: WindowBookConfig
) -> list[Row]:
    tick, lot = float(cfg.tick_size), float(cfg.lot_size)
    out: list[Row] = []
    for _ in range(int(rng.poisson(cfg.trades_per_refresh))):
        at = t_ns + int(rng.uniform(0.1, 0.9) * every)
        size = max(round(float(rng.exponential(cfg.trade_size)) / lot) * lot, lot)
        if rng.random() < 0.5:
            px = round(bid - int(rng.integers(0, cfg.sweep_ticks + 1)) * tick, 10)
            if px >= tick:
                out.append((SELL_TRADE, at, px, round(size, 10)))
        else:
            out.append((BUY_TRADE, at, ask, round(size, 10)))
    return out
