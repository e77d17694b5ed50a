"""/health is degraded when no trade or book update arrived within `realtime.health_max_data_age_s`;
a subscription ack is not data."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.serving_home import rehome
from pipelines.config import Settings
from serving.app import create_app
from serving.freshness import DataFreshness


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_fresh_while_data_arrives_then_degraded_after_silence() -> None:
    clock = _Clock()
    freshness = DataFreshness(max_age_s=30.0, clock=clock)

    clock.now += 10
    waiting = freshness.problem()  # within the allowance after the start
    clock.now += 25
    nothing_yet = freshness.problem()
    freshness.mark("book")
    clock.now += 29
    fresh = freshness.problem()
    clock.now += 2
    silent = freshness.problem()
    freshness.mark("trade")
    again = freshness.problem()

    assert waiting is None
    assert nothing_yet is not None and "no trade or book update" in nothing_yet
    assert fresh is None
    assert silent is not None and "31 s ago" in silent
    assert again is None
    assert freshness.ages_s() == {"trade": 0.0, "book": 31.0}


def _silent_capture(folder: Path) -> Path:
    """A venue that answers subscriptions and REST but never sends a trade or a book diff."""
    folder.mkdir()
    snapshot = '{"lastUpdateId":10,"bids":[["100.00","1.0"]],"asks":[["100.10","1.0"]]}'
    (folder / "btcusdt_20240808.txt").write_text(f"1723161253937085768 {snapshot}\n")
    return folder


@pytest.mark.integration
def test_health_is_degraded_when_the_stream_only_gets_subscription_acks(
    serving_home: Settings, tmp_path: Path
) -> None:
    settings = rehome(
        serving_home,
        serving_home.home,
        stream=serving_home.stream.model_copy(
            update={"source": "replay", "replay_capture_dir": _silent_capture(tmp_path / "capture")}
        ),
        engine=serving_home.engine.model_copy(update={"enabled": False}),
        realtime=serving_home.realtime.model_copy(update={"health_max_data_age_s": 0.5, "warm_bars": 0}),
    )
    app = create_app(settings)

    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while not app.state.stream.feed.connected["binance:book"]:  # the acks arrived
            assert time.monotonic() < deadline, "the feed never subscribed"
            time.sleep(0.05)
        time.sleep(0.6)
        health = client.get("/health").json()

    assert health["status"] == "degraded"
    assert any("no market data" in p for p in health["problems"]), health["problems"]
