"""Health-driven switches fired through the real measurement path (not by handing the engine a HealthEvent):
a slow model trips degrade, badly calibrated resolved signals trip a retrain against a local fake of
Airflow's REST API, a forced RSS limit sheds the feature cache."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from pipelines.online_store import OnlineFeatures
from serving.engine.config import AirflowConfig, HealthConfig
from serving.engine.events import SignalEvent, TradeEvent
from serving.feature_cache import LatestFeatures
from serving.health import HealthMonitor, HealthTee, LiveCalibration, ScoringMode, timed_predict
from tests.serving.engine import conftest as engine_fixtures
from tests.serving.engine.conftest import Harness, graduated

market_venue = engine_fixtures.market_venue
paper = engine_fixtures.paper


class Model:
    """A predict_proba model that takes `delay_s` per call; `tabular` is its fast tower."""

    def __init__(self, p: float, delay_s: float = 0.0, tabular: Model | None = None) -> None:
        self.p, self.delay_s = p, delay_s
        if tabular is not None:
            self.tabular = tabular

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        if self.delay_s:
            time.sleep(self.delay_s)
        return np.array([[1 - self.p, self.p]] * len(rows))


def test_a_slow_model_trips_degrade_until_p99_recovers(paper: Callable[..., Harness]) -> None:
    # Arrange
    h = paper(graduated())
    mode = ScoringMode()
    monitor = HealthMonitor(h.engine, HealthConfig(), AirflowConfig(), mode=mode)
    slow = Model(0.7, delay_s=0.02, tabular=Model(0.6))

    # Act: scoring is slow, the monitor measures, the engine's sweep evaluates and acts.
    for _ in range(20):
        assert timed_predict(slow, [1.0], mode) == pytest.approx(0.7)
    event = monitor.run_once()
    h.advance(5)

    # Assert: degraded to the tabular tower; it recovers once p99 is back under the limit.
    assert event.inference_p99_ms is not None and event.inference_p99_ms > 10
    assert mode.degraded is True
    assert timed_predict(slow, [1.0], mode) == pytest.approx(0.6)
    for _ in range(20):
        timed_predict(slow, [1.0], mode)
    monitor.run_once()
    assert mode.degraded is False


class FakeAirflow:
    """Airflow 3's token and dagRuns endpoints on 127.0.0.1."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self.tokens = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/auth/token":
                    if body != {"username": "admin", "password": "pw"}:
                        return self._reply(401, {"detail": "invalid credentials"})
                    fake.tokens += 1
                    return self._reply(201, {"access_token": "tok123", "token_type": "bearer"})
                if self.path == "/api/v2/dags/alphatide_train/dagRuns":
                    if self.headers.get("Authorization") != "Bearer tok123":
                        return self._reply(401, {"detail": "not authenticated"})
                    fake.runs.append(body)
                    return self._reply(200, {"dag_run_id": f"manual__{len(fake.runs)}", "state": "queued"})
                return self._reply(404, {"detail": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def airflow() -> Iterator[FakeAirflow]:
    fake = FakeAirflow()
    yield fake
    fake.close()


def feed_overconfident_signals(h: Harness, tee: HealthTee, n: int = 40) -> None:
    """Signals of p_up 0.9 while the price falls, one per horizon (60 s): every one resolves down."""
    price = Decimal(100)
    for _ in range(n):
        tee.submit(TradeEvent("BTC/USDT", price, Decimal(1), h.clock.now))
        tee.submit(SignalEvent("BTC/USDT", 0.9, h.clock.now))
        h.clock.advance(60)
        price -= Decimal("0.1")
    tee.submit(TradeEvent("BTC/USDT", price, Decimal(1), h.clock.now + timedelta(seconds=60)))


def test_badly_calibrated_resolved_signals_start_the_train_dag(
    paper: Callable[..., Harness], airflow: FakeAirflow
) -> None:
    # Arrange
    h = paper(graduated())
    cfg = AirflowConfig(url=airflow.url, username="admin", password=SecretStr("pw"))
    monitor = HealthMonitor(h.engine, HealthConfig(horizon_s=60, calibration_min_resolved=30), cfg)
    tee = HealthTee(h.engine, monitor)
    feed_overconfident_signals(h, tee)

    # Act
    event = monitor.run_once()
    h.advance(5)  # the sweep evaluates the switches: retrain
    deadline = time.monotonic() + 20
    while not airflow.runs and time.monotonic() < deadline:
        time.sleep(0.02)

    # Assert
    assert monitor.calibration.resolved >= 30
    assert event.calibration_error is not None and event.calibration_error > 0.15
    [run] = airflow.runs
    assert "logical_date" in run and run["logical_date"] is None and "calibration" in run["conf"]["reason"]
    h.advance(5)  # still miscalibrated: the cooldown keeps it to one run
    time.sleep(0.2)
    assert len(airflow.runs) == 1


def test_a_retrain_without_airflow_settings_is_alerted_as_not_configured(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    monitor = HealthMonitor(h.engine, HealthConfig(horizon_s=60, calibration_min_resolved=30), AirflowConfig())
    feed_overconfident_signals(h, HealthTee(h.engine, monitor))
    monitor.run_once()
    h.advance(5)
    assert monitor.retrains == ["not configured"]
    assert any(a.kind == "retrain_not_configured" for a in h.store.alerts())


def test_a_forced_rss_limit_sheds_the_feature_cache(paper: Callable[..., Harness]) -> None:
    # Arrange: a real cache holding a row, and a memory limit this process is certainly above.
    h = paper(graduated(memory_limit_bytes=1024 * 1024))
    cache = LatestFeatures(reader=None)  # type: ignore[arg-type]  # rows come from the stream (put)
    cache.put(OnlineFeatures("BTC/USDT", {"rsi_14": 55.0}, h.clock.now))
    monitor = HealthMonitor(h.engine, HealthConfig(), AirflowConfig(), clear_caches=cache.clear)

    # Act
    event = monitor.run_once()
    h.advance(5)

    # Assert
    assert event.memory_bytes is not None and event.memory_bytes > 1024 * 1024
    assert monitor.sheds >= 1 and len(cache) == 0
    cache.close()


def test_the_memory_switch_reads_anonymous_memory_not_the_libraries_code_pages(
    paper: Callable[..., Harness],
) -> None:
    # Arrange: a limit between this process's anonymous memory and its whole RSS (the libraries mapped
    # from disk make up the difference), and a cache holding a row.
    from serving.health import anon_rss_bytes, rss_bytes

    anon, total = anon_rss_bytes(), rss_bytes()
    assert 0 < anon < total
    h = paper(graduated(memory_limit_bytes=anon + (total - anon) // 2))
    cache = LatestFeatures(reader=None)  # type: ignore[arg-type]  # rows come from the stream (put)
    cache.put(OnlineFeatures("BTC/USDT", {"rsi_14": 55.0}, h.clock.now))
    monitor = HealthMonitor(h.engine, HealthConfig(), AirflowConfig(), clear_caches=cache.clear)

    # Act
    event = monitor.run_once()
    h.advance(5)

    # Assert: nothing shed while only the code pages are over the limit (a total-RSS switch sheds here).
    assert event.memory_bytes is not None and event.memory_bytes < total
    assert monitor.sheds == 0 and len(cache) == 1
    cache.close()


def test_stream_drift_flags_rows_from_another_distribution() -> None:
    import polars as pl

    from serving.health import StreamDrift

    rng = np.random.default_rng(3)
    reference = pl.DataFrame({"rsi_14": rng.normal(50, 10, 2000), "roc_1": rng.normal(0, 0.01, 2000)})
    cfg = HealthConfig(drift_min_rows=100, drift_window=200, drift_every_s=1.0)
    same = StreamDrift(cfg, reference, ["rsi_14", "roc_1", "missing"], p_value=0.01)
    moved = StreamDrift(cfg, reference, ["rsi_14", "roc_1"], p_value=0.01)
    for i in range(200):
        same.observe({"rsi_14": float(rng.normal(50, 10)), "roc_1": float(rng.normal(0, 0.01))})
        moved.observe({"rsi_14": float(rng.normal(70, 10)), "roc_1": None if i % 2 else float(rng.normal(0, 0.01))})
    p_same, p_moved = same.p_value(0.0), moved.p_value(0.0)
    assert p_same is not None and p_same > 0.01
    assert p_moved is not None and p_moved < 1e-6


def test_a_per_tick_signal_stream_is_resolved_once_per_symbol_per_horizon() -> None:
    # Arrange: signals every second for 20 minutes on a steady climb, each with p_up 0.2 (badly wrong);
    # with every tick counted, 1,000+ resolutions of a handful of 5-minute moves would read as ECE 0.8.
    calibration = LiveCalibration(HealthConfig(horizon_s=300, calibration_min_resolved=5))
    start = datetime(2024, 8, 9, tzinfo=UTC)

    # Act
    for second in range(20 * 60 + 301):
        ts = start + timedelta(seconds=second)
        calibration.observe_price("ETH/USDT", ts, 2_600.0 + second * 0.01)
        calibration.observe_signal("ETH/USDT", ts, 0.2)

    # Assert: taken at t = 0, 300, ..., 1500 s; the prices run to 1,500 s, so the first five are resolved
    assert calibration.resolved == 5
    assert calibration.error() == pytest.approx(0.8)


@given(offsets=st.lists(st.floats(min_value=0.0, max_value=3_600.0), min_size=1, max_size=300))
def test_resolved_signals_never_exceed_one_per_symbol_per_horizon(offsets: list[float]) -> None:
    calibration = LiveCalibration(HealthConfig(horizon_s=300, calibration_window=1_000))
    start = datetime(2024, 8, 9, tzinfo=UTC)
    for i, offset in enumerate(sorted(offsets)):
        ts = start + timedelta(seconds=offset)
        calibration.observe_price("BTC/USDT", ts, 60_000.0 + (i % 7))
        calibration.observe_signal("BTC/USDT", ts, 0.5)
    calibration.observe_price("BTC/USDT", start + timedelta(seconds=7_200), 1.0)  # resolves everything taken
    assert calibration.resolved <= 3_600 // 300 + 1
