from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines.config import ModelConfig
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.sources.synthetic import SyntheticSource
from pipelines.training import build_training_set, time_ordered_split, train_direction_model

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def dataset() -> pl.DataFrame:
    source = SyntheticSource(as_of=AS_OF, days=12, n_symbols=3)
    candles = source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=12), AS_OF)
    return build_training_set(candles, build_features(candles), FEATURE_COLUMNS, 1)


def test_split_is_time_ordered_with_an_embargo(dataset: pl.DataFrame) -> None:
    train, test = time_ordered_split(dataset, 0.25, embargo=3, timeframe="5m")
    assert train["ts"].max() < test["ts"].min()
    gap_bars = (test["ts"].min() - train["ts"].max()) / timedelta(minutes=5)
    assert gap_bars >= 3 + 1
    assert len(train) + len(test) < len(dataset)


def test_training_set_has_labels_and_forward_returns(dataset: pl.DataFrame) -> None:
    assert dataset["direction_1"].null_count() == 0
    agrees = (dataset["forward_return"] >= 0).cast(pl.Int8) == dataset["direction_1"]
    assert agrees.all()


def test_trained_model_scores_the_held_out_period(dataset: pl.DataFrame) -> None:
    trained = train_direction_model(
        dataset, FEATURE_COLUMNS, ModelConfig(iterations=30), "5m", thread_count=1
    )
    assert trained.test_start > AS_OF - timedelta(days=3)
    assert trained.test_rows == len(trained.test)
    assert 0.3 < trained.metrics.auc < 0.7  # synthetic returns are unpredictable: no edge should appear
    p = trained.model.predict_proba(trained.test.select(FEATURE_COLUMNS).to_numpy())[:, 1]
    assert np.all((p > 0) & (p < 1))
    assert trained.score.brier == trained.metrics.brier


FAST = ModelConfig(
    iterations=40, optuna_trials=0, folds=2, sequence_tower=False, min_train_days=2, test_days=1
)


def _retrain(dataset: pl.DataFrame, columns: tuple[str, ...], config: ModelConfig = FAST, threads: int = 1):  # type: ignore[no-untyped-def]
    from pipelines.config import BacktestConfig
    from pipelines.trading.config import TradingConfig
    from pipelines.training import retrain_walk_forward

    return retrain_walk_forward(
        dataset, columns, config, "5m", majors=frozenset({"BTC", "ETH"}), backtest=BacktestConfig(),
        trading=TradingConfig(), thread_count=1,
    )


def test_walk_forward_retrain_scores_every_fold_out_of_sample(dataset: pl.DataFrame) -> None:
    result = _retrain(dataset, FEATURE_COLUMNS)

    assert len(result.folds) == 2
    for fold in result.folds:
        assert fold.window.train_end + timedelta(minutes=5) <= fold.window.test_start  # embargo of 1 bar
        assert fold.calibration_method in {"isotonic", "platt"}
    assert result.oos["ts"].min() >= result.folds[0].window.test_start
    assert len(result.oos) == sum(f.test_rows for f in result.folds)
    assert result.shuffled_auc is not None and 0.4 < result.shuffled_auc < 0.6
    assert result.score.brier == result.folds[-1].report.overall.brier
    assert result.score.sharpe == result.folds[-1].backtest.sharpe
    one_row = result.last_test.select(FEATURE_COLUMNS).head(1).to_numpy()
    assert result.model.predict_proba(one_row).shape == (1, 2)


def test_a_planted_future_leak_is_flagged_and_blocks_promotion(dataset: pl.DataFrame) -> None:
    from pipelines.config import PromotionConfig
    from pipelines.promotion import promote_if_better

    rng = np.random.default_rng(1)
    # The "feature" is the label itself with 10% noise: a future value that a bug leaked into the row.
    leak = np.where(rng.random(len(dataset)) < 0.9, dataset["direction_1"], 1 - dataset["direction_1"])
    leaky = dataset.with_columns(pl.Series("leaked_future", leak.astype(float)))

    result = _retrain(leaky, (*FEATURE_COLUMNS, "leaked_future"))
    decision = promote_if_better(result.score, None, validation_passed=True, config=PromotionConfig())

    assert result.score.accuracy > 0.8
    assert not decision.promote and any("leakage" in r for r in decision.reasons)


@pytest.mark.realdata
@pytest.mark.slow
def test_on_recorded_candles_the_shuffled_control_is_a_coin_and_calibration_lowers_ece(shared_data) -> None:  # type: ignore[no-untyped-def]
    from pipelines.domain.candles import normalize_candles

    raw = pl.read_parquet(shared_data / "binance_spot_candles" / "binance_spot_5m_2024H1.parquet")
    pairs = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "PEPE/USDT", "AVAX/USDT", "ARB/USDT"]
    candles = normalize_candles(raw.filter(pl.col("symbol").is_in(pairs)), "open_time").filter(
        pl.col("ts") >= datetime(2024, 4, 1, tzinfo=UTC)
    )
    dataset = build_training_set(candles, build_features(candles), FEATURE_COLUMNS, 1)
    config = ModelConfig(optuna_trials=0, folds=2, test_days=7, sequence_tower=False, max_test_share=0.4)

    result = _retrain(dataset, FEATURE_COLUMNS, config)

    assert result.shuffled_auc is not None and abs(result.shuffled_auc - 0.5) <= 0.02
    assert result.overall.overall.ece < result.overall_raw.overall.ece
    assert result.overall.overall.accuracy < 0.6  # no leak in the real features


def test_a_capped_fold_still_fits_on_its_whole_training_window(dataset: pl.DataFrame) -> None:
    capped = FAST.model_copy(update={"max_train_rows": 1000, "shuffled_control": False})

    result = _retrain(dataset, FEATURE_COLUMNS, capped)

    for fold in result.folds:
        w = fold.window
        fit_end = w.train_end - (w.train_end - w.train_start) * capped.calibration_share - timedelta(minutes=5)
        window_days = (fit_end - w.train_start) / timedelta(days=1)
        assert 900 <= fold.fit_rows <= 1000  # capped ...
        assert fold.fit_days >= 0.97 * window_days  # ... by a time-stratified sample, not the latest rows
        assert fold.metrics()["fit_days"] == fold.fit_days
    assert result.extra["fit_days_per_fold"] == pytest.approx(np.mean([f.fit_days for f in result.folds]))
