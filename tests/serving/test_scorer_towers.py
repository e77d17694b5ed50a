"""The served towers and the tradeable flag: a fused champion read from the real registry, its 200-bar
buffer, the degrade switch, and a champion that has not passed the full gate served but not tradeable."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from bench.serving_home import build_ready_home
from pipelines.config import load_settings
from pipelines.features import FEATURE_COLUMNS
from pipelines.modeling.fused import FusedModel
from pipelines.modeling.fusion import FusionWeights
from pipelines.registry import CHAMPION, MlflowRegistry, serving_registry
from serving.app import create_app
from serving.scorer import BAR_BUFFER, ChampionScorer
from tests.pipelines.modeling.test_fused import small_fused_model

pytestmark = pytest.mark.integration
NOW = datetime(2026, 8, 1, 0, 3, tzinfo=UTC)


def test_a_fused_champion_scores_fused_once_200_bars_are_buffered_and_degrades_on_request(tmp_path: Path) -> None:
    fitted, dataset = small_fused_model()
    # the SPEC's seed weights, so the fused answer differs from the tabular one whatever the fit found
    seed = {"majors": FusionWeights(0.55, 0.30, 0.15, "seed"), "alts": FusionWeights(0.65, 0.10, 0.25, "seed")}
    model = replace(fitted, weights=seed)
    settings = load_settings({}, home=tmp_path)
    registry = MlflowRegistry(settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", settings.model.name)
    _, ref = registry.log_candidate(
        model, feature_columns=FEATURE_COLUMNS, horizon_bars=1, params={}, metrics={}, tags={},
        input_example=dataset.select(FEATURE_COLUMNS).head(2).to_pandas(),
    )
    registry.set_alias(ref.version, CHAMPION)
    registry.record_tradeable(ref.version, False)  # a bootstrap champion

    scorer = ChampionScorer(serving_registry(settings.mlflow_tracking_uri, None, settings.model.name))
    champion = scorer.current()
    assert champion is not None and isinstance(champion.model, FusedModel)  # SDK-free reader, no torch
    assert champion.ref.tower == "fused" and scorer.tower == "fused" and not scorer.tradeable

    symbol = dataset["symbol"][0]
    bars = dataset.filter(pl.col("symbol") == symbol).sort("ts").tail(BAR_BUFFER + 1)
    scores = []
    for row in bars.iter_rows(named=True):
        values = {c: row[c] for c in FEATURE_COLUMNS}
        scores.append(scorer.score(symbol, values, bar_close_ts_us=int(row["ts"].timestamp() * 1e6)))
    assert all(s is not None for s in scores)
    assert [s.tower for s in scores[: BAR_BUFFER - 1]] == ["tabular"] * (BAR_BUFFER - 1)  # type: ignore[union-attr]
    assert scores[0].reason == "sequence warming up: 1/200 bars"  # type: ignore[union-attr]
    last = scores[-1]
    assert last is not None and last.tower == "fused" and not last.tradeable and scorer.buffered(symbol) == BAR_BUFFER
    values = {c: bars.row(-1, named=True)[c] for c in FEATURE_COLUMNS}
    assert last.p_up != pytest.approx(champion.predict_up([values[c] for c in FEATURE_COLUMNS]), abs=1e-6)
    # the streaming answer is the batch (torch) answer for that bar
    history = dataset.filter(pl.col("ts") < bars["ts"].max())
    batch = champion.model.predict_frame(history, dataset.filter(pl.col("ts") == bars["ts"].max()))
    rows = dataset.filter(pl.col("ts") == bars["ts"].max())["symbol"].to_list()
    assert last.p_up == pytest.approx(float(batch[rows.index(symbol)]), abs=1e-4)

    scorer.use_tabular_only(True)  # the degrade switch
    degraded = scorer.score(symbol, values)
    assert degraded is not None and degraded.tower == "tabular" and scorer.tower == "tabular"
    assert degraded.p_up == pytest.approx(champion.predict_up([values[c] for c in FEATURE_COLUMNS]))
    scorer.use_tabular_only(False)
    assert scorer.score(symbol, values).tower == "fused"  # type: ignore[union-attr]


def test_a_champion_that_has_not_passed_the_gate_serves_signals_marked_not_tradeable(tmp_path: Path) -> None:
    settings = build_ready_home(tmp_path / "home")  # its champion carries no `tradeable` tag: never gated
    client = TestClient(create_app(settings, now=lambda: NOW))

    signal = client.get("/signal", params={"symbol": "BTC/USDT"})
    health = client.get("/health").json()

    assert signal.status_code == 200, signal.text
    assert signal.json()["tradeable"] is False and signal.json()["tower"] == "tabular"
    assert health["champion_tradeable"] is False and health["champion_tower"] == "tabular"

    registry = MlflowRegistry(settings.mlflow_tracking_uri, None, settings.model.name)
    registry.record_tradeable("1", True)  # what a full-gate promotion records
    fresh = TestClient(create_app(settings, now=lambda: NOW + timedelta(seconds=1)))
    assert fresh.get("/signal", params={"symbol": "BTC/USDT"}).json()["tradeable"] is True
    assert fresh.get("/health").json()["champion_tradeable"] is True
