"""Benchmark: single-row inference of the served towers through `serving.scorer.ChampionScorer`.

    python -m bench.fused_inference [--pairs 6] [--days 30] [--rows 3000]

Fits a fused two-tower model (`pipelines.modeling.fused.fit_fused_model`, small: 2000 windows, 1 epoch) on
the last `--days` of `--pairs` pairs of the shared 5m sample, saves and reloads it the way the serving
tier does (numpy sequence export, no torch), then times `ChampionScorer.score` per call for real feature
rows: at a bar close (the row joins the 200-bar buffer and the sequence context is computed), between
bars (context memoized), and with the degrade switch on (tabular tower only). SPEC 14 / 10: inference
p99 within 10 ms. Wall and CPU time and the load average are reported. Writes
bench/results/fused_inference.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.common import publish, shared_data_dir
from pipelines.config import ModelConfig
from pipelines.domain.candles import normalize_candles
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.modeling.calibration import CalibratedClassifier, fit_calibrator
from pipelines.modeling.folds import feature_matrix, fit_catboost
from pipelines.modeling.fused import FusedModel, fit_fused_model
from pipelines.registry import ModelRef
from pipelines.training import build_training_set
from serving.scorer import ChampionScorer

SAMPLE = Path("binance_spot_candles") / "binance_spot_5m_2024H1.parquet"
BAR = timedelta(minutes=5)


class _OneModel:
    """A ChampionSource holding one loaded model (the bench times the scorer, not the registry)."""

    def __init__(self, model: Any):
        self.model = model
        self.ref = ModelRef("bench", "1", "run", FEATURE_COLUMNS, 1, tradeable=False, tower="fused")

    def champion(self) -> ModelRef:
        return self.ref

    def load_native(self, ref: ModelRef) -> Any:
        return self.model


def _percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e6
    return {"p50_us": round(float(np.percentile(a, 50)), 1), "p99_us": round(float(np.percentile(a, 99)), 1),
            "max_us": round(float(a.max()), 1), "n": len(a)}


def _fit(dataset: pl.DataFrame, end: Any) -> FusedModel:
    cfg = ModelConfig(iterations=200)
    labelled = dataset.filter(pl.col("direction_1").is_not_null())
    train = labelled.filter(pl.col("ts") < end - timedelta(days=6))
    held = labelled.filter((pl.col("ts") >= end - timedelta(days=6)) & (pl.col("ts") < end - timedelta(days=3)))
    params = {"iterations": 200, "learning_rate": 0.08, "depth": 6, "l2_leaf_reg": 5.0}
    cat = fit_catboost(feature_matrix(train, FEATURE_COLUMNS), train["direction_1"].to_numpy(), FEATURE_COLUMNS,
                       params, cfg, 2)
    calibrator, _ = fit_calibrator(cat.predict_proba(feature_matrix(held, FEATURE_COLUMNS))[:, 1],
                                   held["direction_1"].to_numpy())
    fit = fit_fused_model(
        dataset, train_start=dataset["ts"].min(), calibration_start=end - timedelta(days=6),  # type: ignore[arg-type]
        validation_start=end - timedelta(days=6), train_end=end - timedelta(days=3) - BAR,
        test=dataset.filter(pl.col("ts") >= end - timedelta(days=3)),
        tabular=CalibratedClassifier(cat, calibrator, feature_names=FEATURE_COLUMNS),
        feature_columns=FEATURE_COLUMNS, label="direction_1", embargo=BAR, bar=BAR,
        majors=frozenset({"BTC", "ETH", "SOL", "XRP"}), seed=7, max_windows=2000, epochs=1,
    )
    return fit.model


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows", type=int, default=3000)
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    raw = normalize_candles(pl.read_parquet(shared_data_dir() / SAMPLE), "open_time")
    pairs = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "PEPE/USDT", "AVAX/USDT"][: args.pairs]
    end = raw["ts"].max()
    candles = raw.filter(pl.col("symbol").is_in(pairs) & (pl.col("ts") >= end - timedelta(days=args.days)))  # type: ignore[operator]
    dataset = build_training_set(candles, build_features(candles, "5m"), FEATURE_COLUMNS, 1)
    fitted = _fit(dataset, end)
    with tempfile.TemporaryDirectory() as tmp:
        served = FusedModel.load(fitted.save(Path(tmp) / "fused"))  # numpy export, as the serving tier loads it
    scorer = ChampionScorer(_OneModel(served))
    replay = dataset.filter(pl.col("ts") >= end - timedelta(days=3)).sort("ts", "symbol")  # type: ignore[operator]
    warm = dataset.filter(pl.col("ts") < end - timedelta(days=3)).sort("ts", "symbol").group_by(  # type: ignore[operator]
        "symbol", maintain_order=True
    ).tail(200)
    for row in warm.iter_rows(named=True):
        scorer.observe_bar(row["symbol"], int(row["ts"].timestamp() * 1e6), {c: row[c] for c in FEATURE_COLUMNS})
    timings: dict[str, list[float]] = {"bar_close": [], "intrabar": [], "tabular_only": []}
    cpu_times: dict[str, list[float]] = {name: [] for name in timings}
    towers: list[str] = []
    cpu = time.process_time()
    rows = list(replay.head(args.rows).iter_rows(named=True))

    def timed(name: str, call: Any) -> Any:
        started, thread = time.perf_counter(), time.thread_time()
        out = call()
        timings[name].append(time.perf_counter() - started)
        cpu_times[name].append(time.thread_time() - thread)
        return out

    for row in rows:
        values = {c: row[c] for c in FEATURE_COLUMNS}
        ts_us = int(row["ts"].timestamp() * 1e6)
        score = timed("bar_close", lambda: scorer.score(row["symbol"], values, bar_close_ts_us=ts_us))  # noqa: B023
        towers.append(score.tower if score else "none")
        timed("intrabar", lambda: scorer.score(row["symbol"], values))  # noqa: B023
    scorer.use_tabular_only(True)  # the degrade switch
    for row in rows:
        values = {c: row[c] for c in FEATURE_COLUMNS}
        timed("tabular_only", lambda: scorer.score(row["symbol"], values))  # noqa: B023
    result: dict[str, Any] = {
        "pairs": len(pairs),
        "calls": len(timings["bar_close"]),
        "fused_share": round(towers.count("fused") / max(len(towers), 1), 4),
        **{name: _percentiles(samples) for name, samples in timings.items()},
        **{f"{name}_thread_cpu": _percentiles(samples) for name, samples in cpu_times.items()},
        "budget_p99_us": 10_000,
        "cpu_s": round(time.process_time() - cpu, 2),
        "load_average_1m_at_start": round(load_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    publish("fused_inference", result)
    return result


if __name__ == "__main__":
    main()
