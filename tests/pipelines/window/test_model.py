"""Window model: walk-forward training, calibration, leakage checks, the gate and the registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.config import PromotionConfig
from pipelines.domain.candles import normalize_candles
from pipelines.metrics import ClassificationMetrics
from pipelines.registry import MlflowRegistry
from pipelines.window.dataset import WINDOW_FEATURES, window_dataset
from pipelines.window.model import WindowModelConfig, evaluate_walk_forward, window_gate
from pipelines.window.train import train_window_model

FAST = WindowModelConfig(iterations=40, depth=3, train_days=6, test_days=2, folds=2, min_train_days=2)


def _random_walk(days: int, seed: int = 11) -> pl.DataFrame:
    n = days * 1440
    rng = np.random.default_rng(seed)
    closes = 60_000 * np.exp(np.cumsum(rng.normal(0, 0.0007, n)))
    opens = np.concatenate([[60_000.0], closes[:-1]])
    spread = np.abs(rng.normal(0, 0.0004, n)) * closes
    start = datetime(2024, 2, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "symbol": "BTC/USDT",
            "ts": [start + timedelta(minutes=i) for i in range(n)],
            "open": opens,
            "high": np.maximum(opens, closes) + spread,
            "low": np.minimum(opens, closes) - spread,
            "close": closes,
            "volume": rng.gamma(2.0, 5.0, n),
        }
    )
    return normalize_candles(frame)


@pytest.fixture(scope="module")
def dataset() -> pl.DataFrame:
    return window_dataset(_random_walk(12), "1m")


def test_walk_forward_on_a_random_walk_has_no_skill_at_the_open_but_some_late(dataset: pl.DataFrame) -> None:
    evaluation = evaluate_walk_forward(dataset, FAST, PromotionConfig())
    assert len(evaluation.folds) == 2
    assert evaluation.windows == evaluation.oos.select("window_start").n_unique()
    # at the window open a random walk is a coin flip: no leakage flag ...
    assert 0.40 < evaluation.open_accuracy < 0.60 and not evaluation.leakage
    # ... late in the window price_vs_open knows most of the move
    late = evaluation.oos.filter(pl.col("time_decay") < 0.3)
    assert ((late["p_up"] >= 0.5).cast(pl.Int8) == late["up"]).mean() > 0.7  # type: ignore[operator]
    assert evaluation.shuffled_auc is not None and abs(evaluation.shuffled_auc - 0.5) < 0.08
    assert evaluation.overall.ece < 0.1
    assert evaluation.brier_skill_vs_market is None and evaluation.market_rows == 0


def test_a_leaked_feature_raises_the_flag_and_blocks_promotion(dataset: pl.DataFrame) -> None:
    leaked = dataset.with_columns(pl.col("up").cast(pl.Float64).alias("future_close_sign"))
    evaluation = evaluate_walk_forward(leaked, FAST, PromotionConfig(), (*WINDOW_FEATURES, "future_close_sign"))
    assert evaluation.leakage and evaluation.open_accuracy > 0.95
    decision = window_gate(evaluation.overall, None, PromotionConfig(), open_accuracy=evaluation.open_accuracy)
    assert not decision.promote and "leakage" in decision.summary


def test_gate_needs_brier_and_ece_no_worse_than_the_champion() -> None:
    def m(brier: float, ece: float) -> ClassificationMetrics:
        return ClassificationMetrics(auc=0.5, brier=brier, log_loss=0.69, accuracy=0.5, ece=ece, n=100)

    promotion = PromotionConfig()
    assert window_gate(m(0.249, 0.01), m(0.250, 0.01), promotion, open_accuracy=0.52).promote
    assert not window_gate(m(0.251, 0.01), m(0.250, 0.01), promotion, open_accuracy=0.52).promote
    assert not window_gate(m(0.249, 0.08), m(0.250, 0.01), promotion, open_accuracy=0.52).promote
    assert window_gate(m(0.30, 0.2), None, promotion, open_accuracy=0.52).promote  # bootstrap


def test_a_bootstrap_is_tradeable_only_when_it_also_passes_the_ece_rule() -> None:
    def m(ece: float) -> ClassificationMetrics:
        return ClassificationMetrics(auc=0.5, brier=0.25, log_loss=0.69, accuracy=0.5, ece=ece, n=100)

    promotion = PromotionConfig()
    loose = window_gate(m(0.2), None, promotion, open_accuracy=0.52)
    calibrated = window_gate(m(0.01), None, promotion, open_accuracy=0.52)
    leaked = window_gate(m(0.01), None, promotion, open_accuracy=0.9)
    full = window_gate(m(0.01), m(0.01), promotion, open_accuracy=0.52)
    assert loose.promote and not loose.tradeable and "signals only" in loose.summary
    assert calibrated.promote and calibrated.tradeable and "(tradeable)" in calibrated.summary
    assert not leaked.promote and not leaked.tradeable
    assert full.promote and full.tradeable


def test_brier_skill_against_recorded_market_prices() -> None:
    candles = _random_walk(12)
    ts = candles["ts"].gather_every(7)
    prices = pl.DataFrame({"symbol": "BTC/USDT", "ts": ts, "price_up": np.full(len(ts), 0.5)})
    evaluation = evaluate_walk_forward(window_dataset(candles, "1m", market_prices=prices), FAST, PromotionConfig())
    assert evaluation.market_rows > 0
    # against a constant 0.5 "market" the skill is the skill against 0.5 on those rows
    assert evaluation.brier_skill_vs_market is not None and evaluation.brier_skill_vs_market > 0


@pytest.mark.integration
def test_registers_its_own_model_and_promotes_through_the_gate(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = MlflowRegistry(uri, tmp_path / "artifacts", FAST.name, experiment="alphatide-window")
    candles = _random_walk(12)
    first = train_window_model(candles, "1m", cfg=FAST, registry=registry)
    assert first.version is not None and first.decision.promote  # bootstrap: no champion yet
    champion = registry.champion()
    assert champion is not None and champion.version == first.version.version and champion.name == "alphatide-window"
    assert champion.feature_columns == WINDOW_FEATURES
    # the version says which bars it was trained on (serving refuses other bars) and if it may be traded
    assert champion.timeframe == "1m" and champion.tradeable == first.decision.tradeable
    second = train_window_model(candles, "1m", cfg=FAST, registry=registry)
    assert second.champion_metrics is not None  # scored on the same last test window
    assert second.version is not None and second.version.version != first.version.version
    model = registry.load_native(champion)
    assert model.predict_proba(np.zeros((1, len(WINDOW_FEATURES)))).shape == (1, 2)


@pytest.mark.realdata
def test_on_the_recorded_btc_candles(shared_data: Path) -> None:
    raw = pl.read_parquet(shared_data / "binance_spot_candles" / "binance_spot_5m_2024H1.parquet")
    candles = normalize_candles(raw.filter(pl.col("symbol") == "BTC/USDT"), ts_column="open_time")
    result = train_window_model(candles, "5m", cfg=WindowModelConfig(iterations=60, folds=2))
    metrics = result.evaluation.metrics()
    assert metrics["windows"] > 3000 and not result.evaluation.leakage
    assert 0.23 < metrics["oos_brier"] < 0.27 and abs(metrics["shuffled_auc"] - 0.5) < 0.05


@pytest.mark.integration
def test_the_nightly_stage_trains_on_the_validated_batch(tmp_path: Path) -> None:
    from pipelines.config import load_settings
    from pipelines.lake import Lake
    from pipelines.window.train import run_window_training

    settings = load_settings({"ALPHATIDE_HOME": str(tmp_path)})
    lake = Lake(settings.lake_dir)
    candles = _random_walk(12)
    lake.write_candles(candles, "binance", "1m")
    start, end = candles["ts"].min(), candles["ts"].max() + timedelta(minutes=1)  # type: ignore[operator]
    lake.write_state(
        "validated",
        {
            "venue": "binance",
            "timeframe": "1m",
            "symbols": ["BTC/USDT"],
            "batch_id": "b1",
            "source": "synthetic",
            "start": start.isoformat(),
            "end": end.isoformat(),
        },  # type: ignore[union-attr]
    )
    summary = run_window_training(settings, FAST)
    assert summary["model"] == "alphatide-window" and summary["promoted"] is True
    assert lake.read_state("window_training") == summary
    registry = MlflowRegistry(settings.mlflow_tracking_uri, None, "alphatide-window")
    champion = registry.champion()
    assert champion is not None and champion.version == summary["version"]
