"""What a retrain tells its users, against a real MLflow (SQLite in a temporary home): the run's name,
the experiment shown as model training, the parameters the model was really fit with, the decision
logged at INFO with the figures compared, and `alphatide models list` as a table."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.cli import main
from pipelines.config import Settings, load_settings
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.registry import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, MlflowRegistry
from pipelines.retrain import retrain_and_promote
from pipelines.sources.synthetic import SyntheticSource

pytestmark = pytest.mark.integration
AS_OF = datetime(2026, 7, 1, tzinfo=UTC)
LINEAGE = {"feature_service": "signal_v1", "universe_date": "2026-07-01", "data_snapshot": "batch-7"}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(
        {},
        home=tmp_path_factory.mktemp("reporting"),
        model={"iterations": 30, "optuna_trials": 2, "optuna_cv_folds": 2, "folds": 2, "test_days": 1,
               "sequence_tower": False, "shuffled_control": False, "name": "reporting-test"},
    )


@pytest.fixture(scope="module")
def runs(settings: Settings) -> list[dict]:
    source = SyntheticSource(as_of=AS_OF, days=6, n_symbols=3)
    candles = source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=6), AS_OF)
    features = build_features(candles)
    # The second retrain is the same model judged by a stricter ECE bound, so the table has a rejected row
    # (an equal challenger passes the SPEC's ">=" and "<=" rules, and too few trades leave Sharpe out).
    strict = settings.model_copy(update={"promotion": settings.promotion.model_copy(update={"max_ece": 1e-9})})
    return [
        retrain_and_promote(
            run_settings, candles=candles, features=features, feature_columns=FEATURE_COLUMNS, timeframe="5m",
            lineage=LINEAGE, thread_count=1,
        )
        for run_settings in (settings, strict)
    ]


def test_the_run_is_named_by_what_it_is_in_a_model_training_experiment(settings: Settings, runs: list[dict]) -> None:
    registry = MlflowRegistry(settings.mlflow_tracking_uri, None, settings.model.name)
    run = registry.client.get_run(runs[0]["run_id"])

    assert run.info.run_name == "retrain 2026-07-01 5m h1"
    experiment = registry.client.get_experiment(run.info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND  # not MLflow 3's GenAI view
    children = registry.client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{runs[0]['run_id']}'"
    )
    assert sorted(c.info.run_name for c in children) == ["retrain 2026-07-01 5m h1 fold-0",
                                                        "retrain 2026-07-01 5m h1 fold-1"]


def test_the_tuned_parameters_are_logged_under_their_names(settings: Settings, runs: list[dict]) -> None:
    registry = MlflowRegistry(settings.mlflow_tracking_uri, None, settings.model.name)
    params = registry.client.get_run(runs[0]["run_id"]).data.params

    tuned = runs[0]["params"]
    assert set(tuned) >= {"iterations", "learning_rate", "depth", "l2_leaf_reg"}
    assert {k: params[k] for k in tuned} == {k: str(v) for k, v in tuned.items()}
    assert params["default_iterations"] == "30" and params["params_source"] == "optuna (2 trials)"
    assert tuned != {"iterations": 30, "learning_rate": 0.08, "depth": 6, "l2_leaf_reg": 5.0}


def test_the_decision_carries_its_reasons_and_the_figures_compared(runs: list[dict]) -> None:
    first, second = runs

    assert first["decision"]["promoted"] and first["champion_before"] is None
    assert first["decision"]["champion"] is None
    assert set(first["decision"]["challenger"]) >= {"brier", "ece", "accuracy", "sharpe"}
    assert second["champion_before"] == first["version"] == second["decision"]["champion_version"]
    assert set(second["decision"]["champion"]) >= {"brier", "ece", "sharpe"}
    assert second["decision"]["reasons"] == second["reasons"] and second["reasons"]


def test_the_decision_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    from pipelines.promotion import ModelScore, PromotionDecision
    from pipelines.retrain import decision_record, log_decision

    score = ModelScore(brier=0.249, ece=0.01, accuracy=0.52, sharpe=0.2)
    record = decision_record("4", PromotionDecision(False, ("sharpe 0.20 < required 0.50",)), score, None, None)
    with caplog.at_level(logging.INFO, logger="pipelines.retrain"):
        log_decision(record)

    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert lines[0] == "promotion decision: model version 4 NOT promoted (champion kept)"
    assert "  reason: sharpe 0.20 < required 0.50" in lines
    assert any(line.startswith("  challenger v4: brier 0.2490") for line in lines)


def test_models_list_is_a_table_with_alias_gate_metrics_and_decision(
    settings: Settings, runs: list[dict], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALPHATIDE_HOME", str(settings.home))
    monkeypatch.setenv("ALPHATIDE_MODEL__NAME", settings.model.name)

    assert main(["models", "list"]) == 0

    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:8] == ["version", "alias", "sharpe", "brier", "ece", "accuracy", "auc", "trades"]
    assert header[8:] == ["decision", "run", "reason"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {runs[0]["version"], runs[1]["version"]}
    assert "champion" in rows[runs[0]["version"]] and "promoted" in rows[runs[0]["version"]]
    assert "challenger" in rows[runs[1]["version"]] and "rejected" in rows[runs[1]["version"]]
    assert f"{runs[0]['promotion_sharpe']:.4f}" in rows[runs[0]["version"]]
    assert "retrain 2026-07-01 5m h1" in rows[runs[0]["version"]]


def test_an_existing_experiment_is_retagged_as_model_training(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("alphatide")  # made by an older version: no kind tag

    registry = MlflowRegistry(uri, tmp_path / "artifacts", "m")

    assert registry.client.get_experiment(registry.experiment_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
