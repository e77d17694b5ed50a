"""The whole nightly chain through Airflow (`dag.test()` per DAG, SQLite metadata) in a temporary home,
then `/signal` through the app: once on synthetic data, once on a few pairs of the recorded candles."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipelines.airflow_runner import run_chain
from pipelines.config import load_settings
from pipelines.lake import Lake
from pipelines.registry import MlflowRegistry
from serving.app import create_app

pytestmark = [pytest.mark.integration]

SMALL = {
    "ALPHATIDE_DATA__HISTORY_DAYS": "10",
    "ALPHATIDE_MODEL__ITERATIONS": "60",
    "ALPHATIDE_UNIVERSE__SIZE": "2",
}


def _run_and_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in {**SMALL, **env, "ALPHATIDE_HOME": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()

    results = run_chain(settings)

    assert [r["state"] for r in results] == ["success"] * 6
    assert results[0]["dag_id"] == "alphatide_universe"
    champion = MlflowRegistry(settings.mlflow_tracking_uri, None, settings.model.name).champion()
    assert champion is not None
    universe = Lake(settings.lake_dir).read_universe()
    assert universe is not None
    client = TestClient(create_app(settings))
    body = client.get("/signal", params={"symbol": "BTC/USDT"}).json()
    assert body["model_version"] == champion.version and body["model_name"] == settings.model.name
    assert body["action"] in {"buy", "sell", "hold"} and 0 < body["p_up"] < 1
    assert body["feature_time"] is not None
    assert client.get("/health").json()["status"] == "ok"
    # The chain wrote its Airflow state under the home, not anywhere global.
    assert (settings.airflow_home / "airflow.db").exists()


def test_chain_on_synthetic_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_and_serve(
        tmp_path, monkeypatch, {"ALPHATIDE_SOURCE": "synthetic", "ALPHATIDE_DATA__SYNTHETIC_SYMBOLS": "5"}
    )


@pytest.mark.realdata
def test_chain_on_recorded_candles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    _run_and_serve(
        tmp_path,
        monkeypatch,
        {"ALPHATIDE_SOURCE": "replay", "ALPHATIDE_REPLAY_DIR": str(shared_data / "binance_spot_candles")},
    )
