"""Alert delivery to the configured webhook and to the engine's alert sinks (best effort, never blocking).

An alert sink (`AlertSink`, e.g. `serving.engine.telegram.TelegramSender`) is a callable
`(now, kind, message, mode)` in `engine.alert_sinks`; it must return at once (enqueue, send elsewhere).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

import httpx

log = logging.getLogger("alphatide.engine")

AlertSink = Callable[[datetime, str, str, str], None]


def dispatch(sinks: list[AlertSink], now: datetime, kind: str, message: str, mode: str) -> None:
    """Hand one alert to every sink; a failing sink is logged, never raised into the engine."""
    for sink in list(sinks):
        try:
            sink(now, kind, message, mode)
        except Exception:  # a sink's bug must not stop trading
            log.exception("alert sink %r failed", sink)


def post_alert(url: str, payload: dict[str, str]) -> None:
    """Best effort: an alert sink that is down must not stop trading (the alert is in the store anyway)."""
    try:
        httpx.post(url, json=payload, timeout=5.0)
    except httpx.HTTPError as exc:
        log.error("alert webhook failed: %s", type(exc).__name__)


def post_alert_async(url: str, now: datetime, kind: str, message: str, mode: str) -> None:
    payload = {"ts": now.isoformat(), "kind": kind, "message": message, "mode": mode}
    threading.Thread(target=post_alert, args=(url, payload), daemon=True).start()
