"""The trading router: open read-only endpoints, authenticated kill/resume (401/503/200), constant-time compare."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from serving import api_trading
from serving.api_trading import API_KEY_HEADER, trading_router
from tests.serving.engine import conftest as engine_fixtures
from tests.serving.engine.conftest import Harness

# The engine fixtures live beside the engine tests; registered here by name.
market_venue = engine_fixtures.market_venue
paper = engine_fixtures.paper

KEY = "s3cret-key-for-tests"


@pytest.fixture
def harness(paper: Callable[..., Harness]) -> Harness:
    return paper()


def _client(harness: Harness | None, api_key: SecretStr | None) -> TestClient:
    app = FastAPI()
    app.include_router(trading_router(api_key))
    app.state.trading_engine = harness.engine if harness is not None else None
    return TestClient(app)


@pytest.fixture
def client(harness: Harness) -> Iterator[TestClient]:
    yield _client(harness, SecretStr(KEY))


def test_kill_without_or_with_a_wrong_key_is_401(client: TestClient, harness: Harness) -> None:
    assert client.post("/kill").status_code == 401
    assert client.post("/kill", headers={API_KEY_HEADER: "wrong"}).status_code == 401
    assert client.post("/resume", headers={API_KEY_HEADER: KEY[:-1]}).status_code == 401
    assert harness.engine.manual_kill is False


def test_no_configured_key_refuses_with_503_and_a_reason(harness: Harness) -> None:
    client = _client(harness, None)
    response = client.post("/kill", headers={API_KEY_HEADER: "anything"})
    assert response.status_code == 503 and "ALPHATIDE_API_KEY" in response.json()["detail"]
    assert harness.engine.manual_kill is False


def test_kill_and_resume_with_the_key(client: TestClient, harness: Harness) -> None:
    response = client.post("/kill", headers={API_KEY_HEADER: KEY}, json={"reason": "operator on call"})
    assert response.status_code == 200
    body = response.json()
    assert body["manual_kill"] is True and body["entries_allowed"] is False and "manual" in body["active_switches"]
    harness.book("BTC/USDT", "100.00", "100.01")
    harness.signal("BTC/USDT")
    assert harness.orders() == []  # entries stopped at once

    response = client.post("/resume", headers={API_KEY_HEADER: KEY})
    assert response.status_code == 200 and response.json()["manual_kill"] is False
    assert any(a.kind == "manual_kill" and "operator on call" in a.message for a in harness.store.alerts())


def test_the_key_is_compared_in_constant_time(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = api_trading.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api_trading.hmac, "compare_digest", spy)
    client.post("/kill", headers={API_KEY_HEADER: "guess"})
    assert calls == [(b"guess", KEY.encode())]


def test_read_only_endpoints_are_open(client: TestClient, harness: Harness) -> None:
    harness.open_long("BTC/USDT")
    positions = client.get("/positions")
    assert positions.status_code == 200
    [pos] = positions.json()
    assert pos["symbol"] == "BTC/USDT" and Decimal(pos["size"]) == Decimal("0.08")
    orders = client.get("/orders", params={"limit": 5})
    assert orders.status_code == 200 and orders.json()[0]["state"] == "filled"
    assert client.get("/orders", params={"live_only": True}).json() == []
    status = client.get("/trading/status").json()
    assert status["mode"] == "paper" and status["open_positions"] == 1


def test_without_an_engine_every_endpoint_says_why(harness: Harness) -> None:
    client = _client(None, SecretStr(KEY))
    assert client.get("/positions").status_code == 503
    assert "not running" in client.get("/orders").json()["detail"]
    assert client.post("/kill", headers={API_KEY_HEADER: KEY}).status_code == 503


def test_openapi_documents_the_trading_endpoints(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path in ("/positions", "/orders", "/kill", "/resume", "/trading/status"):
        assert path in doc["paths"]
    assert doc["paths"]["/kill"]["post"]["security"] == [{"APIKeyHeader": []}]
    assert "PositionOut" in doc["components"]["schemas"]


def test_positions_orders_and_status_show_the_strategy(paper: Callable[..., Harness]) -> None:
    from serving.engine.config import StrategyEntry
    from tests.serving.engine.conftest import graduated

    two = (
        StrategyEntry(id="dir-a", kind="directional", allocation=Decimal(3000)),
        StrategyEntry(id="dir-b", kind="directional", allocation=Decimal(1000)),
    )
    h = paper(graduated(), strategies=two)
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    h.advance(0.1)
    h.trade("BTC/USDT", "99.95", "100")
    client = _client(h, SecretStr(KEY))

    positions = client.get("/positions").json()
    assert sorted((p["strategy_id"], p["size"]) for p in positions) == [("dir-a", "1.2"), ("dir-b", "0.4")]
    orders = client.get("/orders", params={"strategy": "dir-b"}).json()
    assert [o["strategy_id"] for o in orders] == ["dir-b"] and orders[0]["tag"] == "entry"
    status = client.get("/trading/status").json()
    assert {s["strategy_id"]: s["allocation"] for s in status["strategies"]} == {"dir-a": "3000", "dir-b": "1000"}
    assert any(d["strategy_id"] == "dir-b" for d in status["recent_decisions"])
