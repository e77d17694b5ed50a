"""The fused two-tower model as a servable object: numpy context = torch context, save/load, registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.config import ModelConfig
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.modeling.fused import FusedModel, fit_fused_model
from pipelines.sources.synthetic import SyntheticSource
from pipelines.training import build_training_set, train_direction_model

AS_OF = datetime(2026, 7, 1, tzinfo=UTC)
BAR = timedelta(minutes=5)


def small_fused_model() -> tuple[FusedModel, pl.DataFrame]:
    """A fused model fitted on 6 synthetic days of 3 pairs (seconds), and its dataset."""
    source = SyntheticSource(as_of=AS_OF, days=6, n_symbols=3)
    candles = source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=6), AS_OF)
    dataset = build_training_set(candles, build_features(candles), FEATURE_COLUMNS, 1)
    trained = train_direction_model(dataset, FEATURE_COLUMNS, ModelConfig(iterations=20), "5m", thread_count=1)
    from pipelines.modeling.calibration import CalibratedClassifier, fit_calibrator

    calibration = dataset.filter((pl.col("ts") >= AS_OF - timedelta(days=2)) & pl.col("direction_1").is_not_null())
    raw = trained.model.predict_proba(calibration.select(FEATURE_COLUMNS).to_numpy())[:, 1]
    calibrator, _ = fit_calibrator(raw, calibration["direction_1"].to_numpy())
    tabular = CalibratedClassifier(trained.model, calibrator, feature_names=FEATURE_COLUMNS)
    test = dataset.filter(pl.col("ts") >= AS_OF - timedelta(days=1))
    fit = fit_fused_model(
        dataset,
        train_start=AS_OF - timedelta(days=6),
        calibration_start=AS_OF - timedelta(days=2),
        validation_start=AS_OF - timedelta(days=2),
        train_end=AS_OF - timedelta(days=1) - BAR,
        test=test,
        tabular=tabular,
        feature_columns=FEATURE_COLUMNS,
        label="direction_1",
        embargo=BAR,
        bar=BAR,
        majors=frozenset({"BTC", "ETH"}),
        seed=7,
        max_windows=200,
        epochs=1,
    )
    assert len(fit.p_test) == len(test) and np.all((fit.p_test >= 0) & (fit.p_test <= 1))
    return fit.model, dataset


@pytest.fixture(scope="module")
def fused() -> tuple[FusedModel, pl.DataFrame]:
    return small_fused_model()


def test_numpy_context_matches_the_torch_tower(fused: tuple[FusedModel, pl.DataFrame]) -> None:
    model, dataset = fused
    symbol = dataset["symbol"][0]
    rows = dataset.filter(pl.col("symbol") == symbol).sort("ts").tail(model.window + 5)
    expected = model.torch_tower.context(rows).drop_nulls().tail(1).select(
        "ctx_trend", "ctx_volatility", "ctx_liquidity", "ctx_persistence"
    ).to_numpy()[0]
    window = rows.tail(model.window)
    inputs = np.stack([model.sequence.scale(r) for r in window.select(model.sequence.columns).iter_rows(named=True)])
    assert model.context_one(inputs) == pytest.approx(expected, abs=2e-4)


def test_saved_and_loaded_without_torch_it_scores_the_same(
    fused: tuple[FusedModel, pl.DataFrame], tmp_path: Path
) -> None:
    model, dataset = fused
    loaded = FusedModel.load(model.save(tmp_path / "fused"))
    assert loaded.torch_tower is None  # serving loads the numpy export only
    row = dataset.select(FEATURE_COLUMNS).tail(3).to_numpy()
    assert np.allclose(loaded.predict_proba(row), model.predict_proba(row))
    context = np.array([0.1, -0.2, 0.3, 0.0])
    one = loaded.fuse_one(0.52, context, 1.0, 1.0, "BTC/USDT")
    assert one == pytest.approx(model.fuse_one(0.52, context, 1.0, 1.0, "BTC/USDT"))
    assert loaded.fuse_one(0.52, None, None, None, "BTC/USDT") == pytest.approx(0.52)  # missing terms drop out
    from pipelines.modeling.fusion import fuse

    for symbol, vol, trend in (("BTC/USDT", 0.7, -1.0), ("DOGE/USDT", 1.1, 1.0), ("ETH/USDT", 1.3, 0.0)):
        batch = fuse(
            model.weights, np.array([0.52]), model.readout.score(context[None, :]),
            model.regime.value(np.array([vol]), np.array([trend])), np.array([symbol.split("/")[0] in model.majors]),
        )[0]
        assert loaded.fuse_one(0.52, context, vol, trend, symbol) == pytest.approx(batch, abs=1e-12)
    test = dataset.filter(pl.col("ts") >= AS_OF - timedelta(hours=6))
    history = dataset.filter(pl.col("ts") < AS_OF - timedelta(hours=6))
    assert np.allclose(loaded.predict_frame(history, test), model.predict_frame(history, test), atol=1e-6)
