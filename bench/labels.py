"""Benchmark: which directional label evaluates better out of sample, on the shared 51-pair 5m sample.

    python -m bench.labels [--folds 4] [--symbols N] [--threads 2]

For each label of `pipelines.labels.direction_label` (`exclude_ties`, `cost_aware` at the backtest's round
trip), per walk-forward fold (weekly test windows, the configured 6-month window, time-stratified down to
`max_train_rows`, default CatBoost parameters, no tuning) a CatBoost model is fitted on the fold's training
rows and scored on the same test rows. The rule that picks the default holds on any data, no threshold
fitted to this sample: the higher mean out-of-sample AUC at telling up bars from down bars, on the test
bars whose close moved (the one target both labels forecast: the strategy buys ups); the backtest's net
return (long only, taker costs) breaks a tie within 0.001 AUC. Writes bench/results/labels.json.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.common import publish, shared_data_dir
from pipelines.backtest import run_backtest
from pipelines.config import load_settings
from pipelines.domain.candles import normalize_candles
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.metrics import classification_metrics
from pipelines.modeling.folds import feature_matrix, fit_catboost
from pipelines.research_config import ResearchConfig
from pipelines.retrain import round_trip_cost
from pipelines.training import build_training_set
from pipelines.walkforward import plan_windows, time_stratified_sample

SAMPLE = Path("binance_spot_candles") / "binance_spot_5m_2024H1.parquet"
MODES = ("exclude_ties", "cost_aware")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--symbols", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    settings = load_settings({}, model={"folds": args.folds, "max_test_share": 0.4})
    candles = normalize_candles(pl.read_parquet((args.data_dir or shared_data_dir()) / SAMPLE), "open_time")
    if args.symbols:
        keep = candles["symbol"].unique().sort().head(args.symbols)
        candles = candles.filter(pl.col("symbol").is_in(keep.implode()))
    features = build_features(candles, "5m")
    cost = round_trip_cost(settings, ResearchConfig())
    sets = {
        m: build_training_set(candles, features, FEATURE_COLUMNS, 1, label_mode=m, round_trip_cost=cost)  # type: ignore[arg-type]
        for m in MODES
    }
    cfg = settings.model
    bar = timedelta(minutes=5)
    base = sets["exclude_ties"]
    first: datetime = base["ts"].min()  # type: ignore[assignment]
    last: datetime = base["ts"].max()  # type: ignore[assignment]
    plan = plan_windows(
        first, last + bar, folds=cfg.folds,
        train_span=timedelta(days=30 * cfg.train_months), test_span=timedelta(days=cfg.test_days),
        embargo=cfg.embargo * bar, expanding=False, max_test_share=cfg.max_test_share,
        min_train_span=timedelta(days=cfg.min_train_days),
    )
    params = {"iterations": cfg.iterations, "learning_rate": cfg.learning_rate, "depth": cfg.depth,
              "l2_leaf_reg": cfg.l2_leaf_reg}
    per_mode: dict[str, dict[str, list[float]]] = {
        m: {"auc": [], "sharpe": [], "return": [], "trades": []} for m in MODES
    }
    for window in plan.windows:
        test = base.filter((pl.col("ts") >= window.test_start) & (pl.col("ts") < window.test_end))
        moved = test.filter(pl.col("direction_1").is_not_null())
        for mode in MODES:
            data = sets[mode]
            in_window = (pl.col("ts") >= window.train_start) & (pl.col("ts") < window.train_end)
            train = data.filter(in_window & pl.col("direction_1").is_not_null())
            fit = time_stratified_sample(train, cfg.max_train_rows, seed=cfg.seed)
            model = fit_catboost(
                feature_matrix(fit, FEATURE_COLUMNS), fit["direction_1"].to_numpy(), FEATURE_COLUMNS, params, cfg,
                args.threads,
            )
            p_moved = model.predict_proba(feature_matrix(moved, FEATURE_COLUMNS))[:, 1]
            per_mode[mode]["auc"].append(classification_metrics(moved["direction_1"].to_numpy(), p_moved).auc)
            p_all = model.predict_proba(feature_matrix(test, FEATURE_COLUMNS))[:, 1]
            bt = run_backtest(
                test, p_all, majors=frozenset(settings.universe.majors), timeframe="5m", config=settings.backtest,
                trading=settings.engine.trading, long_only=True,
            )
            per_mode[mode]["sharpe"].append(bt.sharpe)
            per_mode[mode]["return"].append(bt.total_return)
            per_mode[mode]["trades"].append(float(bt.trades))
            print(f"{window.describe()} {mode}: auc {per_mode[mode]['auc'][-1]:.4f}, sharpe {bt.sharpe:.2f}, "
                  f"return {bt.total_return:+.4%}, trades {bt.trades}", flush=True)
    summary = {m: {k: round(float(np.mean(v)), 5) for k, v in figures.items()} for m, figures in per_mode.items()}
    auc_gap = summary["cost_aware"]["auc"] - summary["exclude_ties"]["auc"]
    if abs(auc_gap) > 0.001:
        winner = "cost_aware" if auc_gap > 0 else "exclude_ties"
    else:
        winner = max(MODES, key=lambda m: summary[m]["return"])
    result: dict[str, Any] = {
        "pairs": candles["symbol"].n_unique(),
        "folds": len(plan.windows),
        "round_trip_cost": cost,
        "tie_share": round(float(base["is_tie"].mean() or 0.0), 4),  # type: ignore[arg-type]
        "cost_aware_up_share": round(float(sets["cost_aware"]["direction_1"].mean() or 0.0), 4),  # type: ignore[arg-type]
        "per_fold": {m: {k: [round(x, 5) for x in v] for k, v in f.items()} for m, f in per_mode.items()},
        "mean": summary,
        "winner": winner,
        "rule": "higher mean OOS AUC (up vs down, bars that moved); net return breaks a tie within 0.001",
        "wall_s": round(time.perf_counter() - wall, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
        "load_average_1m_at_start": round(load_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    publish("labels", result)
    return result


if __name__ == "__main__":
    main()
