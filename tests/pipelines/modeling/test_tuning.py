from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.modeling.tuning import (
    DEPTH_RANGE,
    ITERATIONS_RANGE,
    L2_LEAF_REG_RANGE,
    LEARNING_RATE_RANGE,
    expanding_folds,
    tune_catboost,
)


@settings(max_examples=60, deadline=None)
@given(
    n_stamps=st.integers(8, 120),
    n_symbols=st.integers(1, 4),
    n_folds=st.integers(1, 5),
    embargo=st.integers(0, 4),
    seed=st.integers(0, 1000),
)
def test_folds_are_expanding_embargoed_unshuffled_and_cut_by_timestamp(
    n_stamps: int, n_symbols: int, n_folds: int, embargo: int, seed: int
) -> None:
    # Arrange: several symbols share each timestamp; rows in a random order
    rng = np.random.default_rng(seed)
    stamps = np.arange(n_stamps, dtype=np.int64) * 300 + 1_700_000_000
    times = rng.permutation(np.repeat(stamps, n_symbols))
    if n_stamps < (n_folds + 1) * (embargo + 1):
        with pytest.raises(ValueError, match="too few"):
            expanding_folds(times, n_folds, embargo)
        return
    # Act
    folds = expanding_folds(times, n_folds, embargo)
    # Assert
    assert len(folds) == n_folds
    rank = {t: i for i, t in enumerate(stamps)}
    previous_train: set[int] = set()
    previous_val_end = -1
    for train, validation in folds:
        assert len(train) and len(validation)
        assert np.all(np.diff(train) > 0) and np.all(np.diff(validation) > 0)  # row order kept, no shuffle
        train_ranks = np.array([rank[t] for t in times[train]])
        val_ranks = np.array([rank[t] for t in times[validation]])
        assert train_ranks.max() + embargo < val_ranks.min()  # embargo holds, in bars
        assert train_ranks.min() == 0  # expanding: always from the start
        assert previous_train <= set(train.tolist())  # nested, growing
        assert val_ranks.min() > previous_val_end  # validation blocks move forward
        # split by timestamp: every row of a used timestamp is on the same side
        assert set(np.flatnonzero(np.isin(times, times[validation]))) == set(validation.tolist())
        assert set(np.flatnonzero(np.isin(times, times[train]))) == set(train.tolist())
        # train covers everything before the embargo
        assert train_ranks.max() == val_ranks.min() - embargo - 1
        previous_train, previous_val_end = set(train.tolist()), val_ranks.max()
    assert previous_val_end == n_stamps - 1  # the last block is used


def test_folds_reject_bad_arguments() -> None:
    times = np.arange(20)
    with pytest.raises(ValueError, match="n_folds"):
        expanding_folds(times, 0, 1)
    with pytest.raises(ValueError, match="embargo"):
        expanding_folds(times, 2, -1)
    with pytest.raises(ValueError, match="non-empty"):
        expanding_folds(np.array([]), 2, 1)


def _tiny_problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_stamps, n_symbols = 150, 3
    times = np.repeat(np.arange(n_stamps) * 300, n_symbols)
    X = rng.normal(size=(len(times), 4))
    X[rng.random(len(times)) < 0.05, 3] = np.nan
    y = (X[:, 0] + rng.normal(size=len(times)) > 0).astype(int)
    return X, y, times


def test_tune_catboost_is_deterministic_and_in_spec_ranges() -> None:
    # Arrange
    X, y, times = _tiny_problem()
    # Act
    first = tune_catboost(X, y, times, n_trials=3, n_folds=2, embargo=1, seed=7, thread_count=1)
    second = tune_catboost(X, y, times, n_trials=3, n_folds=2, embargo=1, seed=7, thread_count=1)
    # Assert
    assert first.best_params == second.best_params
    assert first.best_score == second.best_score
    assert first.trials["value"].to_list() == second.trials["value"].to_list()
    params = first.best_params
    assert set(params) == {"learning_rate", "depth", "l2_leaf_reg", "iterations"}
    assert LEARNING_RATE_RANGE[0] <= params["learning_rate"] <= LEARNING_RATE_RANGE[1]
    assert DEPTH_RANGE[0] <= params["depth"] <= DEPTH_RANGE[1] and isinstance(params["depth"], int)
    assert L2_LEAF_REG_RANGE[0] <= params["l2_leaf_reg"] <= L2_LEAF_REG_RANGE[1]
    assert ITERATIONS_RANGE[0] <= params["iterations"] <= ITERATIONS_RANGE[1]
    assert isinstance(params["iterations"], int)
    assert first.n_trials == 3 and first.trials.height == 3
    assert first.n_rows == len(X)
    # log loss of a real (weak) signal: finite and better than a coin's ln 2
    assert 0 < first.best_score < np.log(2)


def test_tune_catboost_keeps_the_most_recent_rows() -> None:
    X, y, times = _tiny_problem(seed=1)
    result = tune_catboost(X, y, times, n_trials=1, n_folds=2, seed=1, max_rows=300, thread_count=1)
    assert result.n_rows == 300


def test_tune_catboost_names_bad_input() -> None:
    X, y, times = _tiny_problem()
    with pytest.raises(ValueError, match="differ in rows"):
        tune_catboost(X, y[:-1], times, n_trials=1)
    with pytest.raises(ValueError, match="inf"):
        tune_catboost(np.where(X > 2, np.inf, X), y, times, n_trials=1)
    with pytest.raises(ValueError, match="n_trials"):
        tune_catboost(X, y, times, n_trials=0)
