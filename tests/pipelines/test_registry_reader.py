"""The serving tier's SDK-free registry reader agrees with MLflow's client on a real registry: same
champion, same feature columns, the same predictions from the loaded model (bare CatBoost and calibrated),
and it follows the alias when it moves."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from pipelines.config import ModelConfig, Settings, load_settings
from pipelines.errors import OperatorError
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.modeling.calibration import CalibratedClassifier, fit_calibrator
from pipelines.registry import CHAMPION, MlflowRegistry, SqliteRegistryReader, serving_registry
from pipelines.sources.synthetic import SyntheticSource
from pipelines.training import build_training_set, train_direction_model

pytestmark = pytest.mark.integration
AS_OF = datetime(2026, 7, 1, tzinfo=UTC)
MODEL = "reader-test"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings({}, home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def trained():  # type: ignore[no-untyped-def]
    source = SyntheticSource(as_of=AS_OF, days=6, n_symbols=3)
    candles = source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=6), AS_OF)
    dataset = build_training_set(candles, build_features(candles), FEATURE_COLUMNS, 1)
    return train_direction_model(dataset, FEATURE_COLUMNS, ModelConfig(iterations=20), "5m", thread_count=1)


def _example(trained) -> np.ndarray:  # type: ignore[no-untyped-def]
    return trained.test.select(FEATURE_COLUMNS).head(50).to_numpy()


def _log(registry: MlflowRegistry, model, trained) -> str:  # type: ignore[no-untyped-def]
    _, ref = registry.log_candidate(
        model, feature_columns=FEATURE_COLUMNS, horizon_bars=3, params={}, metrics={}, tags={},
        input_example=trained.test.select(FEATURE_COLUMNS).head(2).to_pandas(),
    )
    return ref.version


def test_reader_follows_the_sdk_for_bare_and_calibrated_models(home: Settings, trained) -> None:  # type: ignore[no-untyped-def]
    registry = MlflowRegistry(home.mlflow_tracking_uri, home.mlruns_dir / "artifacts", MODEL)
    reader = serving_registry(home.mlflow_tracking_uri, home.mlruns_dir / "artifacts", MODEL)
    assert isinstance(reader, SqliteRegistryReader)
    assert reader.champion() is None  # registered model does not exist yet
    bare = _log(registry, trained.model, trained)
    assert reader.champion() is None  # registered, but no champion alias yet
    x = _example(trained)
    p_raw = trained.model.predict_proba(x)[:, 1]
    labels = (np.arange(len(p_raw)) % 2).astype(float)  # any 0/1 outcomes: only the file format matters here
    calibrator, _ = fit_calibrator(np.tile(p_raw, 4), np.tile(labels, 4))
    calibrated = _log(registry, CalibratedClassifier(trained.model, calibrator, FEATURE_COLUMNS), trained)

    for version in (bare, calibrated):
        registry.set_alias(version, CHAMPION)
        ref = reader.champion()
        assert ref == registry.champion()
        assert ref is not None and ref.version == version and ref.horizon_bars == 3
        got = reader.load_native(ref).predict_proba(x)
        want = registry.load_native(ref).predict_proba(x)
        assert np.array_equal(got, want)
    assert isinstance(reader.load_native(reader.champion()), CalibratedClassifier)  # type: ignore[arg-type]


def test_a_missing_database_has_no_champion(tmp_path: Path) -> None:
    assert SqliteRegistryReader(tmp_path / "mlflow.db", MODEL).champion() is None


def test_a_version_without_local_files_is_an_operator_error(home: Settings, trained) -> None:  # type: ignore[no-untyped-def]
    registry = MlflowRegistry(home.mlflow_tracking_uri, home.mlruns_dir / "artifacts", MODEL + "-2")
    version = _log(registry, trained.model, trained)
    registry.set_alias(version, CHAMPION)
    reader = SqliteRegistryReader(home.mlruns_dir / "mlflow.db", MODEL + "-2")
    ref = reader.champion()
    assert ref is not None
    import sqlite3

    with sqlite3.connect(home.mlruns_dir / "mlflow.db") as db:
        db.execute("UPDATE model_versions SET storage_location = 's3://bucket/x' WHERE name = ?", (MODEL + "-2",))

    with pytest.raises(OperatorError, match="no local artifact folder"):
        reader.load_native(ref)


def test_other_tracking_uris_use_the_sdk(tmp_path: Path) -> None:
    code = (
        "import sys; from pipelines.registry import serving_registry, MlflowRegistry; "
        f"r = serving_registry('file://{tmp_path}/mlruns', None, 'm'); "
        "print(isinstance(r, MlflowRegistry))"
    )
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}  # MLflow 3 refuses a file store otherwise
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)

    assert out.stdout.split()[-1] == "True"


def test_reading_the_registry_does_not_import_mlflow(home: Settings, trained) -> None:  # type: ignore[no-untyped-def]
    registry = MlflowRegistry(home.mlflow_tracking_uri, home.mlruns_dir / "artifacts", MODEL + "-3")
    registry.set_alias(_log(registry, trained.model, trained), CHAMPION)
    code = (
        "import sys; from pathlib import Path; from pipelines.registry import SqliteRegistryReader; "
        f"r = SqliteRegistryReader(Path({str(home.mlruns_dir / 'mlflow.db')!r}), {MODEL + '-3'!r}); "
        "ref = r.champion(); r.load_native(ref); print(ref.version, 'mlflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()

    assert out == ["1", "False"]

