"""Alerts to Telegram (Bot API `sendMessage`) beside the webhook, and the WebSocket-down watch (SPEC 14).

Settings (pydantic-settings, frozen, extra="forbid", env prefix ALPHATIDE_; `AlertSettings`):

- ``ALPHATIDE_TELEGRAM__BOT_TOKEN`` (secret, no default: unset = Telegram off), ``..._CHAT_ID``;
- ``ALPHATIDE_TELEGRAM__API_URL`` (default https://api.telegram.org; tests point it at a local fake),
  ``..._KINDS`` (JSON list of alert kinds sent; a kind also matches ``kind:detail``, e.g.
  ``kill_switch`` matches ``kill_switch:drawdown``), ``..._MIN_INTERVAL_S`` (at most one message per
  interval), ``..._QUEUE_SIZE`` (alerts beyond it are dropped, never waited for), ``..._TIMEOUT_S``;
- ``ALPHATIDE_ALERTS__WEBSOCKET_DOWN_AFTER_S`` (30 s, SPEC 14) and ``..._CHECK_INTERVAL_S``.

`TelegramSender` is an alert sink of the engine (`engine.alert_sinks`): `__call__` only enqueues, a
daemon thread posts, paced by `min_interval_s` and by Telegram's `retry_after` on a 429. Trading never
waits for it. The token is part of the URL: it is never logged (errors are logged by type only).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.config import ENV_PREFIX
from serving.metrics import WEBSOCKET_CONNECTED

log = logging.getLogger("alphatide.alerts")

DEFAULT_KINDS = (
    "kill_switch",
    "manual_kill",
    "resume",
    "daily_pnl",
    "phase_change",
    "websocket_down",
    "websocket_up",
    "reconcile_mismatch",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TelegramConfig(_Frozen):
    bot_token: SecretStr | None = Field(None, description="Bot API token (secret; unset = Telegram off).")
    chat_id: str | None = Field(None, min_length=1, description="Chat, group or channel id the bot posts to.")
    api_url: str = Field("https://api.telegram.org", pattern=r"^https?://", description="Bot API base URL.")
    kinds: tuple[str, ...] = Field(DEFAULT_KINDS, description="Alert kinds sent to Telegram.")
    min_interval_s: float = Field(1.0, ge=0, le=60, description="At most one message per interval.")
    queue_size: int = Field(100, ge=1, le=10_000, description="Pending alerts beyond this are dropped.")
    timeout_s: float = Field(10.0, gt=0, le=60)

    @property
    def configured(self) -> bool:
        return self.bot_token is not None and bool(self.bot_token.get_secret_value()) and self.chat_id is not None


class AlertRules(_Frozen):
    websocket_down_after_s: float = Field(30.0, gt=0, description="Alert when a source is down this long.")
    check_interval_s: float = Field(1.0, gt=0, le=60, description="How often the WebSocket state is read.")


class AlertSettings(BaseSettings):
    """Telegram and alert-rule settings (read from the environment once, at startup)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, extra="forbid", case_sensitive=False
    )

    telegram: TelegramConfig = TelegramConfig()
    alerts: AlertRules = AlertRules()


def load_alert_settings(**overrides: Any) -> AlertSettings:
    return AlertSettings(**overrides)


def wanted(kinds: tuple[str, ...], kind: str) -> bool:
    return any(kind == k or kind.startswith(k + ":") for k in kinds)


def format_alert(now: datetime, kind: str, message: str, mode: str) -> str:
    return f"alphatide [{mode}] {kind}\n{message}\n{now.isoformat()}"


class TelegramSender:
    """An engine alert sink posting to the Telegram Bot API from its own thread (see the module doc)."""

    def __init__(self, cfg: TelegramConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if not cfg.configured:
            raise ValueError("Telegram needs ALPHATIDE_TELEGRAM__BOT_TOKEN and ALPHATIDE_TELEGRAM__CHAT_ID")
        self.cfg = cfg
        self._sleep = sleep
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=cfg.queue_size)
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(timeout=cfg.timeout_s)
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    @property
    def _url(self) -> str:
        assert self.cfg.bot_token is not None
        return f"{self.cfg.api_url.rstrip('/')}/bot{self.cfg.bot_token.get_secret_value()}/sendMessage"

    def __call__(self, now: datetime, kind: str, message: str, mode: str) -> None:
        """Enqueue one alert (never blocks; a full queue drops it)."""
        if not wanted(self.cfg.kinds, kind):
            return
        try:
            self._queue.put_nowait(format_alert(now, kind, message, mode))
        except queue.Full:
            self.dropped += 1
            log.error("telegram queue full: alert %s dropped", kind)

    def start(self) -> TelegramSender:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alphatide-telegram", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (up to `timeout_s`), then stop the thread."""
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=timeout_s)
            self._thread.join(timeout_s)
            self._thread = None
        self._client.close()

    def _run(self) -> None:
        last = float("-inf")
        while True:
            text = self._queue.get()
            if text is None:
                return
            wait = last + self.cfg.min_interval_s - time.monotonic()
            if wait > 0:
                self._sleep(wait)
            self._post(text)
            last = time.monotonic()

    def _post(self, text: str) -> None:
        payload = {"chat_id": self.cfg.chat_id, "text": text}
        for _attempt in range(2):  # one retry, after Telegram's retry_after on a 429
            try:
                response = self._client.post(self._url, json=payload)
            except httpx.HTTPError as exc:
                log.error("telegram sendMessage failed: %s", type(exc).__name__)
                break
            if response.status_code == 429:
                self._sleep(min(float(_retry_after(response)), 60.0))
                continue
            if response.is_success:
                self.sent += 1
                return
            log.error("telegram sendMessage answered %s", response.status_code)
            break
        self.failed += 1


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.json().get("parameters", {}).get("retry_after", 1))
    except (ValueError, AttributeError):
        return 1.0


class WebSocketWatch:
    """Alerts `websocket_down` when a source's WebSocket gauge stays 0 past the limit, `websocket_up` after."""

    def __init__(
        self,
        alert: Callable[[str, str], None],
        rules: AlertRules,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.alert, self.rules, self.clock = alert, rules, clock
        self._down_since: dict[str, float] = {}
        self._alerted: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        now = self.clock()
        for source, connected in _connection_states().items():
            if connected:
                self._down_since.pop(source, None)
                if source in self._alerted:
                    self._alerted.discard(source)
                    self.alert("websocket_up", f"{source}: market-data WebSocket connected again")
                continue
            since = self._down_since.setdefault(source, now)
            if now - since >= self.rules.websocket_down_after_s and source not in self._alerted:
                self._alerted.add(source)
                self.alert("websocket_down", f"{source}: market-data WebSocket down for {now - since:.0f} s")

    def start(self) -> WebSocketWatch:
        def loop() -> None:
            while not self._stop.wait(self.rules.check_interval_s):
                self.check()

        self._thread = threading.Thread(target=loop, name="alphatide-ws-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None


def _connection_states() -> dict[str, bool]:
    """source -> connected, from `alphatide_websocket_connected` (serving.metrics)."""
    out = {}
    for family in WEBSOCKET_CONNECTED.collect():
        for s in family.samples:
            out[s.labels["source"]] = s.value >= 1
    return out
