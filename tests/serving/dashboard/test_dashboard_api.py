"""The dashboard's JSON endpoints and static files over a real uvicorn server (no browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipelines.registry import MlflowRegistry, SqliteRegistryReader
from serving.api.dashboard import dashboard_router, equity_curve
from serving.api.models import history, sqlite_history
from tests.serving.dashboard.conftest import Served, record_round_trips

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_equity_curve_steps_by_each_round_trip_and_measures_drawdown_from_the_peak() -> None:
    trades = [(T0, Decimal("10"), "a"), (T0 + timedelta(minutes=1), Decimal("-22"), "b")]

    points = equity_curve(T0 + timedelta(hours=1), Decimal("1000"), Decimal("5"), trades)

    assert [p.equity for p in points] == [Decimal("1007"), Decimal("1017"), Decimal("995"), Decimal("1000")]
    assert points[0].drawdown == 0.0 and points[1].drawdown == 0.0
    assert points[2].drawdown == pytest.approx(-22 / 1017)
    assert points[3].drawdown == pytest.approx(-17 / 1017)
    assert [p.strategy_id for p in points] == ["", "a", "b", ""]


def test_no_round_trips_is_one_flat_segment_without_drawdown() -> None:
    points = equity_curve(T0, Decimal("500"), Decimal("0"), [])
    assert [(p.equity, p.drawdown) for p in points] == [(Decimal("500"), 0.0), (Decimal("500"), 0.0)]


def test_a_missing_registry_database_has_no_history(tmp_path: Path) -> None:
    assert sqlite_history(tmp_path / "absent.db", "m") == []


def test_dashboard_page_assets_equity_fills_and_models_are_served(served: Served) -> None:
    record_round_trips(served.app, ["12.5", "-4"])
    with httpx.Client(base_url=served.url, timeout=30) as client:
        page = client.get("/dashboard", follow_redirects=True)
        assets = [client.get(f"/dashboard/{name}") for name in ("app.js", "chart.js", "style.css")]
        equity = client.get("/trading/equity").json()
        fills = client.get("/trading/fills")
        champion = client.get("/models/champion").json()
        history = client.get("/models/history").json()

    assert page.status_code == 200 and '<canvas id="pup-chart"' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no asset from elsewhere
    assert all(a.status_code == 200 and len(a.content) > 100 for a in assets)
    steps = [Decimal(p["equity"]) for p in equity["points"]]
    assert len(steps) == 4 and steps[2] - steps[1] == Decimal("-4") and steps[1] - steps[0] == Decimal("12.5")
    assert equity["max_drawdown"] < 0
    assert fills.status_code == 200 and fills.json() == []  # no order was filled
    assert champion["registry"]["version"] == "1" and champion["served"]["version"] == "1"
    assert [v["version"] for v in history] == ["1"] and "champion" in history[0]["aliases"]
    assert history[0]["created_at"] is not None


def test_docs_and_redoc_name_only_local_assets(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        docs = client.get("/docs").text
        redoc = client.get("/redoc").text
        bundle = client.get("/docs-static/swagger-ui-bundle.js")

    assert "/docs-static/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert "/docs-static/redoc.standalone.js" in redoc and "fonts.googleapis" not in redoc
    assert bundle.status_code == 200 and len(bundle.content) > 500_000


def test_the_sdk_free_history_matches_what_mlflow_s_client_reports(served: Served) -> None:
    settings = served.settings
    sdk = MlflowRegistry(settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", settings.model.name)

    from_sdk = history(sdk)
    from_tables = history(served.app.state.deps.registry)

    assert isinstance(served.app.state.deps.registry, SqliteRegistryReader)
    assert from_tables == from_sdk and len(from_tables) >= 1


def test_without_an_engine_the_trading_endpoints_say_why_with_503() -> None:
    app = FastAPI()
    app.include_router(dashboard_router())
    app.state.trading_engine = None
    client = TestClient(app)

    for path in ("/trading/equity", "/trading/fills"):
        response = client.get(path)
        assert response.status_code == 503 and "not running" in response.json()["detail"]
