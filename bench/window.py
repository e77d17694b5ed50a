"""Benchmark: the 5-minute window model, walk-forward on the recorded BTC/USDT candles, and a simulation.

    python -m bench.window [--data-dir DIR] [--folds 4] [--iterations 500] [--noise 0.01] [--seed 7]

Model: `pipelines.window.train.train_window_model` (no registry) on BTC/USDT of
``binance_spot_candles/binance_spot_5m_2024H1.parquet`` (a 1m file beside it is used instead when
present): labels close >= open per 5-minute window, features = the directional model's batch features
at the window open plus price_vs_open / time_decay, CatBoost + calibration per walk-forward fold
(60 training days, 7-day test windows), pooled out-of-sample figures, shuffled-label control.

Simulation (`sim_*`), exactly this: one decision per out-of-sample window at its open, in time order,
by `pipelines.trading.window.decide_entry` with the seed phase-1 defaults ($200 bankroll, never
compounded; $20 per trade; $10 daily loss budget; quarter Kelly capped at 10%). The market is a model,
not a recording (no Polymarket prices are recorded here): an uninformed market whose Up mid is
0.5 + N(0, noise) (seeded, independent of the outcome) and Down mid 1 - that, each quoted with a
1-cent half spread; the strategy buys at the ask as a taker, pays the venue's fee curve in tokens
(rate 0.25, exponent 2: 1.56% of notional at 0.5, `TokenLedger`), and each window settles 1 per
winning token from the label. Against this market a model without skill loses the spread and fees;
`sim_pnl_noise_free` is the same with noise 0 (mids exactly 0.5). Prints the load average, CPU and
wall time; writes ``bench/results/window.json`` (last line printed).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

from bench.common import publish, shared_data_dir
from pipelines.domain.candles import normalize_candles
from pipelines.domain.window_market import Outcome
from pipelines.trading.window import WindowTradingConfig, decide_entry
from pipelines.trading.window_fees import TokenLedger
from pipelines.window.model import WindowModelConfig
from pipelines.window.train import train_window_model

CANDLES = Path("binance_spot_candles")
HALF_SPREAD = Decimal("0.01")
FEE_RATE = Decimal("0.25")


def load_btc(data_dir: Path) -> tuple[pl.DataFrame, str, str]:
    folder = data_dir / CANDLES
    for timeframe in ("1m", "5m"):
        files = sorted(folder.glob(f"*_{timeframe}_*.parquet"))
        if files:
            raw = pl.concat([pl.read_parquet(f).filter(pl.col("symbol") == "BTC/USDT") for f in files])
            return normalize_candles(raw, ts_column="open_time"), timeframe, ", ".join(f.name for f in files)
    raise SystemExit(f"no candle files under {folder}")


def simulate(oos: pl.DataFrame, noise: float, seed: int, cfg: WindowTradingConfig) -> tuple[Decimal, int]:
    """PnL and trade count of the directional strategy at each window open against the market model."""
    rows = oos.filter(pl.col("time_decay") >= 1.0).sort("ts")
    rng = np.random.default_rng(seed)
    mids = np.clip(0.5 + rng.normal(0.0, noise, rows.height), 0.05, 0.95) if noise > 0 else np.full(rows.height, 0.5)
    ledger, trades, pnl_day, day = TokenLedger(cash=Decimal(0)), 0, Decimal(0), None
    for (ts, p_up, up), mid in zip(rows.select("ts", "p_up", "up").iter_rows(), mids, strict=True):
        if ts.date() != day:
            day, pnl_day = ts.date(), Decimal(0)
        up_mid = Decimal(f"{mid:.2f}")
        asks = {Outcome.UP: up_mid + HALF_SPREAD, Outcome.DOWN: Decimal(1) - up_mid + HALF_SPREAD}
        decision = decide_entry(
            float(p_up), asks[Outcome.UP], asks[Outcome.DOWN], 300.0, cfg, pnl_today=pnl_day, fee_rate=FEE_RATE
        )
        if decision.entry is None:
            continue
        entry, before = decision.entry, ledger.cash
        token = entry.outcome.value
        ledger.apply_fill(token, "buy", entry.size, entry.price, taker=True, rate=FEE_RATE, exponent=cfg.fee_exponent)
        winner = Outcome.UP if up == 1 else Outcome.DOWN
        ledger.settle(winner.value, winner.other.value)
        pnl_day += ledger.cash - before
        trades += 1
    return ledger.cash, trades


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    candles, timeframe, files = load_btc(args.data_dir or shared_data_dir())
    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    result = train_window_model(candles, timeframe, cfg=WindowModelConfig(folds=args.folds, iterations=args.iterations))
    train_wall, train_cpu = time.perf_counter() - wall, time.process_time() - cpu
    cfg = WindowTradingConfig()
    evaluation = result.evaluation
    pnl, trades = simulate(evaluation.oos, args.noise, args.seed, cfg)
    pnl_clean, trades_clean = simulate(evaluation.oos, 0.0, args.seed, cfg)
    metrics = evaluation.metrics()
    out: dict[str, object] = {
        "data": files,
        "timeframe": timeframe,
        "windows": int(metrics["windows"]),
        "oos_rows": int(metrics["oos_rows"]),
        "folds": len(evaluation.folds),
        "oos_brier": round(metrics["oos_brier"], 6),
        "brier_skill_vs_half": round(metrics["brier_skill_vs_half"], 6),
        "brier_skill_vs_market": metrics.get("brier_skill_vs_market"),
        "oos_ece": round(metrics["oos_ece"], 6),
        "oos_auc": round(metrics["oos_auc"], 4),
        "open_accuracy": round(metrics["open_accuracy"], 4),
        "leakage_flag": evaluation.leakage,
        "shuffled_auc": round(metrics["shuffled_auc"], 4),
        "gate": result.decision.summary,
        "sim_pnl": float(pnl),
        "sim_trades": trades,
        "sim_pnl_noise_free": float(pnl_clean),
        "sim_trades_noise_free": trades_clean,
        "sim_market": f"uninformed: Up mid 0.5 + N(0, {args.noise}) seed {args.seed}, half spread {HALF_SPREAD}, "
        f"taker fee rate {FEE_RATE} exp {cfg.fee_exponent}; $200 bankroll, $20/trade, $10/day loss",
        "train_wall_s": round(train_wall, 2),
        "train_cpu_s": round(train_cpu, 2),
        "wall_s": round(time.perf_counter() - wall, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(
        f"load average {out['load_avg_before']} -> {out['load_avg_after']}; "
        f"wall {out['wall_s']} s, CPU {out['cpu_s']} s (training: wall {train_wall:.1f} s, CPU {train_cpu:.1f} s)"
    )
    publish("window", out)
    return out


if __name__ == "__main__":
    main()
