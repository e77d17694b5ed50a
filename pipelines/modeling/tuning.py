"""Time-series cross-validation folds and Optuna tuning of the CatBoost tower (SPEC section 7).

Folds are expanding and never shuffled: fold k trains on every bar before its validation block minus an
embargo, and validates on the next block of bars. Rows of several symbols share timestamps, so every cut
is a timestamp, never a row position.

Cost (measured, see `tune_catboost`): CatBoost's work is about rows x iterations; tuning uses the most
recent ``max_rows`` rows and early stopping on each fold's validation block, so a trial with a learning
rate that stops improving after ~100 trees costs ~100 trees, not its iteration cap.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import polars as pl
from catboost import CatBoostClassifier, Pool

# SPEC section 7's search space.
LEARNING_RATE_RANGE = (0.01, 0.1)
DEPTH_RANGE = (3, 8)
L2_LEAF_REG_RANGE = (1.0, 7.0)
ITERATIONS_RANGE = (200, 1000)
ITERATIONS_STEP = 50
PARAM_NAMES = ("learning_rate", "depth", "l2_leaf_reg", "iterations")


def expanding_folds(times: np.ndarray, n_folds: int, embargo: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over the distinct bar timestamps in ``times``.

    ``times``: one timestamp per row (any sortable dtype: datetime64, ints; rows of several symbols share
    them; rows need not be sorted). The distinct timestamps are cut into ``n_folds + 1`` consecutive
    blocks of (nearly) equal count. Fold k (0-based) validates on block k + 1 and trains on every
    timestamp before it except the last ``embargo`` distinct timestamps (the embargo, in bars: set it to
    at least the label horizon so no training label looks into the validation block).

    Returns ``[(train_rows, validation_rows), ...]`` in fold order: int64 row indices into ``times``,
    ascending. Training sets are nested and grow; every training timestamp is earlier than every
    validation timestamp by more than ``embargo`` bars. Raises ValueError if a block is too small to leave
    training rows after the embargo.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    if embargo < 0:
        raise ValueError(f"embargo must be >= 0 bars, got {embargo}")
    stamps = np.asarray(times)
    if stamps.ndim != 1 or len(stamps) == 0:
        raise ValueError("times must be a non-empty 1-d array")
    distinct, inverse = np.unique(stamps, return_inverse=True)  # inverse: rank of each row's timestamp
    n_blocks = n_folds + 1
    if len(distinct) < n_blocks * (embargo + 1):
        raise ValueError(
            f"{len(distinct)} distinct timestamps are too few for {n_folds} folds with an embargo of "
            f"{embargo} bars (need at least {n_blocks * (embargo + 1)})"
        )
    # block b covers distinct ranks [starts[b], starts[b + 1])
    starts = np.linspace(0, len(distinct), n_blocks + 1).round().astype(np.int64)
    folds = []
    for k in range(n_folds):
        val_start, val_end = starts[k + 1], starts[k + 2]
        train_end = val_start - embargo  # exclusive rank
        train = np.flatnonzero(inverse < train_end).astype(np.int64)
        validation = np.flatnonzero((inverse >= val_start) & (inverse < val_end)).astype(np.int64)
        folds.append((train, validation))
    return folds


@dataclass(frozen=True)
class TuningResult:
    """Outcome of `tune_catboost`.

    - ``best_params``: ``learning_rate`` (float), ``depth`` (int), ``l2_leaf_reg`` (float), ``iterations``
      (int), all within SPEC section 7's ranges. ``iterations`` is the best trial's early-stopped tree
      count (mean over its folds of the best iteration + 1, rounded), clipped to [200, 1000]: the number of
      trees that helped on validation, not the cap the trial was allowed.
    - ``best_score``: the best trial's mean over folds of the validation log loss (natural log, lower is
      better) at the early-stopped iteration.
    - ``n_trials``: trials run (completed + pruned); ``seconds``: wall time of the whole tuning;
      ``n_rows``: rows used after ``max_rows``; ``trials``: one row per trial (``number``, ``state``,
      ``value``, the suggested params, ``effective_iterations``, ``seconds``).
    """

    best_params: dict[str, Any]
    best_score: float
    n_trials: int
    seconds: float
    n_rows: int
    trials: pl.DataFrame


def _check_xy(X: np.ndarray, y: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    features = np.asarray(X, dtype=np.float64)
    labels = np.asarray(y)
    stamps = np.asarray(times)
    if features.ndim != 2:
        raise ValueError(f"X must be 2-d (rows, features), got shape {features.shape}")
    if not len(features) == len(labels) == len(stamps):
        raise ValueError(f"X, y and times differ in rows ({len(features)}, {len(labels)}, {len(stamps)})")
    if np.isinf(features).any():
        raise ValueError("X holds inf: missing values must be NaN (CatBoost treats NaN as missing)")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("y must hold 0/1 labels only")
    return features, labels.astype(np.int64), stamps


def tune_catboost(
    X: np.ndarray,
    y: np.ndarray,
    times: np.ndarray,
    *,
    n_trials: int,
    n_folds: int = 3,
    embargo: int = 1,
    seed: int = 42,
    timeout_s: float | None = None,
    max_rows: int | None = None,
    thread_count: int = -1,
    rsm: float = 0.85,
    early_stopping_rounds: int = 40,
) -> TuningResult:
    """Tune learning_rate, depth, l2_leaf_reg and iterations by Optuna over expanding folds.

    ``X``: float features (NaN = missing), ``y``: 0/1 labels, ``times``: per-row bar timestamps (see
    `expanding_folds`; ``embargo`` in bars, >= the label horizon). ``max_rows`` keeps the most recent rows
    by timestamp (the market drifts; cost is linear in rows). Each trial fits one CatBoost per fold with
    its suggested ``iterations`` as a cap and early stopping (``early_stopping_rounds``) on the fold's
    validation block; Optuna's median pruner may stop a trial after a fold whose running mean is poor.
    ``rsm`` stays at the SPEC default (not tuned).

    Deterministic for a given ``seed`` and ``thread_count`` when ``timeout_s`` is None (seeded TPE
    sampler, seeded CatBoost); with a timeout the number of trials depends on the machine's speed.

    Cost (``python -m bench.towers``, shared 51-pair 5m sample, 31 feature columns): 20 trials x 3 folds
    on the most recent 100k rows (~1 week of all 51 pairs), 2 CatBoost threads: ~60 s of CPU time and
    ~75 s wall on a lightly loaded 2-core machine (3-4x the wall when other jobs compete); about a third
    of the trials are pruned after their first fold. Cost grows linearly with ``max_rows``.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if max_rows is not None and max_rows < 100:
        raise ValueError(f"max_rows must be >= 100 or None, got {max_rows}")
    if early_stopping_rounds < 1:
        raise ValueError("early_stopping_rounds must be >= 1")
    started = time.perf_counter()
    features, labels, stamps = _check_xy(X, y, times)
    if max_rows is not None and len(features) > max_rows:
        newest = np.sort(np.argsort(stamps, kind="stable")[-max_rows:])
        features, labels, stamps = features[newest], labels[newest], stamps[newest]
    folds = expanding_folds(stamps, n_folds, embargo)
    pools = []
    for k, (train, validation) in enumerate(folds):
        for name, rows in (("training", train), ("validation", validation)):
            if labels[rows].min() == labels[rows].max():
                raise ValueError(f"fold {k} {name} rows hold a single class; need more or other data")
        train_pool = Pool(features[train], labels[train])
        train_pool.quantize()  # once per fold, not once per trial
        pools.append((train_pool, Pool(features[validation], labels[validation])))

    effective: dict[int, int] = {}
    trial_seconds: dict[int, float] = {}

    def objective(trial: optuna.Trial) -> float:
        trial_started = time.perf_counter()
        params = {
            "learning_rate": trial.suggest_float("learning_rate", *LEARNING_RATE_RANGE, log=True),
            "depth": trial.suggest_int("depth", *DEPTH_RANGE),
            "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", *L2_LEAF_REG_RANGE),
            "iterations": trial.suggest_int("iterations", *ITERATIONS_RANGE, step=ITERATIONS_STEP),
        }
        losses: list[float] = []
        trees: list[int] = []
        try:
            for k, (train_pool, validation_pool) in enumerate(pools):
                model = CatBoostClassifier(
                    **params,
                    rsm=rsm,
                    loss_function="Logloss",
                    random_seed=seed,
                    thread_count=thread_count,
                    early_stopping_rounds=early_stopping_rounds,
                    use_best_model=True,
                    verbose=False,
                    allow_writing_files=False,
                )
                model.fit(train_pool, eval_set=validation_pool)
                losses.append(float(model.get_best_score()["validation"]["Logloss"]))
                trees.append(int(model.get_best_iteration()) + 1)
                trial.report(float(np.mean(losses)), step=k)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        finally:
            trial_seconds[trial.number] = time.perf_counter() - trial_started
            if trees:
                effective[trial.number] = round(float(np.mean(trees)))
        return float(np.mean(losses))

    optuna_logger = logging.getLogger("optuna")
    previous_level = optuna_logger.level
    optuna_logger.setLevel(logging.WARNING)  # one line per trial is noise in task logs
    try:
        study = optuna.create_study(
            direction="minimize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
        )
        study.optimize(objective, n_trials=n_trials, timeout=timeout_s)
    finally:
        optuna_logger.setLevel(previous_level)

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    finished = [t for t in study.trials if t.state in done]
    best = study.best_trial  # raises ValueError when no trial completed
    best_params: dict[str, Any] = {
        "learning_rate": float(best.params["learning_rate"]),
        "depth": int(best.params["depth"]),
        "l2_leaf_reg": float(best.params["l2_leaf_reg"]),
        "iterations": int(np.clip(effective.get(best.number, best.params["iterations"]), *ITERATIONS_RANGE)),
    }
    table = pl.DataFrame(
        {
            "number": [t.number for t in finished],
            "state": [t.state.name for t in finished],
            "value": [t.value for t in finished],
            "learning_rate": [float(t.params["learning_rate"]) for t in finished],
            "depth": [int(t.params["depth"]) for t in finished],
            "l2_leaf_reg": [float(t.params["l2_leaf_reg"]) for t in finished],
            "iterations": [int(t.params["iterations"]) for t in finished],
            "effective_iterations": [effective.get(t.number) for t in finished],
            "seconds": [trial_seconds.get(t.number) for t in finished],
        },
        schema={
            "number": pl.Int64,
            "state": pl.String,
            "value": pl.Float64,
            "learning_rate": pl.Float64,
            "depth": pl.Int64,
            "l2_leaf_reg": pl.Float64,
            "iterations": pl.Int64,
            "effective_iterations": pl.Int64,
            "seconds": pl.Float64,
        },
    )
    return TuningResult(
        best_params=best_params,
        best_score=float(best.value) if best.value is not None else float("nan"),
        n_trials=len(finished),
        seconds=time.perf_counter() - started,
        n_rows=len(features),
        trials=table,
    )
