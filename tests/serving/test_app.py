"""/signal and /health against the real registry and feature store in a temporary home."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from fastapi.testclient import TestClient

from bench.serving_home import universe_frame
from pipelines.config import Settings, load_settings
from pipelines.feature_store import FeastStore, OnlineFeatures
from pipelines.features import FEATURE_COLUMNS
from pipelines.lake import Lake
from serving.app import create_app
from serving.feature_cache import LatestFeatures

pytestmark = pytest.mark.integration
AS_OF = datetime(2026, 8, 1, tzinfo=UTC)
NOW = AS_OF + timedelta(minutes=3)


def _universe(symbols: list[str]) -> pl.DataFrame:
    return universe_frame(symbols, AS_OF.date())


@pytest.fixture
def empty_home(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return load_settings({}, home=tmp_path)


@pytest.fixture(scope="module")
def ready_home(serving_home: Settings) -> Settings:
    return serving_home  # tests/serving/conftest.py: a champion and materialized features


def test_signal_for_a_universe_symbol(ready_home: Settings) -> None:
    client = TestClient(create_app(ready_home, now=lambda: NOW))
    response = client.get("/signal", params={"symbol": "BTC/USDT"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {
        "symbol",
        "p_up",
        "action",
        "model_name",
        "model_version",
        "feature_time",
        "served_at",
    }
    assert body["symbol"] == "BTC/USDT" and 0 < body["p_up"] < 1
    assert body["action"] in {"buy", "sell", "hold"}
    assert body["model_name"] == ready_home.model.name and body["model_version"] == "1"
    assert body["feature_time"] == "2026-08-01T00:00:00Z"
    assert body["served_at"].startswith("2026-08-01T00:03:00")


def test_symbol_outside_the_universe_is_404(ready_home: Settings) -> None:
    response = TestClient(create_app(ready_home)).get("/signal", params={"symbol": "DOGE/USDT"})
    assert response.status_code == 404 and "universe" in response.json()["detail"]


@pytest.mark.parametrize("symbol", ["btc/usdt", "BTCUSDT", "BTC/", "../etc", "B" * 30 + "/USDT"])
def test_malformed_symbol_is_422(ready_home: Settings, symbol: str) -> None:
    assert TestClient(create_app(ready_home)).get("/signal", params={"symbol": symbol}).status_code == 422


def test_universe_symbol_without_features_is_503(ready_home: Settings) -> None:
    response = TestClient(create_app(ready_home)).get("/signal", params={"symbol": "XRP/USDT"})
    assert response.status_code == 503 and "no features" in response.json()["detail"]


def test_no_champion_is_503_with_the_reason(empty_home: Settings) -> None:
    Lake(empty_home.lake_dir).write_universe(_universe(["BTC/USDT"]), date(2026, 8, 1))
    response = TestClient(create_app(empty_home)).get("/signal", params={"symbol": "BTC/USDT"})
    assert response.status_code == 503 and "no champion" in response.json()["detail"]


def test_no_universe_is_503(empty_home: Settings) -> None:
    response = TestClient(create_app(empty_home)).get("/signal", params={"symbol": "BTC/USDT"})
    assert response.status_code == 503 and "no universe" in response.json()["detail"]


def test_stale_features_give_hold_with_a_reason(ready_home: Settings) -> None:
    stale = ready_home.model_copy(
        update={"signal": ready_home.signal.model_copy(update={"max_feature_age_s": 60})}
    )
    body = TestClient(create_app(stale, now=lambda: NOW)).get("/signal", params={"symbol": "ETH/USDT"}).json()
    assert body["action"] == "hold" and "stale" in body["reason"]


def test_health_reports_champion_and_universe(ready_home: Settings, empty_home: Settings) -> None:
    ok = TestClient(create_app(ready_home)).get("/health").json()
    assert ok["status"] == "ok" and ok["champion_version"] == "1" and ok["universe_size"] == 4
    degraded = TestClient(create_app(empty_home)).get("/health").json()
    assert degraded["status"] == "degraded" and "no champion model" in degraded["problems"]


def test_a_row_the_stream_marks_untrusted_gives_hold_with_the_reason(ready_home: Settings) -> None:
    cache = LatestFeatures(FeastStore(ready_home))
    cache.put(OnlineFeatures("BTC/USDT", dict.fromkeys(FEATURE_COLUMNS, 0.0), NOW))
    cache.mark_stale("BTC/USDT", "no trusted order book right now")

    body = TestClient(create_app(ready_home, cache=cache)).get("/signal", params={"symbol": "BTC/USDT"}).json()

    assert body["action"] == "hold" and "no trusted order book" in body["reason"]
    assert body["feature_time"].startswith("2026-08-01T00:03:00")
    cache.close()
