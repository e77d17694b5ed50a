"""Benchmark: the full walk-forward retrain on the shared 51-pair 5m sample (6 months).

    python -m bench.retrain [--data-dir DIR] [--folds 8] [--trials 20] [--symbols N]

Builds the features of ``binance_spot_candles/binance_spot_5m_2024H1.parquet`` (timed apart), then runs
`pipelines.retrain.retrain_and_promote` exactly as the nightly chain does (Optuna-tuned CatBoost,
calibration, the last `--folds` weekly walk-forward folds, fee-aware backtests against the random baseline,
shuffled-label control, sequence tower + fusion on the last fold, MLflow logging and the promotion decision)
in a temporary ALPHATIDE_HOME (fresh registry: the bootstrap rule applies). Writes
``bench/results/retrain.json``; the last line printed is that JSON. Goal: ``wall_s`` <= 600 on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import polars as pl

from bench.common import publish, shared_data_dir
from pipelines.config import load_settings
from pipelines.domain.candles import normalize_candles
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.retrain import retrain_and_promote

SAMPLE = Path("binance_spot_candles") / "binance_spot_5m_2024H1.parquet"


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--folds", type=int, default=8)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--symbols", type=int, default=0, help="first N pairs only (0 = all 51)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("optuna", "mlflow", "alembic", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    path = (args.data_dir or shared_data_dir()) / SAMPLE
    if not path.is_file():
        raise SystemExit(f"candle sample not found: {path} (pass --data-dir or set SHARED_DATA_DIR)")
    candles = normalize_candles(pl.read_parquet(path), "open_time")
    if args.symbols:
        keep = candles["symbol"].unique().sort().head(args.symbols)
        candles = candles.filter(pl.col("symbol").is_in(keep.implode()))
    load_start = os.getloadavg()[0]
    cpu_start = time.process_time()
    started = time.perf_counter()
    features = build_features(candles, "5m")
    features_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="alphatide-bench-retrain-") as home:
        settings = load_settings(
            {},
            home=Path(home),
            # 8 weekly folds are 31% of the 6-month sample: allow it, so the folds are exactly a week.
            model={"folds": args.folds, "optuna_trials": args.trials, "optuna_timeout_s": 600.0, "max_test_share": 0.4},
        )
        started = time.perf_counter()
        summary = retrain_and_promote(
            settings,
            candles=candles,
            features=features,
            feature_columns=FEATURE_COLUMNS,
            timeframe="5m",
            lineage={"feature_service": "signal_v1", "universe_date": "2024-06-30", "data_snapshot": "bench-2024H1"},
        )
        wall_s = time.perf_counter() - started

    result: dict[str, object] = {
        "wall_s": round(wall_s, 1),
        "features_s": round(features_s, 1),
        "pairs": candles["symbol"].n_unique(),
        "rows": len(candles),
        "folds": summary["folds"],
        "optuna_trials": args.trials,
        "oos_auc": round(float(summary["oos_auc"]), 4),
        "oos_brier": round(float(summary["oos_brier"]), 5),
        "oos_ece": round(float(summary["oos_ece"]), 4),
        "oos_raw_ece": round(float(summary["oos_raw_ece"]), 4),
        "oos_accuracy": round(float(summary["oos_accuracy"]), 4),
        "shuffled_auc": round(float(summary["shuffled_auc"] or 0.5), 4),
        "sharpe": round(float(summary["sharpe"]), 3),
        "baseline_sharpe": round(float(summary["baseline_sharpe"]), 3),
        "trades": summary["trades"],
        "promoted": summary["promoted"],
        "tuning_s": round(float(summary["tuning_seconds"]), 1),
        "fused_auc": round(float(summary.get("fused_auc", float("nan"))), 4),
        "fused_brier": round(float(summary.get("fused_brier", float("nan"))), 5),
        "fused_ece": round(float(summary.get("fused_ece", float("nan"))), 4),
        "sequence_fusion_s": round(float(summary.get("sequence_fusion_seconds", 0.0)), 1),
        "label_mode": "exclude_ties",
        "label_tie_share": round(float(summary["label_tie_share"]), 4),
        "fit_days_per_fold": round(float(summary["fit_days_per_fold"]), 1),
        "fit_rows_per_fold": round(float(summary["fit_rows_per_fold"])),
        "baseline_sharpe_mean": round(float(summary["baseline_sharpe_mean"]), 3),
        "baseline_sharpe_std": round(float(summary["baseline_sharpe_std"]), 3),
        "baseline_seeds": int(summary["baseline_seeds"]),
        "beats_baseline_seed_share": round(float(summary["beats_baseline_seed_share"]), 3),
        "pairs_traded": int(summary["pairs_traded"]),
        "beats_baseline_pair_share": round(float(summary["beats_baseline_pair_share"]), 3),
        "bt_taker_sharpe": round(float(summary["bt_taker_sharpe"]), 3),
        "bt_taker_total_return": round(float(summary["bt_taker_total_return"]), 5),
        "bt_maker_sharpe": round(float(summary["bt_maker_sharpe"]), 3),
        "bt_maker_total_return": round(float(summary["bt_maker_total_return"]), 5),
        "bt_maker_trades": int(summary["bt_maker_trades"]),
        "served_tower": summary["served_tower"],
        "served_oos_auc": round(float(summary["served_oos_auc"]), 4),
        "served_oos_ece": round(float(summary["served_oos_ece"]), 4),
        "promotion_trades": summary["promotion_trades"],
        "tradeable": summary["tradeable"],
        "reasons": summary["reasons"],
        "notes": summary["notes"],
        "params": summary["params"],
        "cpu_count": os.cpu_count(),
        "cpu_s": round(time.process_time() - cpu_start, 1),
        "load_average_1m_at_start": round(load_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    publish("retrain", result)
    return result


if __name__ == "__main__":
    main()
