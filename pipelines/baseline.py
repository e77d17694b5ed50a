"""The random-entry baseline (SPEC 8), like for like with the model's backtest, over many seeds.

For each seed, entries are drawn at random bars of the same frame: as many as the model made, never on a
symbol's last bar, long only on spot (`long_only`), and run through `run_backtest(mode="given")`: the same
sizing (Kelly, confidence from the bar's forecast, caps), the same exits and the same costs as the model.
The report gives the baseline Sharpe's mean and std over the seeds, the share of seeds the model beats,
and per pair: the share of the pairs the model traded where its net PnL beats the baseline's mean net PnL
on that pair.

`cost_variants` reruns the model's backtest with maker entries: a post-only entry pays the maker fee and no
slippage, the exit stays a taker. The bar-level backtest charges the same cost on both sides, so the
variant uses the per-side mean ((maker + taker) / 2 fee, half the slippage): the round trip costs the
same. It assumes every maker entry fills (an optimistic bound; the taker figures are the conservative one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import polars as pl

from pipelines.backtest import BacktestResult, run_backtest
from pipelines.config import BacktestConfig
from pipelines.research_config import BaselineConfig
from pipelines.trading.config import TradingConfig


@dataclass(frozen=True)
class BaselineReport:
    sharpes: tuple[float, ...]
    trades: tuple[int, ...]
    beats_seed_share: float  # share of seeds whose Sharpe the model's exceeds
    pairs_traded: int  # pairs the model traded
    beats_pair_share: float  # of those, share where the model's net PnL > the baseline's mean on the pair
    first: BacktestResult = field(repr=False)  # seed 0's run (its equity curve is the picture's)

    @property
    def sharpe_mean(self) -> float:
        return float(np.mean(self.sharpes))

    @property
    def sharpe_std(self) -> float:
        return float(np.std(self.sharpes))

    def metrics(self, prefix: str = "baseline_") -> dict[str, float]:
        return {
            f"{prefix}sharpe": self.sharpe_mean,  # the mean over seeds (the name older runs used)
            f"{prefix}sharpe_mean": self.sharpe_mean,
            f"{prefix}sharpe_std": self.sharpe_std,
            f"{prefix}seeds": float(len(self.sharpes)),
            f"{prefix}trades_mean": float(np.mean(self.trades)),
            "beats_baseline_seed_share": self.beats_seed_share,
            "pairs_traded": float(self.pairs_traded),
            "beats_baseline_pair_share": self.beats_pair_share,
        }


def random_entries(frame: pl.DataFrame, count: int, *, seed: int, long_only: bool) -> np.ndarray:
    """+1/-1/0 per row of `frame`: `count` random entry bars (none on a symbol's last bar), seeded."""
    last = (
        frame.select((pl.col("ts") == pl.col("ts").max().over("symbol")).alias("last"))["last"].to_numpy()
    )
    eligible = np.flatnonzero(~last)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(eligible, size=min(max(count, 0), len(eligible)), replace=False)
    out = np.zeros(len(frame), dtype=np.int8)
    sides = np.ones(len(chosen), dtype=np.int8) if long_only else np.where(rng.random(len(chosen)) < 0.5, 1, -1)
    out[np.asarray(chosen, dtype=np.int64)] = sides
    return out


def _pnl_by_pair(result: BacktestResult) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for trade in result.trade_log:
        out[trade.symbol] = out.get(trade.symbol, Decimal(0)) + trade.pnl
    return out


def model_and_baselines(
    frame: pl.DataFrame,
    p_up: np.ndarray,
    *,
    majors: frozenset[str],
    timeframe: str,
    config: BacktestConfig,
    trading: TradingConfig,
    baseline: BaselineConfig,
) -> tuple[BacktestResult, BaselineReport]:
    """The model's backtest and the random baseline over `baseline.seeds` seeds (see the module docstring)."""
    model = run_backtest(
        frame, p_up, majors=majors, timeframe=timeframe, config=config, trading=trading,
        keep_trades=True, long_only=baseline.long_only,
    )
    model_pairs = _pnl_by_pair(model)
    runs: list[BacktestResult] = []
    pair_totals: dict[str, list[Decimal]] = {symbol: [] for symbol in model_pairs}
    for k in range(baseline.seeds):
        entries = random_entries(frame, model.trades, seed=baseline.first_seed + k, long_only=baseline.long_only)
        run = run_backtest(
            frame, p_up, majors=majors, timeframe=timeframe, config=config, trading=trading,
            mode="given", entries=entries, keep_trades=True,
        )
        pairs = _pnl_by_pair(run)
        for symbol, totals in pair_totals.items():
            totals.append(pairs.get(symbol, Decimal(0)))
        runs.append(run)
    sharpes = tuple(r.sharpe for r in runs)
    beaten = [model_pairs[s] > sum(v, Decimal(0)) / len(v) for s, v in pair_totals.items()]
    report = BaselineReport(
        sharpes=sharpes,
        trades=tuple(r.trades for r in runs),
        beats_seed_share=float(np.mean([model.sharpe > s for s in sharpes])),
        pairs_traded=len(model_pairs),
        beats_pair_share=float(np.mean(beaten)) if beaten else 0.0,
        first=runs[0],
    )
    return model, report


def cost_variants(
    frame: pl.DataFrame,
    p_up: np.ndarray,
    *,
    majors: frozenset[str],
    timeframe: str,
    config: BacktestConfig,
    trading: TradingConfig,
    baseline: BaselineConfig,
    taker: BacktestResult | None = None,
) -> dict[str, float]:
    """The model's Sharpe, net return and trades with taker entries (as configured) and maker entries."""
    maker_config = config.model_copy(
        update={
            "fee_per_side": (baseline.maker_fee_per_side + config.fee_per_side) / 2,
            "slippage_per_side": config.slippage_per_side / 2,
        }
    )
    taker = taker or run_backtest(
        frame, p_up, majors=majors, timeframe=timeframe, config=config, trading=trading, long_only=baseline.long_only
    )
    maker = run_backtest(
        frame, p_up, majors=majors, timeframe=timeframe, config=maker_config, trading=trading,
        long_only=baseline.long_only,
    )
    return {
        "bt_taker_sharpe": taker.sharpe,
        "bt_taker_total_return": taker.total_return,
        "bt_taker_trades": float(taker.trades),
        "bt_maker_sharpe": maker.sharpe,
        "bt_maker_total_return": maker.total_return,
        "bt_maker_trades": float(maker.trades),
    }
