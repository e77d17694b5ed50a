"""The window signal in the real serving app: with the stream on (the replayed Binance capture) and a
window strategy configured, the lifespan builds and activates it; the stream's BTC/USDT bar closes are
scored by the `alphatide-window` champion, the strategy gets the signal and /ws/signals carries it as
a `window` message; /health and /metrics show it."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from bench.serving_home import rehome
from pipelines.config import Settings
from pipelines.registry import MlflowRegistry
from pipelines.window.train import train_window_model
from serving.app import create_app
from tests.serving.stream.window_model import FAST, random_walk

pytestmark = [pytest.mark.integration, pytest.mark.realdata]


def _home(serving_home: Settings, tmp_path: Path, shared_data: Path, window_timeframe: str | None) -> Settings:
    """A private copy of the session home streaming the capture; with `window_timeframe`, a window
    champion trained on synthetic bars of that timeframe in its registry."""
    home = tmp_path / "home"
    shutil.copytree(serving_home.home, home)
    settings = rehome(
        serving_home,
        home,
        stream=serving_home.stream.model_copy(
            update={"source": "replay", "replay_capture_dir": shared_data / "binance_ticks" / "spot",
                    "replay_speed": 0.0}
        ),
        serving=serving_home.serving.model_copy(update={"cache_refresh_s": 3600.0}),
    )
    if window_timeframe is not None:
        registry = MlflowRegistry(settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", FAST.name,
                                  experiment="alphatide-window")
        candles = random_walk(datetime(2024, 2, 1, tzinfo=UTC), 12 * 1440, seed=11)
        if window_timeframe == "5m":
            candles = candles.group_by_dynamic("ts", every="5m", group_by="symbol").agg(
                open=pl.col("open").first(), high=pl.col("high").max(),
                low=pl.col("low").min(), close=pl.col("close").last(),
                volume=pl.col("volume").sum(),
            )
        train_window_model(candles, window_timeframe, cfg=FAST, registry=registry)
    return settings


def _wait(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


STRATEGY = [{"id": "window-btc", "kind": "window", "allocation": "100", "params": {"venue": ""}}]


def test_the_lifespan_scores_the_window_champion_on_the_streams_bars(
    serving_home: Settings, tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHATIDE_STRATEGIES", json.dumps(STRATEGY))
    app = create_app(_home(serving_home, tmp_path, shared_data, "5m"))

    with TestClient(app) as client, client.websocket_connect("/ws/signals") as ws:
        window = app.state.window_signal
        assert window is not None and app.state.stream.pipeline.window is window
        _wait(lambda: window.signals >= 1, 60, "a window signal from the stream's BTC/USDT bars")
        strategy = app.state.trading_engine.strategies["window-btc"]
        _wait(lambda: strategy.signal is not None, 10, "the strategy to get the signal")
        message = ws.receive_json()
        while message["type"] != "window":
            message = ws.receive_json()
        health = client.get("/health").json()
        metrics = client.get("/metrics").text

    assert message["strategy_id"] == "window-btc" and message["symbol"] == "btc-updown-5m"
    assert 0 < message["p_up"] < 1 and message["seconds_left"] == 300  # 5m bars: scored at the window open
    assert health["window_signal"]["state"] == "scoring" and health["window_signal"]["model_version"] == "1"
    assert 'alphatide_window_signal_p_up{symbol="btc-updown-5m"}' in metrics


def test_a_window_strategy_without_a_window_champion_is_a_health_problem(
    serving_home: Settings, tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHATIDE_STRATEGIES", json.dumps(STRATEGY))
    app = create_app(_home(serving_home, tmp_path, shared_data, None))

    with TestClient(app) as client:
        _wait(lambda: app.state.stream.pipeline.bars_closed > 0, 60, "a bar close")
        health = client.get("/health").json()

    assert health["window_signal"]["state"] == "no_champion"
    assert any("no alphatide-window champion" in p for p in health["problems"])
