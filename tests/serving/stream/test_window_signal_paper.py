"""End to end on paper: the stream's BTC/USDT trades -> the window model's signal -> the `window`
strategy on the paper polymarket venue (the fake Polymarket through the real ccxt client) enters, and
/ws/signals carries the signal as a `window` message.

The real serving app (engine, window feed, strategy feed) from the environment alone, as a user runs it;
the stream pipeline is built on the app's engine with the window signal activated the way the lifespan
does (`WindowSignal.activate(engine)`), and fed synthetic trades stamped up to the last minute boundary
(the stream itself would need Binance)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from pipelines.config import EngineConfig, load_settings
from pipelines.domain.candles import normalize_candles
from pipelines.domain.window_market import Outcome, outcome_handle, window_start_s
from serving.app import create_app
from serving.stream.window_signal import WindowSignal
from tests.fakes.polymarket_venue import FakePolymarketVenue
from tests.fakes.trading_venue import FakeTradingVenue
from tests.serving.stream.window_model import feed, one_minute, pipeline, random_walk, trained_registry, warm
from tests.serving.trading_app import market_venue, wait_for

__all__ = ["market_venue"]
pytestmark = pytest.mark.integration
W = 300


@pytest.fixture
def polymarket() -> Iterator[FakePolymarketVenue]:
    with FakePolymarketVenue(time.time, lambda t: 60_000.0) as venue:
        yield venue


def _wait_for_mid_window() -> None:
    """Until 65-240 s into a window: the last minute boundary is inside it, after its open, and the
    strategy still has time to enter (the test cannot choose the wall clock the engine runs on)."""
    while not 65 <= time.time() % W <= 240:
        time.sleep(1.0)


def _rising_window(start: datetime, previous_close: float, bars: int) -> pl.DataFrame:
    """`bars` 1m candles from `start`, each +0.2 % (a window well on its way Up)."""
    rows, close = [], previous_close
    for i in range(bars):
        o, close = close, close * 1.002
        rows.append(("BTC/USDT", start + timedelta(minutes=i), o, close * 1.0002, o * 0.9998, close, 8.0))
    return normalize_candles(
        pl.DataFrame(rows, schema=["symbol", "ts", "open", "high", "low", "close", "volume"], orient="row")
    )


def test_the_window_strategy_enters_on_the_streams_window_signal(
    tmp_path: Path, market_venue: FakeTradingVenue, polymarket: FakePolymarketVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a tradeable window champion (what a full-gate promotion records) on 1m bars ...
    registry = trained_registry(tmp_path / "registry")
    registry.writer.record_tradeable("1", True)
    # ... and the window strategy on the paper polymarket venue; the stream's last bar closes up to a
    # minute before the engine sees the signal, hence a signal age of 120 s for this test.
    strategy = {"id": "window-btc", "kind": "window", "venue": "polymarket", "allocation": "100",
                "params": {"trading": {"min_seconds_left": 5}, "max_signal_age_s": 120}}
    env = {
        "ALPHATIDE_STRATEGIES": json.dumps([strategy]),
        "ALPHATIDE_VENUES": json.dumps([{"name": "polymarket", "mode": "paper", "api_url": polymarket.base_url}]),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = one_minute(load_settings(dict(env), home=tmp_path / "home",
                                        engine=EngineConfig(api_url=market_venue.base_url, tick_interval_s=0.02)))
    _wait_for_mid_window()
    app = create_app(settings)

    with TestClient(app) as client, client.websocket_connect("/ws/signals") as ws:
        assert ws.receive_json()["type"] == "hello"
        engine = app.state.trading_engine
        now = datetime.now(UTC)
        start = window_start_s(now)
        up = outcome_handle(start, Outcome.UP)
        wait_for(lambda: ("polymarket", up) in engine.portfolio.books)  # the venue's book reached the engine
        window = WindowSignal(settings, registry=registry.reader())
        assert window.activate(engine)  # what the lifespan does once the engine runs a window strategy
        pipe = pipeline(settings, window, engine)
        opened = datetime.fromtimestamp(start, UTC)
        boundary = opened + timedelta(minutes=int((now - opened).total_seconds() // 60))
        before = random_walk(opened - timedelta(minutes=305), 305, seed=3)  # up to the window's open
        rising = _rising_window(opened, before["close"][-1], (boundary - opened) // timedelta(minutes=1))
        warm(pipe, before.head(300), opened - timedelta(minutes=5))

        # Act: the previous window and this one, as trades, up to the last minute boundary.
        try:
            feed(pipe, pl.concat([before.tail(5), rising]))
            wait_for(lambda: any(p.symbol == up for p in engine.portfolio.positions.values()))
            message = ws.receive_json()  # the strategy feed publishes the strategy's newest signal: the last
            while message["type"] != "window" or datetime.fromisoformat(message["signal_time"]) != boundary:
                message = ws.receive_json()
            status = client.get("/trading/status").json()
        finally:
            window.stop()

    # Assert: the signal at the boundary, from the champion, tradeable; the strategy bought Up at the ask.
    signal = window.last
    assert signal is not None and signal.ts == boundary and signal.tradeable and signal.p_up > 0.6
    position = next(p for p in engine.portfolio.positions.values() if p.symbol == up)
    assert position.entry_price == Decimal("0.52") and position.size > 0
    assert message["strategy_id"] == "window-btc" and message["symbol"] == "btc-updown-5m"
    assert message["p_up"] == pytest.approx(signal.p_up) and message["tradeable"] is True
    assert datetime.fromisoformat(message["signal_time"]) == boundary
    assert status is not None and not polymarket.orders  # paper: nothing was sent to the venue
