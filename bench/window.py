"""Benchmark: the 5-minute window model, walk-forward on the recorded BTC/USDT candles, and a simulation.

    python -m bench.window [--data-dir DIR] [--folds 4] [--iterations 500] [--noise 0.01] [--seed 7]

Model: `pipelines.window.train.train_window_model` (no registry) on BTC/USDT of
``binance_spot_candles/binance_spot_5m_2024H1.parquet`` (a 1m file beside it is used instead when
present): labels close >= open per 5-minute window, features = the directional model's batch features
at the window open plus price_vs_open / time_decay, CatBoost + calibration per walk-forward fold
(60 training days, 7-day test windows), pooled out-of-sample figures, shuffled-label control.

Simulation (`sim_*`): `alphatide backtest --strategy window` in code (`serving.backtest.window`): the
registered directional window strategy (quarter Kelly, seed phase 1: $200 bankroll, $20 per trade, $10
daily loss) in the real engine on the tick-level simulator, over seeded window books
(`pipelines.sim.window_books`, seed `--seed`, Up mid noise `--noise`) of the last `--sim-windows`
out-of-sample windows, resolved by the same BTC candles, with the fee curve read from the market config
(base fee 2500 bps, exponent 2: 1.56% of notional at 0.5, charged in tokens). Its signals are the
walk-forward out-of-sample probabilities at each window's open. `sim_pnl` is the sum of the per-window
PnL rows the strategy wrote to the engine's store; `sim_trades` the filled orders; `sim_venue_pnl` the
venue side of the same fills (a check). Prints the load average, CPU and
wall time; writes ``bench/results/window.json`` (last line printed).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import polars as pl

from bench.common import publish, shared_data_dir
from pipelines.domain.candles import normalize_candles
from pipelines.window.model import WindowModelConfig
from pipelines.window.train import train_window_model

CANDLES = Path("binance_spot_candles")


def load_btc(data_dir: Path) -> tuple[pl.DataFrame, str, str]:
    folder = data_dir / CANDLES
    for timeframe in ("1m", "5m"):
        files = sorted(folder.glob(f"*_{timeframe}_*.parquet"))
        if files:
            raw = pl.concat([pl.read_parquet(f).filter(pl.col("symbol") == "BTC/USDT") for f in files])
            return normalize_candles(raw, ts_column="open_time"), timeframe, ", ".join(f.name for f in files)
    raise SystemExit(f"no candle files under {folder}")


def simulate(candles: pl.DataFrame, oos: pl.DataFrame, args: argparse.Namespace, out: Path) -> dict[str, object]:
    """The window strategy on seeded books of the last `args.sim_windows` out-of-sample windows."""
    from pipelines.config import load_settings
    from pipelines.sim.window_books import WindowBookConfig
    from serving.backtest.window import WindowBacktestSpec, run_window_backtest

    opens = oos.filter(pl.col("time_decay") >= 1.0).sort("ts").tail(args.sim_windows)
    signals = opens.select("ts", "p_up")
    out.mkdir(parents=True, exist_ok=True)
    signals.write_parquet(out / "signals.parquet")  # for `alphatide backtest --strategy window --signals`
    settings = load_settings({}, home=out)
    books = WindowBookConfig(seed=args.seed, noise=args.noise)
    spec = WindowBacktestSpec(strategy="window", candles=candles, signals=signals, out=out / "backtest", books=books)
    total = run_window_backtest(settings, spec).summary["total"]
    return {
        "sim_pnl": float(total["pnl"]),
        "sim_trades": int(total["filled_orders"]),
        "sim_windows": int(total["windows"]),
        "sim_traded_windows": int(total["traded_windows"]),
        "sim_fees": float(total["fees"]),
        "sim_venue_pnl": float(total["venue_pnl"]),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sim-windows", type=int, default=864, help="last out-of-sample windows simulated")
    parser.add_argument("--sim-dir", type=Path, default=Path(".cache/bench-window"), help="the simulator's home")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    candles, timeframe, files = load_btc(args.data_dir or shared_data_dir())
    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    result = train_window_model(candles, timeframe, cfg=WindowModelConfig(folds=args.folds, iterations=args.iterations))
    train_wall, train_cpu = time.perf_counter() - wall, time.process_time() - cpu
    evaluation = result.evaluation
    sim_wall, sim_cpu = time.perf_counter(), time.process_time()
    sim = simulate(candles, evaluation.oos, args, args.sim_dir)
    sim_wall, sim_cpu = time.perf_counter() - sim_wall, time.process_time() - sim_cpu
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
        **sim,
        "sim_market": f"seeded window books (seed {args.seed}): Up mid Phi(path) + N(0, {args.noise}), half spread "
        "0.01, fee 2500 bps exp 2 in tokens; engine + tick simulator; $200 bankroll, $20/trade, $10/day loss",
        "sim_wall_s": round(sim_wall, 2),
        "sim_cpu_s": round(sim_cpu, 2),
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
