"""The whole real-time tier in one app: replayed Binance capture -> ccxt.pro -> incremental features ->
cache + Feast push -> champion -> /signal, /ws/signals, /hot, /metrics, and the paper trading engine.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.serving_home import rehome
from pipelines.config import Settings
from pipelines.feature_store import FeastStore
from serving.app import create_app

pytestmark = [pytest.mark.integration, pytest.mark.realdata]
FIRST_FULL_BAR_CLOSE = datetime(2024, 8, 9, 0, 0, tzinfo=UTC)  # the capture spans 23:54:15-00:05:05


def _copy_home(serving_home: Settings, tmp_path: Path, shared_data: Path, **stream: object) -> Settings:
    """A private copy of the session home (this test writes features), streaming the replayed capture."""
    home = tmp_path / "home"
    shutil.copytree(serving_home.home, home)
    return rehome(
        serving_home,
        home,
        stream=serving_home.stream.model_copy(
            update={
                "source": "replay",
                "replay_capture_dir": shared_data / "binance_ticks" / "spot",
                "replay_speed": 0.0,
                "signal_interval_s": 5.0,
                **stream,
            }
        ),
        serving=serving_home.serving.model_copy(update={"cache_refresh_s": 3600.0}),
    )


def _wait(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _wait_for_first_bar_close(app, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    _wait(
        lambda: (row := app.state.cache._rows.get("BTC/USDT")) is not None
        and row.from_stream
        and row.row.event_time >= FIRST_FULL_BAR_CLOSE,
        timeout_s,
        "the stream to close the 00:00 bar of BTC/USDT",
    )


def test_replayed_stream_feeds_signals_store_hot_score_and_paper_engine(
    serving_home: Settings, tmp_path: Path, shared_data: Path
) -> None:
    settings = _copy_home(serving_home, tmp_path, shared_data)
    app = create_app(settings)

    with TestClient(app) as client, client.websocket_connect("/ws/signals") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and "signal" in hello["message_types"]
        stream = app.state.stream
        _wait_for_first_bar_close(app, 60)
        _wait(lambda: stream.pipeline.pushes_pending == 0, 30, "the Feast push")

        signal = client.get("/signal", params={"symbol": "BTC/USDT"})
        message = ws.receive_json()
        while message["type"] != "signal":
            message = ws.receive_json()
        hot = client.get("/hot").json()
        metrics = client.get("/metrics").text
        health = client.get("/health").json()
        engine_status = app.state.trading_engine.status()

    assert signal.status_code == 200, signal.text
    assert datetime.fromisoformat(signal.json()["feature_time"]) >= FIRST_FULL_BAR_CLOSE
    stored = FeastStore(settings).latest("BTC/USDT", ("rsi_14", "spread_pct"))
    assert stored is not None and stored.event_time is not None and stored.event_time >= FIRST_FULL_BAR_CLOSE
    assert message["symbol"] in {"BTC/USDT", "ETH/USDT"} and 0 < message["p_up"] < 1
    assert message["trigger"] in {"bar_close", "intrabar"} and message["model_version"] == "1"
    assert {e["symbol"] for e in hot["top"]} == {"BTC/USDT", "ETH/USDT"} and hot["top"][0]["rank"] == 1
    assert 'alphatide_websocket_connected{source="binance:trades"} 1.0' in metrics
    assert "alphatide_inference_latency_seconds_bucket" in metrics and "process_resident_memory_bytes" in metrics
    assert health["stream_source"] == "replay" and health["stream_connected"]["binance:book"] is True
    assert engine_status.running and engine_status.dropped_events == 0
    assert stream.pipeline.signals > 0 and stream.pipeline.events > 1000


def test_a_paced_replay_runs_the_market_feed_in_its_own_process(
    serving_home: Settings, tmp_path: Path, shared_data: Path
) -> None:
    # Arrange: the venue replayed at 60x in its own process, as `make serve` runs it (at 1x)
    from serving.stream.feed_process import FeedProcess

    settings = _copy_home(serving_home, tmp_path, shared_data, replay_speed=60.0)
    app = create_app(settings)

    # Act
    with TestClient(app) as client:
        feed = app.state.stream.feed
        _wait_for_first_bar_close(app, 90)
        signal = client.get("/signal", params={"symbol": "BTC/USDT"})
        metrics = client.get("/metrics").text
        health = client.get("/health").json()
        feed_pid = feed.pid
        engine_status = app.state.trading_engine.status()

    # Assert
    assert isinstance(feed, FeedProcess) and feed_pid not in (None, os.getpid())
    assert signal.status_code == 200 and datetime.fromisoformat(signal.json()["feature_time"]) >= FIRST_FULL_BAR_CLOSE
    assert 'alphatide_websocket_connected{source="binance:book"} 1.0' in metrics
    assert health["stream_connected"] == {"binance:trades": True, "binance:book": True}
    assert engine_status.running and engine_status.dropped_events == 0
    with pytest.raises(ProcessLookupError):
        os.kill(feed_pid, 0)  # stopped with the app
