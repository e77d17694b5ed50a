"""The window model's signal in the stream: the SignalEvents it submits are the model's probabilities on
the rows `window_dataset` builds for the same bars and times (batch/serving parity), only at bar closes,
nothing without a champion, and a champion of other bars is refused where an operator sees it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from pipelines.config import Settings, load_settings
from pipelines.registry import serving_registry
from pipelines.window.dataset import WINDOW_FEATURES, window_dataset
from serving.app import create_app
from serving.engine.events import SignalEvent
from serving.stream.window_signal import WindowSignal
from tests.serving.stream.window_model import (
    FAST,
    WindowRegistry,
    feed,
    one_minute,
    pipeline,
    random_walk,
    trained_registry,
    warm,
)

pytestmark = pytest.mark.integration
SIGNAL = "btc-updown-5m"
START = datetime(2024, 3, 1, 5, 0, tzinfo=UTC)  # a window's open: live bars from here, warm bars before


class _Recorder:
    """The engine's input side (`EngineSink`): keeps what the stream submits."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def submit(self, event: Any) -> bool:
        self.events.append(event)
        return True

    def window_signals(self) -> list[SignalEvent]:
        return [e for e in self.events if isinstance(e, SignalEvent) and e.symbol == SIGNAL]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> WindowRegistry:
    return trained_registry(tmp_path_factory.mktemp("window_registry"))


def _settings(tmp_path: Path, **update: Any) -> Settings:
    return one_minute(load_settings({}, home=tmp_path), **update)


def test_signals_are_the_models_probabilities_on_the_window_dataset_rows(
    tmp_path: Path, registry: WindowRegistry
) -> None:
    # Arrange: 300 warm bars, then 30 live 1m bars (six windows) as trades.
    settings = _settings(tmp_path)
    candles = random_walk(START - timedelta(minutes=300), 330, seed=5)
    history, live = candles.filter(pl.col("ts") < START), candles.filter(pl.col("ts") >= START)
    window = WindowSignal(settings, registry=registry.reader())
    assert window.serve([SIGNAL])
    sink = _Recorder()
    pipe = pipeline(settings, window, sink)
    warm(pipe, history, START)
    rows: dict[datetime, dict[str, float | None]] = {}

    def capture(ts: datetime) -> None:
        if window.last is not None and window.last.ts == ts:
            rows[ts] = dict(window.last_row or {})

    # Act
    try:
        feed(pipe, live, after_bar=capture)
    finally:
        window.stop()

    # Assert: one signal per live bar close, at the bar boundary, with the champion's tradeable flag ...
    signals = sink.window_signals()
    champion = registry.reader().champion()
    assert champion is not None and champion.timeframe == "1m"
    assert [s.ts for s in signals] == [START + timedelta(minutes=m) for m in range(1, 31)]
    assert all(s.tradeable == champion.tradeable for s in signals)
    # ... whose p_up is the model's probability on window_dataset's row for the same bars and time (the
    # last one opens a window whose bars are not in the data yet: the dataset has no label, so no row)
    batch = window_dataset(candles, "1m").filter(pl.col("ts") > START).sort("ts")
    assert batch["ts"].to_list() == [s.ts for s in signals[:-1]]
    model = registry.reader().load_native(champion)
    expected = model.predict_proba(batch.select(champion.feature_columns).to_numpy().astype(np.float64))[:, 1]
    assert [s.p_up for s in signals[:-1]] == pytest.approx(expected.tolist(), rel=1e-9, abs=1e-12)
    for ts, batch_row in zip(batch["ts"], batch.select(WINDOW_FEATURES).iter_rows(named=True), strict=True):
        assert rows[ts] == pytest.approx(batch_row, rel=1e-9, abs=1e-12, nan_ok=True), ts
    # the window extras by the dataset's rules: 0 at the window open, seconds left / 300 at the boundary
    assert [rows[START + timedelta(minutes=m)]["time_decay"] for m in range(1, 11)] == pytest.approx(
        [0.8, 0.6, 0.4, 0.2, 1.0, 0.8, 0.6, 0.4, 0.2, 1.0]
    )
    opens = [ts for ts in rows if ts.timestamp() % 300 == 0]
    assert len(opens) == 6 and all(rows[ts]["price_vs_open"] == 0.0 and rows[ts]["time_decay"] == 1.0 for ts in opens)
    closes = {ts: c for ts, c in zip(live["ts"] + timedelta(minutes=1), live["close"], strict=True)}
    mid = START + timedelta(minutes=3)
    assert rows[mid]["price_vs_open"] == pytest.approx(closes[mid] / live["open"][0] - 1.0)
    status = window.status()
    assert status.state == "scoring" and status.signals == 30 and status.last_p_up == signals[-1].p_up


def test_no_signal_without_a_window_champion(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    empty = serving_registry(f"sqlite:///{tmp_path / 'none.db'}", tmp_path / "artifacts", FAST.name)
    window = WindowSignal(settings, registry=empty)
    window.serve([SIGNAL])
    sink = _Recorder()
    pipe = pipeline(settings, window, sink)
    candles = random_walk(START - timedelta(minutes=300), 310, seed=6)
    warm(pipe, candles.filter(pl.col("ts") < START), START)

    try:
        feed(pipe, candles.filter(pl.col("ts") >= START))
    finally:
        window.stop()

    assert not sink.window_signals()
    assert window.status().state == "no_champion" and "alphatide-window" in (window.status().reason or "")


def test_a_champion_of_other_bars_is_refused_and_health_says_why(tmp_path: Path, registry: WindowRegistry) -> None:
    # Arrange: the stream builds 5m bars; the champion was trained on 1m bars.
    settings = _settings(tmp_path, warm_bars=0)
    settings = settings.model_copy(update={"data": settings.data.model_copy(update={"timeframe": "5m"})})
    window = WindowSignal(settings, registry=registry.reader())
    window.serve([SIGNAL])
    sink = _Recorder()
    pipe = pipeline(settings, window, sink)

    # Act: 20 minutes of trades close three 5m bars of BTC/USDT.
    try:
        feed(pipe, random_walk(START, 20, seed=7))
        app = create_app(settings)
        app.state.window_signal = window  # what the serving lifespan publishes when the stream runs
        health = TestClient(app).get("/health").json()
    finally:
        window.stop()

    # Assert
    assert pipe.bars_closed >= 3 and not sink.window_signals()
    status = health["window_signal"]
    assert status["state"] == "refused" and status["model_version"] == "1"
    assert "trained on 1m bars" in status["reason"] and "5m" in status["reason"]
    assert health["status"] == "degraded" and any("trained on 1m bars" in p for p in health["problems"])


def test_nothing_is_scored_for_other_symbols_or_before_a_window_strategy(
    tmp_path: Path, registry: WindowRegistry
) -> None:
    settings = _settings(tmp_path, warm_bars=0)
    idle = WindowSignal(settings, registry=registry.reader())  # never served: no window strategy
    sink = _Recorder()
    pipe = pipeline(settings, idle, sink)

    feed(pipe, random_walk(START, 10, seed=8))

    assert pipe.bars_closed >= 9 and not sink.window_signals()
    assert idle.scorer is None and idle.status().state == "inactive"
