"""Redis (the online store) stopped mid-stream: /signal answers 503 `hold` with the reason, and the tier
recovers by itself once Redis is back. Runs its own redis-server on an ephemeral port (never the shared
one at 6379)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from bench.serving_home import AS_OF, rehome
from pipelines.config import Settings
from pipelines.feature_store import FeastStore
from pipelines.features import FEATURE_COLUMNS
from pipelines.lake import Lake
from serving.app import create_app

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """redis-server on 127.0.0.1:`port`, data in `folder` (only an explicit SAVE writes it)."""

    def __init__(self, folder: Path):
        self.port = _free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _poll(client: TestClient, want: int, timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get("/signal", params={"symbol": "BTC/USDT"})
        if response.status_code == want:
            return dict(response.json())
        assert time.monotonic() < deadline, f"/signal still {response.status_code}: {response.text}"
        time.sleep(0.05)


def test_redis_down_gives_503_hold_and_recovers(
    serving_home: Settings, tmp_path: Path, own_redis: RedisProcess
) -> None:
    home = tmp_path / "home"
    shutil.copytree(serving_home.home, home)
    settings = rehome(
        serving_home,
        home,
        online_store="redis",
        redis_url=SecretStr(f"redis://127.0.0.1:{own_redis.port}/0"),
        feast_project=f"outage_{own_redis.port}",
        engine=serving_home.engine.model_copy(update={"enabled": False}),
        serving=serving_home.serving.model_copy(update={"cache_refresh_s": 0.2}),
    )
    store = FeastStore(settings)
    store.apply(Lake(settings.lake_dir).features_path("5m"), FEATURE_COLUMNS)
    store.materialize(AS_OF - timedelta(days=1), AS_OF + timedelta(seconds=1))
    client = TestClient(create_app(settings))
    healthy = _poll(client, 200, 10)
    redis.Redis(port=own_redis.port).save()  # so the restarted server has the rows again

    own_redis.stop()
    down = _poll(client, 503, 10)  # the store's client gives up after one quick retry (about 0.2 s here)
    health = client.get("/health").json()
    other = client.get("/signal", params={"symbol": "ETH/USDT"})
    own_redis.start()
    recovered = _poll(client, 200, 10)

    assert healthy["action"] in {"buy", "sell", "hold"}
    assert down["action"] == "hold" and "online store unavailable" in str(down["reason"])
    assert health["status"] == "degraded" and health["online_store_error"]
    assert other.status_code == 503 and other.json()["action"] == "hold"
    assert recovered["feature_time"] == healthy["feature_time"] and recovered["p_up"] == healthy["p_up"]
