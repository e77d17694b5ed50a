"""Moving the `champion` alias swaps the served model atomically: no restart, no failed request."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from bench.serving_home import AS_OF, rehome, train_and_register
from pipelines.config import Settings
from pipelines.features import build_features
from pipelines.sources.synthetic import SyntheticSource
from serving.app import create_app
from tests.serving.helpers import serve_in_thread

pytestmark = pytest.mark.integration


def test_alias_move_swaps_the_model_under_concurrent_requests(serving_home: Settings, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(serving_home.home, home)
    settings = rehome(
        serving_home,
        home,
        engine=serving_home.engine.model_copy(update={"enabled": False}),
        serving=serving_home.serving.model_copy(update={"model_check_s": 0.2}),
    )
    source = SyntheticSource(as_of=AS_OF, days=5, n_symbols=3)
    candles = source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=5), AS_OF)
    features = build_features(candles)
    seen: list[list[tuple[int, str]]] = [[] for _ in range(4)]
    stop = threading.Event()

    def hammer(index: int, base_url: str) -> None:
        with httpx.Client(base_url=base_url, timeout=10) as client:
            while not stop.is_set():
                response = client.get("/signal", params={"symbol": "BTC/USDT"})
                seen[index].append((response.status_code, response.json().get("model_version", "")))

    with serve_in_thread(create_app(settings)) as base_url:
        threads = [threading.Thread(target=hammer, args=(i, base_url)) for i in range(4)]
        for thread in threads:
            thread.start()
        try:
            new_ref = train_and_register(settings, candles, features, iterations=30, seed=7)  # moves the alias
            requests_before_swap = [len(s) for s in seen]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not all(s and s[-1][1] == new_ref.version for s in seen):
                time.sleep(0.05)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)

    assert new_ref.version == "2"
    for per_client, before in zip(seen, requests_before_swap, strict=True):
        statuses = {status for status, _ in per_client}
        versions = [version for _, version in per_client]
        assert statuses == {200}, f"a request failed during the swap: {statuses}"
        assert len(per_client) > before, "requests kept flowing while the new model was loaded"
        assert versions[0] == "1" and versions[-1] == "2"
        switch = versions.index("2")
        assert set(versions[switch:]) == {"2"}, "once swapped, never the old model again"
