"""Benchmark: the cost of each model-tower building block on the shared 51-pair 6-month 5m sample.

    python -m bench.towers [--trials 20] [--max-rows 100000] [--threads 2] [--data DIR]

For the retrain budget (issue 5: the whole retrain within 600 s on 2 cores) this times, on the real
sample: features + labels; `tune_catboost` (``--trials`` trials, 3 expanding folds, most recent
``--max-rows`` rows before the 8 test weeks); one CatBoost fit with the tuned parameters on the most recent
400k rows; `fit_calibrator` on a validation week and the ECE before/after on the following week;
`SequenceTower.fit` and `.context` over the 8 test weeks; fusion fitting; and the single-row latency of
`CalibratedClassifier.predict_proba` against the bare CatBoost model. Wall and CPU seconds are both
reported: the machine is shared, so wall time is noisy and CPU time is the steadier figure.
Writes bench/results/towers.json and prints the same JSON as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl
from catboost import CatBoostClassifier

from bench.common import shared_data_dir
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.metrics import expected_calibration_error
from pipelines.modeling.calibration import CalibratedClassifier, fit_calibrator
from pipelines.modeling.fusion import fit_context_readout, fit_fusion, fit_regime_boost, major_mask
from pipelines.modeling.sequence import CONTEXT_COLUMNS, SequenceTower, SequenceTowerConfig
from pipelines.modeling.tuning import tune_catboost
from pipelines.training import build_training_set

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def _timed(results: dict[str, Any], name: str, fn: Callable[[], T]) -> T:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    results[f"{name}_wall_s"] = round(time.perf_counter() - wall, 2)
    results[f"{name}_cpu_s"] = round(time.process_time() - cpu, 2)
    return value


def _latency_us(fn: Callable[[], object], n: int = 2000) -> dict[str, float]:
    for _ in range(200):
        fn()
    samples = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        fn()
        samples[i] = time.perf_counter() - start
    return {
        "p50_us": round(float(np.percentile(samples, 50) * 1e6), 1),
        "p99_us": round(float(np.percentile(samples, 99) * 1e6), 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--max-rows", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-rows", type=int, default=400_000)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--data", default=str(shared_data_dir()))
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "trials": args.trials,
        "tune_max_rows": args.max_rows,
        "threads": args.threads,
        "torch_threads": args.torch_threads,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }

    def load() -> pl.DataFrame:
        candles = (
            pl.read_parquet(Path(args.data) / "binance_spot_candles" / "binance_spot_5m_2024H1.parquet")
            .rename({"open_time": "ts"})
            .with_columns(pl.col("ts").dt.cast_time_unit("us"))
        )
        return build_training_set(candles, build_features(candles), FEATURE_COLUMNS, 1)

    data = _timed(results, "features_and_labels", load)
    results["rows"] = data.height
    last: datetime = data["ts"].max()  # type: ignore[assignment]
    test_start = last - timedelta(weeks=8) + timedelta(minutes=5)
    bar = timedelta(minutes=5)
    labelled = data.filter(pl.col("direction_1").is_not_null())  # ties have no label: fitted and scored without
    history = labelled.filter(pl.col("ts") < test_start - bar)  # 1-bar embargo
    X = history.select(FEATURE_COLUMNS).to_numpy().astype(np.float64)
    y = history["direction_1"].to_numpy()

    tuning = _timed(
        results,
        "tune",
        lambda: tune_catboost(
            X, y, history["ts"].to_numpy(), n_trials=args.trials, max_rows=args.max_rows, thread_count=args.threads
        ),
    )
    results["tune_best_params"] = tuning.best_params
    results["tune_best_logloss"] = round(tuning.best_score, 5)
    results["tune_pruned"] = int((tuning.trials["state"] == "PRUNED").sum())

    # the first walk-forward fold: train before a validation week, calibrate on it, test on the next week
    valid_start = test_start - timedelta(weeks=1)
    train = history.filter(pl.col("ts") < valid_start - bar).tail(args.train_rows)
    valid = history.filter(pl.col("ts") >= valid_start)
    test = labelled.filter((pl.col("ts") >= test_start) & (pl.col("ts") < test_start + timedelta(weeks=1)))
    model = CatBoostClassifier(
        **tuning.best_params,
        rsm=0.85,
        random_seed=42,
        verbose=False,
        allow_writing_files=False,
        thread_count=args.threads,
    )
    _timed(
        results,
        "catboost_fit",
        lambda: model.fit(train.select(FEATURE_COLUMNS).to_numpy(), train["direction_1"].to_numpy()),
    )
    results["catboost_fit_rows"] = train.height
    p_valid = model.predict_proba(valid.select(FEATURE_COLUMNS).to_numpy())[:, 1]
    calibrator, briers = _timed(results, "calibrate", lambda: fit_calibrator(p_valid, valid["direction_1"].to_numpy()))
    p_test = model.predict_proba(test.select(FEATURE_COLUMNS).to_numpy())[:, 1]
    y_test = test["direction_1"].to_numpy().astype(float)
    results["calibration_method"] = calibrator.method
    results |= {k: round(v, 6) for k, v in briers.items()}
    results["test_ece_raw"] = round(expected_calibration_error(y_test, p_test), 5)
    results["test_ece_calibrated"] = round(expected_calibration_error(y_test, calibrator.transform(p_test)), 5)

    wrapped = CalibratedClassifier(model, calibrator)
    one_row = test.select(FEATURE_COLUMNS).head(1).to_numpy()
    results["predict_one_row_catboost"] = _latency_us(lambda: model.predict_proba(one_row))
    results["predict_one_row_calibrated"] = _latency_us(lambda: wrapped.predict_proba(one_row))
    results["calibrator_transform_one_row"] = _latency_us(lambda: calibrator.transform(np.array([0.51])))

    config = SequenceTowerConfig(torch_threads=args.torch_threads)
    tower = _timed(results, "sequence_fit", lambda: SequenceTower(config).fit(data, valid_start - bar))
    results["sequence_train_windows"] = tower.n_train_windows
    context = _timed(results, "sequence_context_8_weeks", lambda: tower.context(data, start=valid_start))
    results["sequence_context_rows"] = int(context["ctx_trend"].is_not_null().sum())

    def fusion() -> dict[str, Any]:
        joined = valid.join(context, on=["symbol", "ts"], how="left", maintain_order="left")
        ctx = joined.select(CONTEXT_COLUMNS).to_numpy()
        yv = joined["direction_1"].to_numpy()
        readout = fit_context_readout(ctx, yv)
        boost = fit_regime_boost(joined["vol_regime"].to_numpy(), joined["trend_regime"].to_numpy(), yv)
        weights = fit_fusion(
            calibrator.transform(p_valid),
            readout.score(ctx),
            boost.value(joined["vol_regime"].to_numpy(), joined["trend_regime"].to_numpy()),
            yv,
            major_mask(joined["symbol"].to_list(), ("BTC", "ETH", "SOL", "XRP")),
        )
        return {k: w.to_dict() for k, w in weights.items()}

    results["fusion_weights"] = _timed(results, "fusion_fit", fusion)

    results["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(results, default=float)
    (RESULTS / "towers.json").write_text(text + "\n")
    print(text)
    return results


if __name__ == "__main__":
    main()
