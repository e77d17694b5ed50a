"""User-controlled input never gives a 500, and authentication comes before the body is read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from pipelines.config import Settings
from serving.app import create_app

pytestmark = pytest.mark.integration
KEY = "key-for-the-auth-tests-0123"


@pytest.fixture(scope="module")
def client(serving_home: Settings) -> Iterator[TestClient]:
    settings = serving_home.model_copy(
        update={"api_key": SecretStr(KEY), "engine": serving_home.engine.model_copy(update={"enabled": False})}
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def test_a_nan_in_the_kill_body_is_a_422_naming_the_field(client: TestClient) -> None:
    response = client.post(
        "/kill", content=b'{"reason": NaN}', headers={"X-API-Key": KEY, "Content-Type": "application/json"}
    )

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail[0]["loc"] == ["body", "reason"] and detail[0]["input"] == "NaN"


@pytest.mark.parametrize("body", [b'{"reason": Infinity}', b'{"reason": [1, -Infinity]}', b"{not json", b"[]"])
def test_other_bad_bodies_are_4xx_never_500(client: TestClient, body: bytes) -> None:
    response = client.post("/kill", content=body, headers={"X-API-Key": KEY, "Content-Type": "application/json"})

    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}])
def test_an_unauthenticated_broken_body_is_401_not_422(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/kill", content=b'{"reason": NaN', headers={**headers, "Content-Type": "application/json"})

    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "ApiKey"
    assert "X-API-Key" in response.json()["detail"]


def test_without_a_configured_key_control_endpoints_say_why_before_reading_the_body(serving_home: Settings) -> None:
    settings = serving_home.model_copy(update={"engine": serving_home.engine.model_copy(update={"enabled": False})})
    with TestClient(create_app(settings)) as no_key:
        response = no_key.post("/resume", content=b"garbage", headers={"Content-Type": "application/json"})

    assert response.status_code == 503 and "ALPHATIDE_API_KEY" in response.json()["detail"]


def test_read_only_requests_pass_the_guard(client: TestClient) -> None:
    assert client.get("/health").status_code == 200
