"""The MLflow registry adapter against the real MLflow, in a temporary home (Feast: test_feature_store.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from pipelines.config import ModelConfig, Settings, load_settings
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.registry import CHAMPION, MlflowRegistry
from pipelines.sources.synthetic import SyntheticSource
from pipelines.training import build_training_set, train_direction_model

pytestmark = pytest.mark.integration
AS_OF = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings({}, home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def candles() -> pl.DataFrame:
    source = SyntheticSource(as_of=AS_OF, days=6, n_symbols=3)
    return source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=6), AS_OF)


def test_register_alias_and_load_the_native_model(home: Settings, candles: pl.DataFrame) -> None:
    dataset = build_training_set(candles, build_features(candles), FEATURE_COLUMNS, 1)
    trained = train_direction_model(
        dataset, FEATURE_COLUMNS, ModelConfig(iterations=20), "5m", thread_count=1
    )
    registry = MlflowRegistry(home.mlflow_tracking_uri, home.mlruns_dir / "artifacts", "test-model")
    assert registry.champion() is None
    example = trained.test.select(FEATURE_COLUMNS).head(3).to_pandas()

    run_id, ref = registry.log_candidate(
        trained.model,
        feature_columns=FEATURE_COLUMNS,
        horizon_bars=1,
        params={"iterations": 20},
        metrics={"oos_auc": trained.metrics.auc},
        tags={"feature_service": "signal_v1"},
        input_example=example,
    )
    registry.set_alias(ref.version, CHAMPION)

    champion = registry.champion()
    assert champion is not None and champion.version == ref.version and champion.run_id == run_id
    assert champion.feature_columns == FEATURE_COLUMNS
    loaded = registry.load_native(champion)
    assert (
        loaded.predict_proba(example.to_numpy()).tolist()
        == trained.model.predict_proba(example.to_numpy()).tolist()
    )
    assert (home.mlruns_dir / "mlflow.db").exists()
    assert [aliases for _, aliases in registry.versions()] == [["challenger", "champion"]]
