from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from catboost import CatBoostClassifier
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.metrics import expected_calibration_error
from pipelines.modeling.calibration import (
    PROB_EPS,
    CalibratedClassifier,
    Calibrator,
    fit_calibrator,
    fit_isotonic,
    fit_platt,
)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True P(up) in [0.2, 0.8]; the 'model' reports sigmoid(3 logit(p)): far too sure of itself."""
    rng = np.random.default_rng(seed)
    p_true = rng.uniform(0.2, 0.8, n)
    y = (rng.random(n) < p_true).astype(float)
    return _sigmoid(3.0 * _logit(p_true) + 0.4), y


def test_calibration_lowers_ece_and_brier_of_a_miscalibrated_model_out_of_sample() -> None:
    # Arrange
    p_raw, y = _overconfident(8000, seed=1)
    fit_p, fit_y, test_p, test_y = p_raw[:4000], y[:4000], p_raw[4000:], y[4000:]
    # Act
    calibrator, scores = fit_calibrator(fit_p, fit_y)
    calibrated = calibrator.transform(test_p)
    # Assert
    assert expected_calibration_error(test_y, calibrated) < 0.5 * expected_calibration_error(test_y, test_p)
    assert _brier(calibrated, test_y) < _brier(test_p, test_y) - 0.01
    assert set(scores) == {"brier_isotonic", "brier_platt", "brier_raw"}
    assert min(scores["brier_isotonic"], scores["brier_platt"]) < scores["brier_raw"]


def test_chooser_picks_platt_for_a_sigmoid_distortion() -> None:
    """raw = sigmoid((logit(p) - 0.5) / 2): exactly the family Platt scaling inverts.

    Both methods then fit well and the held-back Brier difference is small and noisy (isotonic wins
    ~15% of samples by chance), so the contract checked is: Platt in a clear majority of samples.
    """
    chosen = []
    for seed in range(10):
        # Arrange
        rng = np.random.default_rng(seed)
        p_true = rng.uniform(0.05, 0.95, 3000)
        y = (rng.random(3000) < p_true).astype(float)
        p_raw = _sigmoid((_logit(p_true) - 0.5) / 2.0)
        # Act
        calibrator, scores = fit_calibrator(p_raw, y)
        # Assert (per sample): the choice follows the held-back scores
        assert (calibrator.method == "platt") == (scores["brier_platt"] <= scores["brier_isotonic"])
        if calibrator.method == "platt":
            assert calibrator.platt_a == pytest.approx(2.0, rel=0.2)
        chosen.append(calibrator.method)
    assert chosen.count("platt") >= 7


def test_chooser_picks_isotonic_for_a_step_distortion() -> None:
    for seed in range(5):
        # Arrange: the truth is a step (0.15 below raw 0.5, 0.85 above); no logistic curve fits a step
        rng = np.random.default_rng(seed)
        p_raw = rng.uniform(0.0, 1.0, 3000)
        p_true = np.where(p_raw < 0.5, 0.15, 0.85)
        y = (rng.random(3000) < p_true).astype(float)
        # Act
        calibrator, scores = fit_calibrator(p_raw, y)
        # Assert
        assert calibrator.method == "isotonic"
        assert scores["brier_isotonic"] < scores["brier_platt"]
        assert calibrator.transform(np.array([0.3]))[0] == pytest.approx(0.15, abs=0.05)
        assert calibrator.transform(np.array([0.7]))[0] == pytest.approx(0.85, abs=0.05)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    distortion=st.floats(0.3, 3.0),
    probes=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=50),
)
def test_calibrators_are_monotone_and_strictly_inside_0_1(seed: int, distortion: float, probes: list[float]) -> None:
    # Arrange
    rng = np.random.default_rng(seed)
    p_true = rng.uniform(0.02, 0.98, 400)
    y = (rng.random(400) < p_true).astype(float)
    p_raw = _sigmoid(distortion * _logit(p_true))
    x = np.sort(np.asarray(probes))
    for calibrator in (fit_isotonic(p_raw, y), fit_platt(p_raw, y)):
        # Act
        out = calibrator.transform(x)
        # Assert
        assert np.all(np.diff(out) >= 0)
        assert np.all((out >= PROB_EPS) & (out <= 1 - PROB_EPS))


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibrator_round_trips_through_json(method: str) -> None:
    # Arrange
    p_raw, y = _overconfident(1000, seed=4)
    calibrator = fit_isotonic(p_raw, y) if method == "isotonic" else fit_platt(p_raw, y)
    # Act
    restored = Calibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    # Assert
    probe = np.linspace(0, 1, 101)
    assert restored.method == method
    np.testing.assert_array_equal(restored.transform(probe), calibrator.transform(probe))


def test_bad_inputs_get_clear_errors() -> None:
    p_raw, y = _overconfident(200, seed=5)
    with pytest.raises(ValueError, match="differ in length"):
        fit_calibrator(p_raw, y[:-1])
    with pytest.raises(ValueError, match="0/1"):
        fit_calibrator(p_raw, y * 2)
    with pytest.raises(ValueError, match="at least"):
        fit_calibrator(p_raw[:5], y[:5])
    with pytest.raises(ValueError, match="single class"):
        fit_calibrator(p_raw, np.r_[y[:140], np.ones(60)])
    with pytest.raises(ValueError, match="unknown method"):
        Calibrator.from_dict({"method": "beta"})
    with pytest.raises(ValueError, match="lacks"):
        Calibrator.from_dict({"method": "platt", "a": 1.0})
    with pytest.raises(ValueError, match="monotone"):
        Calibrator(method="platt", platt_a=-1.0)


def _small_catboost(seed: int = 0) -> tuple[CatBoostClassifier, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3000, 5))
    X[rng.random(3000) < 0.1, 2] = np.nan
    y = (X[:, 0] + 0.5 * rng.normal(size=3000) > 0).astype(int)
    model = CatBoostClassifier(iterations=60, depth=4, random_seed=seed, verbose=False, allow_writing_files=False)
    model.fit(X[:2000], y[:2000])
    return model, X, y


def test_calibrated_classifier_round_trips_through_save_and_load(tmp_path: Path) -> None:
    # Arrange
    model, X, y = _small_catboost()
    calibrator, _ = fit_calibrator(model.predict_proba(X[2000:2500])[:, 1], y[2000:2500])
    wrapped = CalibratedClassifier(model, calibrator, feature_names=("a", "b", "c", "d", "e"))
    # Act
    wrapped.save(tmp_path / "m")
    loaded = CalibratedClassifier.load(tmp_path / "m")
    # Assert
    before, after = wrapped.predict_proba(X[2500:]), loaded.predict_proba(X[2500:])
    np.testing.assert_array_equal(after, before)
    np.testing.assert_allclose(after.sum(axis=1), 1.0)
    np.testing.assert_array_equal(after[:, 1], calibrator.transform(model.predict_proba(X[2500:])[:, 1]))
    assert loaded.feature_names == ("a", "b", "c", "d", "e")
    assert loaded.calibrator.method == calibrator.method
    assert after[:1].shape == (1, 2)


def test_load_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model\.cbm"):
        CalibratedClassifier.load(tmp_path)


@pytest.mark.realdata
@pytest.mark.slow
def test_calibration_lowers_ece_of_catboost_on_the_real_sample(shared_data: Path) -> None:
    """SPEC defaults on 12 pairs x 2 months of real 5m bars: calibrated on a validation week, scored on the next."""
    from pipelines.config import ModelConfig
    from pipelines.features import FEATURE_COLUMNS, build_features
    from pipelines.training import build_training_set

    # Arrange
    pairs = (shared_data / "binance_spot_candles" / "pairs.txt").read_text().split()[:12]
    candles = (
        pl.scan_parquet(shared_data / "binance_spot_candles" / "binance_spot_5m_2024H1.parquet")
        .filter(pl.col("symbol").is_in(pairs) & (pl.col("open_time") >= datetime(2024, 4, 15, tzinfo=UTC)))
        .rename({"open_time": "ts"})
        .with_columns(pl.col("ts").dt.cast_time_unit("us"))
        .collect()
    )
    data = build_training_set(candles, build_features(candles), FEATURE_COLUMNS, 1).filter(
        pl.col("direction_1").is_not_null()  # ties have no label
    )
    cfg = ModelConfig()
    valid_start, test_start = datetime(2024, 6, 16, tzinfo=UTC), datetime(2024, 6, 23, tzinfo=UTC)
    train = data.filter(pl.col("ts") < valid_start).head(-len(pairs))  # 1-bar embargo
    valid = data.filter((pl.col("ts") >= valid_start) & (pl.col("ts") < test_start)).head(-len(pairs))
    test = data.filter(pl.col("ts") >= test_start)
    model = CatBoostClassifier(
        iterations=cfg.iterations, learning_rate=cfg.learning_rate, depth=cfg.depth, l2_leaf_reg=cfg.l2_leaf_reg,
        rsm=cfg.rsm, random_seed=cfg.seed, verbose=False, allow_writing_files=False, thread_count=2,
    )
    model.fit(train.select(FEATURE_COLUMNS).to_numpy(), train["direction_1"].to_numpy())
    # Act
    calibrator, _ = fit_calibrator(model.predict_proba(valid.select(FEATURE_COLUMNS).to_numpy())[:, 1],
                                   valid["direction_1"].to_numpy())
    raw = model.predict_proba(test.select(FEATURE_COLUMNS).to_numpy())[:, 1]
    y = test["direction_1"].to_numpy().astype(float)
    # Assert
    assert expected_calibration_error(y, calibrator.transform(raw)) < expected_calibration_error(y, raw)
