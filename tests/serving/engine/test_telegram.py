"""Telegram alerts: the real httpx client against a local fake of the Bot API; the WebSocket-down watch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipelines.config import EngineConfig, load_settings
from serving.app import create_app
from serving.auth import API_KEY_HEADER
from serving.engine.telegram import AlertRules, TelegramConfig, TelegramSender, WebSocketWatch, load_alert_settings
from serving.metrics import WEBSOCKET_CONNECTED
from tests.fakes.telegram_bot import FakeTelegramBot
from tests.fakes.trading_venue import FakeTradingVenue
from tests.serving.engine.conftest import Harness

TOKEN = "123456:test-token"
NOW = datetime(2026, 3, 2, 10, tzinfo=UTC)


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def config(bot: FakeTelegramBot, **extra: object) -> TelegramConfig:
    return TelegramConfig(bot_token=TOKEN, chat_id="-10042", api_url=bot.base_url, min_interval_s=0, **extra)


def test_sends_the_wanted_kinds_to_the_chat_and_skips_the_rest() -> None:
    with FakeTelegramBot(TOKEN) as bot:
        sender = TelegramSender(config(bot)).start()
        sender(NOW, "kill_switch:drawdown", "drawdown 16% > 15%", "paper")
        sender(NOW, "hedge_late_fill", "not for the phone", "paper")
        sender(NOW, "daily_pnl", "2026-03-02: PnL 12.5 USDT", "paper")
        sender.stop()

    assert [m["chat_id"] for m in bot.messages] == ["-10042", "-10042"]
    assert "kill_switch:drawdown" in bot.messages[0]["text"] and "drawdown 16%" in bot.messages[0]["text"]
    assert "daily_pnl" in bot.messages[1]["text"] and sender.sent == 2 and sender.failed == 0


def test_messages_are_paced_by_the_minimum_interval() -> None:
    with FakeTelegramBot(TOKEN) as bot:
        sender = TelegramSender(config(bot).model_copy(update={"min_interval_s": 0.2})).start()
        for i in range(3):
            sender(NOW, "phase_change", f"phase {i}", "paper")
        sender.stop()

    gaps = [b - a for a, b in zip(bot.arrivals, bot.arrivals[1:], strict=False)]
    assert len(bot.messages) == 3 and all(gap >= 0.18 for gap in gaps)


def test_a_429_is_retried_after_telegrams_retry_after() -> None:
    slept: list[float] = []
    with FakeTelegramBot(TOKEN, throttle=1, retry_after=3) as bot:
        sender = TelegramSender(config(bot), sleep=slept.append).start()
        sender(NOW, "manual_kill", "stop", "live")
        sender.stop()

    assert slept == [3.0] and len(bot.messages) == 1 and bot.requests == 2


def test_a_wrong_token_or_a_dead_api_counts_as_failed_and_never_raises() -> None:
    with FakeTelegramBot("other:token") as bot:
        sender = TelegramSender(config(bot)).start()
        sender(NOW, "manual_kill", "stop", "live")
        sender.stop()
    dead = TelegramSender(config(bot)).start()  # the fake is closed now: connection refused
    dead(NOW, "manual_kill", "stop", "live")
    dead.stop()

    assert sender.failed == 1 and bot.messages == [] and dead.failed == 1


def test_a_full_queue_drops_instead_of_blocking() -> None:
    with FakeTelegramBot(TOKEN) as bot:
        sender = TelegramSender(config(bot, queue_size=2))  # not started: nothing drains the queue
        for _ in range(5):
            sender(NOW, "daily_pnl", "x", "paper")
        assert sender.dropped == 3
        sender.start().stop()
    assert len(bot.messages) == 2


def test_the_engine_alert_returns_while_telegram_is_still_answering(paper: Callable[..., Harness]) -> None:
    gate = threading.Event()

    class SlowBot(FakeTelegramBot):
        def handle(self, path: str, body: dict) -> tuple[int, dict]:  # type: ignore[type-arg]
            gate.wait(10)
            return super().handle(path, body)

    h = paper()
    with SlowBot(TOKEN) as bot:
        sender = TelegramSender(config(bot)).start()
        h.engine.alert_sinks.append(sender)
        h.engine.kill("operator stop")  # alerts manual_kill: the venue of alerts is still holding the request
        assert bot.messages == [] and h.engine.status().manual_kill
        gate.set()
        wait_for(lambda: len(bot.messages) == 2)  # manual_kill, then the risk verdict's kill_switch:manual
        sender.stop()
    assert "manual_kill" in bot.messages[0]["text"] and "operator stop" in bot.messages[0]["text"]
    assert "kill_switch:manual" in bot.messages[1]["text"]


def test_settings_come_from_the_environment_with_the_token_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHATIDE_TELEGRAM__BOT_TOKEN", TOKEN)
    monkeypatch.setenv("ALPHATIDE_TELEGRAM__CHAT_ID", "-10042")
    monkeypatch.setenv("ALPHATIDE_TELEGRAM__KINDS", '["kill_switch"]')
    monkeypatch.setenv("ALPHATIDE_ALERTS__WEBSOCKET_DOWN_AFTER_S", "45")

    cfg = load_alert_settings()

    assert cfg.telegram.configured and cfg.telegram.kinds == ("kill_switch",)
    assert cfg.alerts.websocket_down_after_s == 45
    assert TOKEN not in repr(cfg) and TOKEN not in str(cfg.model_dump())
    assert not TelegramConfig().configured  # no default token: Telegram is off until configured


def test_websocket_down_past_the_limit_alerts_once_and_recovery_alerts_up() -> None:
    clock = [100.0]
    alerts: list[tuple[str, str]] = []
    watch = WebSocketWatch(lambda kind, msg: alerts.append((kind, msg)), AlertRules(), clock=lambda: clock[0])
    WEBSOCKET_CONNECTED.labels(source="test-watch").set(0)
    try:
        for t in (100.0, 129.0):
            clock[0] = t
            watch.check()
        assert [k for k, _ in alerts if "test-watch" in _] == []
        for t in (130.5, 140.0):
            clock[0] = t
            watch.check()
        WEBSOCKET_CONNECTED.labels(source="test-watch").set(1)
        watch.check()
    finally:
        WEBSOCKET_CONNECTED.remove("test-watch")

    mine = [(k, m) for k, m in alerts if "test-watch" in m]
    assert [k for k, _ in mine] == ["websocket_down", "websocket_up"] and "30 s" in mine[0][1]


def test_the_serving_app_sends_a_kill_to_telegram(
    tmp_path: Path, market_venue: FakeTradingVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeTelegramBot(TOKEN) as bot:
        monkeypatch.setenv("ALPHATIDE_TELEGRAM__BOT_TOKEN", TOKEN)
        monkeypatch.setenv("ALPHATIDE_TELEGRAM__CHAT_ID", "7")
        monkeypatch.setenv("ALPHATIDE_TELEGRAM__API_URL", bot.base_url)
        settings = load_settings(
            {}, home=tmp_path, api_key="k3y", engine=EngineConfig(api_url=market_venue.base_url)
        )
        with TestClient(create_app(settings)) as client:
            assert client.post("/kill", headers={API_KEY_HEADER: "k3y"}).status_code == 200
            wait_for(lambda: len(bot.messages) >= 1)
    assert bot.messages[0]["chat_id"] == "7" and "manual_kill" in bot.messages[0]["text"]


def test_the_main_settings_accept_the_telegram_and_alerts_variables(tmp_path: Path) -> None:
    env = {"ALPHATIDE_TELEGRAM__CHAT_ID": "7", "ALPHATIDE_ALERTS__WEBSOCKET_DOWN_AFTER_S": "30"}

    settings = load_settings(env, home=tmp_path)  # an unknown ALPHATIDE_* variable would raise ConfigError

    assert settings.home == tmp_path
