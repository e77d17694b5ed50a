"""Fee-aware bar-level backtest of a probability forecast with SPEC 9 entries, sizing and exits.

One implementation of the trading rules: entries go through `pipelines.trading.decision.decide_entry`
(expected value after costs against a volatility/spread/win-rate threshold), sizes through
`pipelines.trading.sizing.size_position` with an `AdaptiveKelly` fraction, exits through
`pipelines.trading.exits.evaluate_exit`. The random-entry baseline uses the very same sizing and exits,
only entries (time and side) are drawn from a seeded generator at the model's entry rate.

Bar mechanics (contract):
- A row is a bar `ts` (open time, UTC) of a symbol with its OHLC and the forecast `p_up` made with the
  information of that bar; it becomes actionable at the bar's close (`ts + timeframe`). Entries fill at
  that close, moved against us by `slippage_per_side`, and pay `fee_per_side` of notional.
- An open position is checked on every later bar of its symbol: first the hard stop against the bar's
  adverse extreme (low for a long), then the take profit against the favourable extreme; a bar touching
  both is resolved as the stop (candles do not say which came first; assuming the good order would flatter
  the model). Then the remaining rules (EV trail with the bar's forecast, time stop) at the close.
  A stop fills at the stop level (or at the open when the bar gapped through it), a take profit at its
  level, anything else at the close; every exit pays slippage and the fee.
- Shorts are allowed (the product trades perpetuals); gains are side-aware as in `exits.position_gain`.
- Positions still open at the end of the data close at the last close (rule `end_of_data`).
- Equity is Decimal (quote currency); the equity curve is realized equity after every bar close.
  Sharpe = mean / std of the per-bar equity returns x sqrt(bars per year); max drawdown is the largest
  peak-to-trough fall of that curve as a fraction of the peak.

Exits of a position depend only on its symbol's path and forecasts, so each is resolved when it opens;
equity, Kelly and the win-rate tracker are updated in time order of the closes (a heap), which keeps
the Python work proportional to the trades instead of the rows.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

import numpy as np
import polars as pl

from pipelines.config import BacktestConfig
from pipelines.domain.candles import timeframe_delta
from pipelines.trading.config import TradingConfig
from pipelines.trading.decision import WinRateTracker
from pipelines.trading.directional import (
    EntryCosts,
    SizeContext,
    entry_decision,
    entry_size,
    exit_decision,
    exit_view,
    model_remaining_return,
)
from pipelines.trading.exits import ExitRule
from pipelines.trading.instruments import MarketInfo, Side
from pipelines.trading.sizing import AdaptiveKelly

VOLATILITY_BARS = 20
_US = 1_000_000


@dataclass(frozen=True)
class Trade:
    symbol: str
    side: Side
    entry_time: datetime
    exit_time: datetime
    entry_price: Decimal
    exit_price: Decimal
    size: Decimal
    fees: Decimal
    pnl: Decimal  # net of fees, quote currency
    net_return: float  # pnl / entry notional
    rule: str


@dataclass(frozen=True)
class BacktestResult:
    sharpe: float
    max_drawdown: float
    win_rate: float
    trades: int
    trades_per_day: float
    total_return: float
    fees_paid: float
    days: float
    exits: dict[str, int]
    equity_times: np.ndarray = field(repr=False)  # int64 µs since epoch, bar close
    equity: np.ndarray = field(repr=False)  # float, quote currency
    trade_log: tuple[Trade, ...] = field(repr=False, default=())

    def metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}sharpe": self.sharpe,
            f"{prefix}max_drawdown": self.max_drawdown,
            f"{prefix}win_rate": self.win_rate,
            f"{prefix}trades": float(self.trades),
            f"{prefix}trades_per_day": self.trades_per_day,
            f"{prefix}total_return": self.total_return,
            f"{prefix}fees_paid": self.fees_paid,
        }


def _market(symbol: str, price: float, fee: float) -> MarketInfo:
    """Instrument rules for the simulation: a tick 5-6 digits below the price, a fine lot, no minimum
    notional beyond 5 quote units (Binance's). Real venues are read through `load_markets`; candles do
    not carry them, and these only matter for rounding here."""
    exponent = math.floor(math.log10(price)) - 5 if price > 0 else -8
    return MarketInfo(
        symbol=symbol,
        venue_symbol_id=symbol.replace("/", ""),
        tick_size=Decimal(1).scaleb(exponent),
        lot_size=Decimal(1).scaleb(-8),
        min_notional=Decimal(5),
        maker_fee=Decimal(str(fee)),
        taker_fee=Decimal(str(fee)),
    )


def _prepare(frame: pl.DataFrame, p_up: np.ndarray, lookback: int, entries: np.ndarray | None = None) -> pl.DataFrame:
    """Sorted rows with the trailing payoff estimates, ties handled the same way in every one of them.

    A bar whose close did not move is neither a win nor a loss. `p_up` is read as P(up | the close
    moved) (the tie-excluding label), so with t the trailing tie share, W = mean(ret | ret > 0) and
    L = mean(-ret | ret < 0): E = (1 - t) (p W - (1 - p) L). `avg_win` = (1 - t) W and `avg_loss` =
    (1 - t) L carry that factor, so `decide_entry`'s p x avg_win - (1 - p) x avg_loss is exactly E.
    """
    ret = pl.col("close") / pl.col("close").shift(1).over("symbol") - 1.0
    given = np.zeros(len(frame), dtype=np.int8) if entries is None else np.asarray(entries, dtype=np.int8)
    ups = (pl.col("_ret") > 0).cast(pl.Float64).rolling_sum(lookback, min_samples=10)
    downs = (pl.col("_ret") < 0).cast(pl.Float64).rolling_sum(lookback, min_samples=10)
    known = pl.col("_ret").is_not_null().cast(pl.Float64).rolling_sum(lookback, min_samples=10)
    moved = (ups + downs) / known
    return (
        frame.select("symbol", "ts", "open", "high", "low", "close")
        .with_columns(pl.Series("p_up", np.asarray(p_up, dtype=np.float64)), pl.Series("_entry", given))
        .sort("symbol", "ts")
        .with_columns(ret.alias("_ret"))
        .with_columns(
            # Trailing payoff statistics, known at the bar's close (they include the bar itself).
            (pl.col("_ret").clip(lower_bound=0).rolling_sum(lookback, min_samples=10) / ups * moved)
            .over("symbol")
            .alias("avg_win"),
            ((-pl.col("_ret")).clip(lower_bound=0).rolling_sum(lookback, min_samples=10) / downs * moved)
            .over("symbol")
            .alias("avg_loss"),
            pl.col("_ret").rolling_std(VOLATILITY_BARS, min_samples=5).over("symbol").alias("volatility"),
        )
        .with_columns(pl.col("avg_win", "avg_loss", "volatility").fill_nan(None))
    )


@dataclass
class _Open:
    symbol: str
    side: Side
    entry_time: datetime
    entry_price: Decimal
    size: Decimal
    entry_fee: Decimal


def run_backtest(
    frame: pl.DataFrame,
    p_up: np.ndarray,
    *,
    majors: frozenset[str],
    timeframe: str,
    config: BacktestConfig,
    trading: TradingConfig,
    mode: Literal["model", "random", "given"] = "model",
    entry_probability: float = 0.0,
    keep_trades: bool = False,
    long_only: bool = False,
    entries: np.ndarray | None = None,
) -> BacktestResult:
    """Simulate trading `p_up` (probability the next bars go up) over `frame` (symbol, ts, OHLC).

    `majors` holds base currencies (BTC, ...): they get the majors' per-trade cap and hard stop.
    `mode="random"`: entries at random bars with probability `entry_probability` (pass the model run's
    `trades / rows`), random side, same sizing (the forecast's confidence still scales the size) and exits.
    `mode="given"`: entries where `entries` (one value per row of `frame`: +1 long, -1 short, 0 none) says,
    same sizing and exits (`pipelines.baseline` draws them). `long_only` (spot): the model never shorts.
    """
    if len(frame) != len(p_up):
        raise ValueError(f"{len(frame)} rows but {len(p_up)} forecasts")
    if len(frame) == 0:
        raise ValueError("empty backtest frame")
    if not np.all(np.isfinite(p_up)):
        raise ValueError("forecasts must be finite")
    bar = timeframe_delta(timeframe)
    bar_us = int(bar.total_seconds() * _US)
    data = _prepare(frame, p_up, config.payoff_lookback_bars, entries if mode == "given" else None)
    symbols = data["symbol"].to_numpy()
    ts_us = data["ts"].dt.epoch("us").to_numpy()
    o, h, lo, c = (data[k].to_numpy() for k in ("open", "high", "low", "close"))
    p = data["p_up"].to_numpy()
    avg_win = data["avg_win"].fill_null(0.0).to_numpy()
    avg_loss = data["avg_loss"].fill_null(0.0).to_numpy()
    vol = data["volatility"].fill_null(np.nan).to_numpy()
    ready = data["avg_win"].is_not_null().to_numpy() & np.isfinite(vol)
    # Symbol runs are contiguous (sorted by symbol, ts): the end of each run bounds an exit scan.
    change = np.flatnonzero(symbols[1:] != symbols[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(symbols)]])
    run_end = np.repeat(ends, ends - starts)

    fee, slip, spread = config.fee_per_side, config.slippage_per_side, config.spread
    costs = 2 * fee + 2 * slip
    p_win = np.maximum(p, 1.0 - p)
    dcfg = trading.decision
    if mode == "model":
        ev = p_win * avg_win - (1 - p_win) * avg_loss - costs - spread / 2
        # Necessary condition of decide_entry (its threshold is at least this): skip hopeless rows cheaply.
        lowest = (
            dcfg.base_threshold
            + dcfg.volatility_coefficient * np.nan_to_num(vol)
            + dcfg.spread_coefficient * spread
            - dcfg.win_rate_band * (avg_win + avg_loss)
        )
        sides = np.where(p >= 0.5, 1, -1)
        candidates = np.flatnonzero(ready & (ev > lowest) & ((sides > 0) | (not long_only)))
    elif mode == "given":
        sides = data["_entry"].to_numpy()
        candidates = np.flatnonzero(sides != 0)
    else:
        rng = np.random.default_rng(config.baseline_seed)
        draws = rng.random(len(p))
        candidates = np.flatnonzero(draws < entry_probability)  # any bar: no payoff statistics needed
        sides = np.where(rng.random(len(p)) < 0.5, 1, -1)
    order = candidates[np.lexsort((symbols[candidates], ts_us[candidates]))]

    markets: dict[str, MarketInfo] = {}
    kelly = AdaptiveKelly(trading.sizing)
    tracker = WinRateTracker(dcfg)
    equity = config.initial_equity
    fee_d, slip_d = Decimal(str(fee)), Decimal(str(slip))
    busy_until: dict[str, int] = {}  # symbol -> row index of its open position's exit bar
    pending: list[tuple[int, int, Trade]] = []  # (exit bar close µs, seq, trade)
    trades: list[Trade] = []
    realized: list[tuple[int, float]] = []
    open_count = 0
    seq = 0

    def settle(until_us: int) -> None:
        nonlocal equity, open_count
        while pending and pending[0][0] <= until_us:
            close_us, _, trade = heapq.heappop(pending)
            equity += trade.pnl
            open_count -= 1
            kelly.record_trade(trade.net_return)
            tracker.record(trade.pnl > 0)
            trades.append(trade)
            realized.append((close_us, float(equity)))

    def to_time(us: int) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))

    for i in order:
        symbol = str(symbols[i])
        if busy_until.get(symbol, -1) > i:
            continue
        decision_us = int(ts_us[i]) + bar_us
        settle(decision_us)
        side = Side.BUY if sides[i] > 0 else Side.SELL
        confidence = float(p_win[i])
        if mode == "model":
            bar_costs = EntryCosts(float(avg_win[i]), float(avg_loss[i]), 2 * fee, 2 * slip, spread, float(vol[i]))
            entry = entry_decision(float(p[i]), bar_costs, trading, tracker, long_only=False)
            if not entry.enter:
                continue
        is_major = symbol.split("/")[0] in majors
        market = markets.get(symbol) or markets.setdefault(symbol, _market(symbol, float(c[i]), fee))
        price = Decimal(repr(float(c[i]))) * (1 + slip_d if side is Side.BUY else 1 - slip_d)
        sizing = SizeContext(equity=equity, is_major=is_major, open_positions=open_count)
        sized = entry_size(kelly.fraction, side, price, confidence, sizing, market, trading)
        if sized.size <= 0:
            continue
        position = _Open(symbol, side, to_time(decision_us), sized.price, sized.size, sized.notional * fee_d)
        exit_row, exit_price, rule = _resolve_exit(
            position, i, int(run_end[i]), is_major, market, o, h, lo, c, p, avg_win, avg_loss, ts_us, bar_us, trading
        )
        exit_fill = exit_price * (1 - slip_d if side is Side.BUY else 1 + slip_d)
        exit_fee = exit_fill * position.size * fee_d
        direction = 1 if side is Side.BUY else -1
        gross = (exit_fill - position.entry_price) * position.size * direction
        pnl = gross - position.entry_fee - exit_fee
        entry_notional = position.entry_price * position.size
        exit_us = int(ts_us[exit_row]) + bar_us
        trade = Trade(
            symbol,
            side,
            position.entry_time,
            to_time(exit_us),
            position.entry_price,
            exit_fill,
            position.size,
            position.entry_fee + exit_fee,
            pnl,
            float(pnl / entry_notional),
            rule,
        )
        heapq.heappush(pending, (exit_us, seq, trade))
        seq += 1
        open_count += 1
        # The symbol may enter again at the exit bar's close (after the exit), not before.
        busy_until[symbol] = exit_row
    settle(np.iinfo(np.int64).max)
    return _summarize(trades, realized, ts_us, bar_us, config.initial_equity, keep_trades)


def _resolve_exit(
    position: _Open,
    entry_row: int,
    end_row: int,
    is_major: bool,
    market: MarketInfo,
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    p: np.ndarray,
    avg_win: np.ndarray,
    avg_loss: np.ndarray,
    ts_us: np.ndarray,
    bar_us: int,
    trading: TradingConfig,
) -> tuple[int, Decimal, str]:
    """Row index, price (before slippage) and rule of the exit: the first bar after entry a rule fires."""
    cfg = trading.exits
    view = exit_view(position.symbol, position.side, position.entry_price, position.entry_time, is_major, market)
    entry = position.entry_price
    long = position.side is Side.BUY
    stop = cfg.hard_stop_major if is_major else cfg.hard_stop_alt
    stop_price = entry * (1 - Decimal(str(stop))) if long else entry * (1 + Decimal(str(stop)))
    tp_price = entry * (1 + Decimal(str(cfg.take_profit))) if long else entry * (1 - Decimal(str(cfg.take_profit)))
    for row in range(entry_row + 1, end_row):
        now = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(ts_us[row]) + bar_us)
        adverse = Decimal(repr(float(lo[row] if long else h[row])))
        if exit_decision(view, adverse, now, trading).rule is ExitRule.HARD_STOP:
            bar_open = Decimal(repr(float(o[row])))
            gapped = bar_open < stop_price if long else bar_open > stop_price
            return row, (bar_open if gapped else stop_price), ExitRule.HARD_STOP.value
        favourable = Decimal(repr(float(h[row] if long else lo[row])))
        if exit_decision(view, favourable, now, trading).rule is ExitRule.TAKE_PROFIT:
            return row, tp_price, ExitRule.TAKE_PROFIT.value
        remaining = model_remaining_return(float(p[row]), float(avg_win[row]), float(avg_loss[row]), position.side)
        close = Decimal(repr(float(c[row])))
        decision = exit_decision(view, close, now, trading, remaining)
        if decision.exit and decision.rule is not None:
            return row, close, decision.rule.value
    last = end_row - 1
    return last, Decimal(repr(float(c[last]))), "end_of_data"


def _summarize(
    trades: list[Trade],
    realized: list[tuple[int, float]],
    ts_us: np.ndarray,
    bar_us: int,
    initial: Decimal,
    keep_trades: bool,
) -> BacktestResult:
    grid = np.unique(ts_us) + bar_us
    equity = np.full(len(grid), float(initial))
    if realized:
        times = np.array([t for t, _ in realized], dtype=np.int64)
        values = np.array([v for _, v in realized])
        # Realized equity after each bar close: the last settlement at or before that close.
        idx = np.searchsorted(times, grid, side="right") - 1
        has = idx >= 0
        equity[has] = values[idx[has]]
        if times[-1] > grid[-1]:
            grid = np.append(grid, times[-1])
            equity = np.append(equity, values[-1])
    returns = np.diff(equity) / equity[:-1] if len(equity) > 1 else np.zeros(0)
    std = float(returns.std()) if len(returns) else 0.0
    bars_per_year = 365 * 86_400 * _US / bar_us
    sharpe = float(returns.mean() / std * math.sqrt(bars_per_year)) if std > 0 else 0.0
    peaks = np.maximum.accumulate(equity)
    drawdown = float(np.max((peaks - equity) / peaks)) if len(equity) else 0.0
    days = max((int(ts_us.max()) + bar_us - int(ts_us.min())) / (86_400 * _US), 1e-9)
    exits: dict[str, int] = {}
    for trade in trades:
        exits[trade.rule] = exits.get(trade.rule, 0) + 1
    return BacktestResult(
        sharpe=sharpe,
        max_drawdown=drawdown,
        win_rate=float(np.mean([t.pnl > 0 for t in trades])) if trades else 0.0,
        trades=len(trades),
        trades_per_day=len(trades) / days,
        total_return=float(equity[-1] / float(initial) - 1.0),
        fees_paid=float(sum((t.fees for t in trades), Decimal(0))),
        days=days,
        exits=exits,
        equity_times=grid,
        equity=equity,
        trade_log=tuple(trades) if keep_trades else (),
    )


def model_and_baseline(
    frame: pl.DataFrame,
    p_up: np.ndarray,
    *,
    majors: frozenset[str],
    timeframe: str,
    config: BacktestConfig,
    trading: TradingConfig,
) -> tuple[BacktestResult, BacktestResult]:
    """The model's backtest and the random-entry baseline at the model's entry rate, same sizing/exits."""
    model = run_backtest(frame, p_up, majors=majors, timeframe=timeframe, config=config, trading=trading)
    rate = model.trades / len(frame)
    baseline = run_backtest(
        frame,
        p_up,
        majors=majors,
        timeframe=timeframe,
        config=config,
        trading=trading,
        mode="random",
        entry_probability=rate,
    )
    return model, baseline
