"""The replayed capture through the serving tier trades on paper: the stream runs on its own thread
(the API loop does no stream work), the engine on the replay's event time, and positions open and close.
"""

from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from bench.serving_home import rehome
from pipelines.config import Settings
from pipelines.domain.candles import normalize_candles
from pipelines.lake import Lake
from serving.app import create_app
from serving.engine import ReplayClock

pytestmark = [pytest.mark.integration, pytest.mark.realdata]


def _home(serving_home: Settings, tmp_path: Path, shared_data: Path) -> Settings:
    home = tmp_path / "home"
    shutil.copytree(serving_home.home, home)
    candles = pl.scan_parquet(shared_data / "binance_spot_candles" / "binance_spot_5m_2024H1.parquet")
    since = datetime(2024, 6, 1, tzinfo=UTC)
    candles = candles.filter(pl.col("symbol").is_in(["BTC/USDT", "ETH/USDT"]) & (pl.col("open_time") >= since))
    settings = rehome(serving_home, home)
    Lake(settings.lake_dir).write_candles(normalize_candles(candles.collect(), "open_time"), "binance", "5m")
    trading = settings.engine.trading
    # The bootstrap champion's p_up (~0.5) clears 0.2% round-trip fees only with a wide take-profit, and
    # the 11-minute capture holds a 2-minute time stop, not a 5-minute one (the README's demo settings).
    exits = trading.exits.model_copy(update={"take_profit": 0.02, "time_stop_seconds": 120.0})
    # Phase 1 (200 USDT) x Kelly 0.05 x confidence ~0.5 is ~5 USDT, the venue minimum itself: the demo lets
    # the small-account rule raise such entries to minimum + 10% rather than enter only when p_up > 0.5.
    sizing = trading.sizing.model_copy(update={"small_account_min_confidence": 0.5})
    # The regime switch reads the Hurst value of the symbol's latest intrabar signal, and at replay speed 0
    # which signal that is depends on how far the replay has got when the check runs: in loaded CI runs it
    # blocked ETH until the 00:05 bar, too late for the time stop before the capture ends (00:05:05). The
    # band is covered by its own scenario tests; here it is narrowed so that this test checks the path.
    kill = trading.kill.model_copy(update={"hurst_random_walk_low": 0.0, "hurst_random_walk_high": 1e-9})
    return rehome(
        settings,
        home,
        stream=settings.stream.model_copy(
            update={
                "source": "replay", "replay_capture_dir": shared_data / "binance_ticks" / "spot", "replay_speed": 0.0,
            }
        ),
        # The bootstrap champion of the sample is not tradeable (it has not passed the whole gate): the
        # demo trades it on paper through the operator's explicit override, as the README shows.
        engine=settings.engine.model_copy(
            update={
                "trading": trading.model_copy(update={"exits": exits, "sizing": sizing, "kill": kill}),
                "paper_trades_ungated_model": True,
            }
        ),
        serving=settings.serving.model_copy(update={"cache_refresh_s": 3600.0}),
    )


def test_a_replay_through_the_serving_tier_opens_and_closes_paper_positions_off_the_api_loop(
    serving_home: Settings, tmp_path: Path, shared_data: Path
) -> None:
    app = create_app(_home(serving_home, tmp_path, shared_data))
    event_threads: set[int] = set()

    with TestClient(app) as client:
        stream, engine = app.state.stream, app.state.trading_engine
        on_event = stream.pipeline.on_event

        def recording(event, received):  # type: ignore[no-untyped-def]
            event_threads.add(threading.get_ident())
            on_event(event, received)

        stream.pipeline.on_event = recording
        api_thread = client.portal.call(threading.get_ident)  # type: ignore[union-attr]
        deadline = time.monotonic() + 240
        exits: list[object] = []
        while not exits:
            assert time.monotonic() < deadline, f"no closed position; decisions: {engine.status().recent_decisions}"
            time.sleep(0.25)
            orders = engine.store.load_orders(limit=200)
            exits = [o for o in orders if o.purpose == "exit" and o.order.state.value == "filled"]
        orders = engine.store.load_orders(limit=200)
        signal = client.get("/signal", params={"symbol": "ETH/USDT"})

    entries = [o for o in orders if o.purpose == "entry" and o.order.state.value == "filled"]
    assert entries and exits
    assert all(o.order.created_at.year == 2024 for o in orders), "orders stamped with the replay's event time"
    assert isinstance(engine.clock, ReplayClock) and engine.clock().date() >= datetime(2024, 8, 8).date()
    assert event_threads == {stream.runner.ident}, "every market event ran on the stream's thread"
    assert api_thread != stream.runner.ident, "not on the API's event loop"
    assert signal.status_code == 200
