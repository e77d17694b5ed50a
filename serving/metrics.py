"""Prometheus metrics of the signal half of the serving tier (SPEC section 14).

All metrics live in prometheus_client's default registry, so whatever else the process registers there
(the trading engine's orders, PnL, exposure, ...) is exported by the same `GET /metrics`. Memory comes from
prometheus_client's process collector (`process_resident_memory_bytes`), registered by default on Linux.

Metrics are module-level singletons: a registry refuses two metrics of one name, and tests build many apps
in one process.
"""

from __future__ import annotations

import threading
from collections import deque

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

INFERENCE_LATENCY = Histogram(
    "alphatide_inference_latency_seconds",
    "Time to turn one feature row into p_up (a cache hit on the score memo included), seconds.",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
)
SIGNALS = Counter("alphatide_signals_total", "Signals served or published, by action.", ["action"])
MEAN_CONFIDENCE = Gauge(
    "alphatide_signal_confidence_mean", "Rolling mean of max(p_up, 1 - p_up) over the last signals."
)
WEBSOCKET_CONNECTED = Gauge(
    "alphatide_websocket_connected", "1 while the market-data WebSocket of a source is connected.", ["source"]
)
STREAM_EVENTS = Counter("alphatide_stream_events_total", "Market events received, by kind.", ["kind"])
STREAM_RECONNECTS = Counter("alphatide_stream_reconnects_total", "Market-data reconnects, by source.", ["source"])
STORE_ERRORS = Counter("alphatide_online_store_errors_total", "Failed online-store reads and pushes.", ["op"])
SIGNAL_CLIENTS = Gauge("alphatide_ws_signal_clients", "Clients connected to /ws/signals.")
SIGNAL_CLIENTS_DROPPED = Counter(
    "alphatide_ws_signal_clients_dropped_total", "Slow /ws/signals clients dropped instead of waited for."
)


class RollingConfidence:
    """Mean confidence over the last `window` signals, O(1) per signal; publishes to `MEAN_CONFIDENCE`."""

    def __init__(self, window: int):
        self._values: deque[float] = deque(maxlen=window)
        self._sum = 0.0
        self._lock = threading.Lock()

    def add(self, p_up: float) -> float:
        confidence = max(p_up, 1.0 - p_up)
        with self._lock:
            if len(self._values) == self._values.maxlen:
                self._sum -= self._values[0]
            self._values.append(confidence)
            self._sum += confidence
            mean = self._sum / len(self._values)
        MEAN_CONFIDENCE.set(mean)
        return mean


def exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of the default registry and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
