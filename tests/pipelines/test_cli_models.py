"""`alphatide models list/promote/rollback` against a real MLflow registry in a temporary home."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from catboost import CatBoostClassifier

from pipelines.cli import main
from pipelines.config import load_settings
from pipelines.registry import CHAMPION, MlflowRegistry

pytestmark = pytest.mark.integration
COLUMNS = ("a", "b")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with versions 1, 2, 3 of one model (logged once, registered three times: fast)."""
    home = tmp_path_factory.mktemp("models")
    settings = load_settings({}, home=home)
    registry = MlflowRegistry(settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", settings.model.name)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    model = CatBoostClassifier(iterations=5, verbose=False, allow_writing_files=False, thread_count=1)
    model.fit(x, (x[:, 0] > 0).astype(int))
    run_id, ref = registry.log_candidate(
        model, feature_columns=COLUMNS, horizon_bars=1, params={}, metrics={}, tags={}, input_example=x[:2]
    )
    source = registry.client.get_model_version(settings.model.name, ref.version).source
    for _ in range(2):
        registry.client.create_model_version(settings.model.name, source, run_id=run_id)
    return home


@pytest.fixture
def registry(home: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowRegistry:
    monkeypatch.setenv("ALPHATIDE_HOME", str(home))
    settings = load_settings()
    registry = MlflowRegistry(settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", settings.model.name)
    registry.set_alias("3", CHAMPION)
    return registry


def test_promote_and_rollback_move_the_champion_alias(
    registry: MlflowRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "rollback", "--to", "1"]) == 0
    champion = registry.champion()
    assert champion is not None and champion.version == "1"
    assert "champion 3 -> 1" in capsys.readouterr().out

    assert main(["models", "promote", "2"]) == 0
    champion = registry.champion()
    assert champion is not None and champion.version == "2"
    assert "manual_promote" in registry.client.get_model_version(registry.model_name, "2").tags

    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[-3:]] == ["3", "2", "1"]
    assert "champion" in out[-2]


def test_bad_versions_are_refused_with_a_reason(
    registry: MlflowRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "promote", "42"]) == 2
    assert "version 42 not found" in capsys.readouterr().err
    assert main(["models", "rollback", "--to", "3"]) == 2  # 3 is the champion: not a rollback
    assert "earlier version" in capsys.readouterr().err
    champion = registry.champion()
    assert champion is not None and champion.version == "3"
