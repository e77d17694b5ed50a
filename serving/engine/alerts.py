"""Alert delivery to the configured webhook (best effort, off the engine's thread)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

import httpx

log = logging.getLogger("alphatide.engine")


def post_alert(url: str, payload: dict[str, str]) -> None:
    """Best effort: an alert sink that is down must not stop trading (the alert is in the store anyway)."""
    try:
        httpx.post(url, json=payload, timeout=5.0)
    except httpx.HTTPError as exc:
        log.error("alert webhook failed: %s", type(exc).__name__)


def post_alert_async(url: str, now: datetime, kind: str, message: str, mode: str) -> None:
    payload = {"ts": now.isoformat(), "kind": kind, "message": message, "mode": mode}
    threading.Thread(target=post_alert, args=(url, payload), daemon=True).start()
