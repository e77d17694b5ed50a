"""Health inputs measured in the serving process, fed to the trading engine on a timer (SPEC 8, 10, 14).

Measured here (every `ALPHATIDE_HEALTH__INTERVAL_S`), sent as one `HealthEvent`:
- inference p99: from the `alphatide_inference_latency_seconds` histogram, over the observations since
  the previous measurement (bucket upper bound that covers 99% of them);
- resident memory: this process's RSS (/proc/self/statm);
- online-store errors: new failed reads/pushes (`alphatide_online_store_errors_total`), counted by the
  engine's store-errors switch;
- live calibration error: a signal at t is resolved at t + horizon against the realized direction
  (price at t + horizon above the price at t; unchanged prices are dropped, as the labels do); one
  signal per symbol per horizon is taken (non-overlapping windows, like the labels); the expected
  calibration error over the last `calibration_window` resolved signals;
- feature drift: KS test (pipelines.drift) of the stream's recent feature rows against the champion's
  training distribution (a reference frame the process is given), at most every `drift_every_s`;
- live vs simulated PnL: `pnl_source` (the shadow of `serving.shadow`: live fills against the simulated fills
  of the same orders, the strategy with the widest gap), else the day PnL against `simulated_pnl`.
The engine's kill switches turn them into actions; this module carries them out:
- retrain: starts the `alphatide_train` DAG through Airflow's REST API (POST /auth/token, then
  POST /api/v2/dags/{id}/dagRuns with "logical_date": null), at most once per cooldown; without an
  Airflow URL and credentials it is logged and alerted as not configured;
- degrade: scoring uses the tabular tower (`ScoringMode.select`) until p99 recovers;
- shed caches: the feature cache (and the score memos on its rows) is cleared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import httpx
import numpy as np
import polars as pl
from prometheus_client import Counter, Histogram

from pipelines.drift import feature_drift
from pipelines.metrics import expected_calibration_error
from pipelines.trading.killswitch import Action
from serving.engine.config import AirflowConfig, HealthConfig
from serving.engine.events import EngineEvent, HealthEvent, SignalEvent, TradeEvent
from serving.metrics import INFERENCE_LATENCY, STORE_ERRORS

log = logging.getLogger("alphatide.health")


# ---- measurements ---------------------------------------------------------------------------------
def _buckets(histogram: Histogram) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram without labels."""
    out = []
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                out.append((float(sample.labels["le"]), float(sample.value)))
    return sorted(out)


class WindowedP99:
    """p99 (ms) of the observations a histogram received since the previous call (None: none)."""

    def __init__(self, histogram: Histogram = INFERENCE_LATENCY) -> None:
        self._histogram = histogram
        self._last = _buckets(histogram)

    def __call__(self) -> float | None:
        now = _buckets(self._histogram)
        before = dict(self._last)
        self._last = now
        deltas = [(le, count - before.get(le, 0.0)) for le, count in now]
        total = deltas[-1][1] if deltas else 0.0
        if total <= 0:
            return None
        for le, cumulative in deltas:
            if cumulative >= 0.99 * total:
                return le * 1000.0 if le != float("inf") else float("inf")
        return None


def rss_bytes() -> int:
    """This process's resident set size."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import resource

    return pages * resource.getpagesize()


def anon_rss_bytes() -> int:
    """This process's resident anonymous memory (`RssAnon`: heap, arenas, stacks), in bytes: what the
    memory switch reads. Shedding caches frees anonymous memory only; the file-backed rest of the RSS is
    the libraries' code and data mapped from disk (about 150 MB in the serving process: polars,
    catboost, numpy, ...), which no cache shedding releases, so a switch on the total RSS would fire, shed
    and fire again every check for as long as the process runs. Falls back to the total RSS where
    /proc/self/status has no RssAnon line (kernels before 4.5)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024  # the kernel reports kB
    except OSError:
        pass
    return rss_bytes()


class CounterDelta:
    """New increments of a (labelled) counter since the previous call."""

    def __init__(self, counter: Counter = STORE_ERRORS) -> None:
        self._counter = counter
        self._last = self._total()

    def _total(self) -> float:
        return sum(s.value for m in self._counter.collect() for s in m.samples if s.name.endswith("_total"))

    def __call__(self) -> int:
        total = self._total()
        delta, self._last = total - self._last, total
        return int(max(delta, 0))


class LiveCalibration:
    """Calibration error of resolved signals (see the module docstring)."""

    def __init__(self, cfg: HealthConfig) -> None:
        self.cfg = cfg
        self._pending: dict[str, deque[tuple[datetime, float, float]]] = {}  # symbol -> (ts, p_up, price at ts)
        self._prices: dict[str, tuple[datetime, float]] = {}
        self._sampled: dict[str, datetime] = {}  # symbol -> time of its last signal taken for resolution
        self._resolved: deque[tuple[float, int]] = deque(maxlen=cfg.calibration_window)
        self._horizon = timedelta(seconds=cfg.horizon_s)
        self._lock = threading.Lock()

    def observe_signal(self, symbol: str, ts: datetime, p_up: float) -> None:
        """Take the signal for resolution if it is the symbol's first one `horizon_s` after the last taken.

        One signal per symbol per horizon (non-overlapping windows, as the labels: one row per bar): the
        stream scores every book update, and signals seconds apart resolve against nearly the same price
        move, so counting each would weigh one move hundreds of times and let a few minutes of trend
        read as a miscalibrated model (halving sizes and asking for a retrain).
        """
        with self._lock:
            last = self._prices.get(symbol)
            sampled = self._sampled.get(symbol)
            if last is None or (sampled is not None and ts < sampled + self._horizon):
                return
            self._sampled[symbol] = ts
            self._pending.setdefault(symbol, deque()).append((ts, p_up, last[1]))

    def observe_price(self, symbol: str, ts: datetime, price: float) -> None:
        with self._lock:
            self._prices[symbol] = (ts, price)
            pending = self._pending.get(symbol)
            while pending and pending[0][0] + self._horizon <= ts:
                _, p_up, start = pending.popleft()
                if price != start:  # an unchanged price is neither up nor down (dropped, as in labels)
                    self._resolved.append((p_up, int(price > start)))

    @property
    def resolved(self) -> int:
        return len(self._resolved)

    def accuracy(self) -> float | None:
        """Share of resolved signals whose direction (p_up > 0.5) came true (None before any resolved)."""
        with self._lock:
            if not self._resolved:
                return None
            return sum(int(p > 0.5) == y for p, y in self._resolved) / len(self._resolved)

    def error(self) -> float | None:
        with self._lock:
            if len(self._resolved) < self.cfg.calibration_min_resolved:
                return None
            p = np.array([r[0] for r in self._resolved])
            y = np.array([r[1] for r in self._resolved], dtype=float)
        return expected_calibration_error(y, p, self.cfg.calibration_bins)


class StreamDrift:
    """Smallest KS p-value of the stream's recent feature rows against a training reference frame."""

    def __init__(self, cfg: HealthConfig, reference: pl.DataFrame, columns: Sequence[str], p_value: float) -> None:
        self.cfg = cfg
        self.reference = reference
        self.columns = tuple(c for c in columns if c in reference.columns)
        self.p_threshold = p_value
        self._rows: deque[dict[str, float | None]] = deque(maxlen=cfg.drift_window)
        self._last_run: float | None = None
        self._last: float | None = None

    def observe(self, values: dict[str, Any]) -> None:
        self._rows.append({c: values.get(c) for c in self.columns})

    def p_value(self, now_s: float) -> float | None:
        if len(self._rows) < self.cfg.drift_min_rows or not self.columns:
            return None
        if self._last_run is not None and now_s - self._last_run < self.cfg.drift_every_s:
            return self._last
        self._last_run = now_s
        recent = pl.DataFrame(list(self._rows), schema={c: pl.Float64 for c in self.columns})
        report = feature_drift(self.reference, recent, self.columns, p_value=self.p_threshold)
        tested = [f.p_value for f in report.features if f.p_value is not None]
        self._last = min(tested) if tested else None
        return self._last


def lake_reference(path: Any, columns: Sequence[str], recent_days: float, max_rows: int) -> pl.DataFrame | None:
    """The training distribution: the lake's feature rows before the last `recent_days`, at most
    `max_rows` of the newest (read lazily: the full table does not fit the process's memory budget)."""
    from pathlib import Path

    if not Path(path).exists():
        return None
    scan = pl.scan_parquet(path)
    names = scan.collect_schema().names()
    wanted = [c for c in columns if c in names]
    if not wanted or "ts" not in names:
        return None
    newest = scan.select(pl.col("ts").max()).collect().item()
    if newest is None:
        return None
    cut = newest - timedelta(days=recent_days)
    return scan.filter(pl.col("ts") <= cut).sort("ts").tail(max_rows).select(wanted).collect()


# ---- actions --------------------------------------------------------------------------------------
class AirflowTrigger:
    """Starts a DAG run through Airflow 3's REST API (token from /auth/token)."""

    def __init__(self, cfg: AirflowConfig) -> None:
        self.cfg = cfg

    def trigger(self, reason: str) -> str:
        """Start `cfg.dag_id`; returns the new run's id. Raises httpx.HTTPError on failure."""
        assert self.cfg.url is not None and self.cfg.password is not None
        base = self.cfg.url.rstrip("/")
        with httpx.Client(timeout=self.cfg.timeout_s) as client:
            token = client.post(
                f"{base}/auth/token",
                json={"username": self.cfg.username, "password": self.cfg.password.get_secret_value()},
            )
            token.raise_for_status()
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            run = client.post(
                f"{base}/api/v2/dags/{self.cfg.dag_id}/dagRuns",
                json={"logical_date": None, "conf": {"reason": reason}, "note": f"alphatide health: {reason}"},
                headers=headers,
            )
            run.raise_for_status()
            return str(run.json().get("dag_run_id", ""))


class ScoringMode:
    """Full model or its tabular tower (degraded while inference is too slow).

    `listeners` are told every change of `degraded` (the serving tier wires the champion scorer's
    `use_tabular_only` here, so `/signal` and the stream fall back to the tabular tower together).
    """

    def __init__(self) -> None:
        self._degraded = False
        self.listeners: list[Callable[[bool], None]] = []

    @property
    def degraded(self) -> bool:
        return self._degraded

    @degraded.setter
    def degraded(self, flag: bool) -> None:
        self._degraded = flag
        for listener in self.listeners:
            listener(flag)

    def select(self, model: Any) -> Any:
        """The model to score with now: `model.tabular` when degraded and the model has one."""
        return getattr(model, "tabular", model) if self.degraded else model


class _Predictor(Protocol):
    def predict_proba(self, rows: np.ndarray) -> np.ndarray: ...


def timed_predict(model: _Predictor, values: list[float | None], mode: ScoringMode | None = None) -> float:
    """P(up) for one feature row, timed into the inference-latency histogram (what p99 is measured on)."""
    chosen = mode.select(model) if mode is not None else model
    row = np.array([[np.nan if v is None else v for v in values]], dtype=np.float64)
    started = time.perf_counter()
    p_up = float(chosen.predict_proba(row)[0, 1])
    INFERENCE_LATENCY.observe(time.perf_counter() - started)
    return p_up


class _Engine(Protocol):
    running: bool
    action_listeners: list[Callable[[Action, str], None]]

    def submit(self, event: EngineEvent) -> bool: ...

    def handle(self, event: EngineEvent) -> None: ...

    def alert(self, now: datetime, kind: str, message: str) -> None: ...

    def record_store_error(self, now: datetime, exc: Exception) -> None: ...

    def now(self) -> datetime: ...

    def day_pnl(self) -> Decimal: ...


class HealthMonitor:
    """Measures, feeds the engine, and carries out the engine's health actions (module docstring)."""

    def __init__(
        self,
        engine: _Engine,
        cfg: HealthConfig,
        airflow: AirflowConfig,
        *,
        clear_caches: Callable[[], object] = lambda: None,
        mode: ScoringMode | None = None,
        p99_limit_ms: float = 10.0,
        drift: StreamDrift | None = None,
        simulated_pnl: Callable[[], Decimal | None] | None = None,
        rss: Callable[[], int] = anon_rss_bytes,
    ) -> None:
        self.engine, self.cfg, self.airflow = engine, cfg, AirflowTrigger(airflow)
        self.calibration = LiveCalibration(cfg)
        self.drift, self.simulated_pnl, self.rss = drift, simulated_pnl, rss
        # (live, simulated) PnL of the same orders; wins over `simulated_pnl` (serving.shadow installs it)
        self.pnl_source: Callable[[], tuple[Decimal, Decimal] | None] | None = None
        self.mode = mode or ScoringMode()
        self.clear_caches = clear_caches
        self.recover_ms = cfg.recover_p99_ms or p99_limit_ms
        self._p99, self._store_errors = WindowedP99(), CounterDelta()
        self._last_retrain: float | None = None
        self.retrains: list[str] = []  # run ids started (or the reason it could not be)
        self.sheds = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        engine.action_listeners.append(self.on_action)

    # ---- inputs ---------------------------------------------------------------------------------
    def observe(self, event: EngineEvent) -> None:
        """What the stream sends the engine: signals to resolve, trades as prices."""
        if isinstance(event, SignalEvent):
            self.calibration.observe_signal(event.symbol, event.ts, event.p_up)
        elif isinstance(event, TradeEvent):
            self.calibration.observe_price(event.symbol, event.ts, float(event.price))

    def measure(self) -> HealthEvent:
        p99 = self._p99()
        if self.mode.degraded and p99 is not None and p99 <= self.recover_ms:
            self.mode.degraded = False
            log.warning("inference p99 %.2f ms <= %.2f ms: back to the full model", p99, self.recover_ms)
        errors = self._store_errors()
        now = self.engine.now()
        for _ in range(errors):
            self.engine.record_store_error(now, RuntimeError("online store error"))
        simulated = self.simulated_pnl() if self.simulated_pnl is not None else None
        live = self.engine.day_pnl() if simulated is not None else None
        pair = self.pnl_source() if self.pnl_source is not None else None
        if pair is not None:
            live, simulated = pair
        return HealthEvent(
            calibration_error=self.calibration.error(),
            drift_p_value=self.drift.p_value(time.monotonic()) if self.drift is not None else None,
            inference_p99_ms=p99,
            memory_bytes=self.rss(),
            live_pnl=live,
            simulated_pnl=simulated,
        )

    def run_once(self) -> HealthEvent:
        event = self.measure()
        if self.engine.running:
            self.engine.submit(event)
        else:
            self.engine.handle(event)
        return event

    def start(self) -> None:
        if self._thread is not None or not self.cfg.enabled:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.cfg.interval_s):
                try:
                    self.run_once()
                except Exception:
                    log.exception("health measurement failed")

        self._thread = threading.Thread(target=loop, name="alphatide-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    # ---- actions (called by the engine, under its lock: never block here) -----------------------
    def on_action(self, action: Action, reason: str) -> None:
        if action is Action.DEGRADE_TO_TABULAR and not self.mode.degraded:
            self.mode.degraded = True
            log.warning("degrading to the tabular tower: %s", reason)
        elif action is Action.SHED_CACHES:
            self.clear_caches()
            self.sheds += 1
            log.warning("caches shed: %s", reason)
        elif action is Action.RETRAIN:
            self._retrain(reason)

    def _retrain(self, reason: str) -> None:
        now = time.monotonic()
        if self._last_retrain is not None and now - self._last_retrain < self.cfg.retrain_cooldown_s:
            return
        self._last_retrain = now
        if not self.airflow.cfg.configured:
            self.retrains.append("not configured")
            self.engine.alert(
                self.engine.now(),
                "retrain_not_configured",
                f"retrain asked ({reason}) but no Airflow URL/credentials (ALPHATIDE_AIRFLOW__*)",
            )
            return
        threading.Thread(target=self._trigger, args=(reason,), name="alphatide-retrain", daemon=True).start()

    def _trigger(self, reason: str) -> None:
        try:
            run_id = self.airflow.trigger(reason)
            self.retrains.append(run_id)
            self.engine.alert(self.engine.now(), "retrain_started", f"{self.airflow.cfg.dag_id} run {run_id}: {reason}")
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            self.retrains.append(f"failed: {exc}")
            self.engine.alert(self.engine.now(), "retrain_failed", f"{type(exc).__name__}: {exc}")


class HealthTee:
    """The engine sink the stream writes to: every event goes to the engine and is observed here."""

    def __init__(self, engine: _Engine, monitor: HealthMonitor) -> None:
        self.engine, self.monitor = engine, monitor

    def submit(self, event: EngineEvent) -> bool:
        self.monitor.observe(event)
        return self.engine.submit(event)
