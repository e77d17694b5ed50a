"""/ws/signals carries the engine's strategies: market-maker `quote` and window-market `window` messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from serving.engine.events import SignalEvent
from serving.messages import MESSAGE_TYPES, QuoteMessage, WindowMessage
from tests.serving.trading_app import market_venue, traded, wait_for

__all__ = ["market_venue", "traded"]


def receive_until(ws: Any, wanted: str, limit: int = 200) -> dict[str, Any]:
    for _ in range(limit):
        message = json.loads(ws.receive_text())
        if message["type"] == wanted:
            return message
    raise AssertionError(f"no {wanted} message in {limit} frames")


def test_the_market_makers_quotes_arrive_as_quote_messages(traded: tuple[TestClient, Any]) -> None:
    client, engine = traded
    wait_for(lambda: bool(engine.strategy("mm-eth").snapshot()["quotes"]))

    with client.websocket_connect("/ws/signals") as ws:
        hello = json.loads(ws.receive_text())
        client.app.state.strategy_feed.reset()  # type: ignore[attr-defined]  # announce again for this client
        quote = QuoteMessage.model_validate(receive_until(ws, "quote"))

    snap = engine.strategy("mm-eth").snapshot()
    assert {"quote", "window"} <= set(hello["message_types"])
    assert quote.strategy_id == "mm-eth" and quote.symbol == "ETH/USDT" and quote.quoting
    assert quote.bid is not None and quote.ask is not None and float(quote.bid) < float(quote.ask)
    assert quote.bid_size is not None and float(quote.bid_size) > 0
    assert quote.spread == float(snap["spread"]) and quote.inventory_clips == float(snap["q_clips"])
    assert quote.reservation_price is not None and float(quote.bid) < quote.reservation_price < float(quote.ask)


def test_a_window_signal_arrives_as_a_window_message(traded: tuple[TestClient, Any]) -> None:
    client, engine = traded
    ts = datetime.now(UTC)

    with client.websocket_connect("/ws/signals") as ws:
        ws.receive_text()  # hello
        engine.submit(SignalEvent("btc-updown-5m", 0.64, ts))
        window = WindowMessage.model_validate(receive_until(ws, "window"))

    start = int(ts.timestamp()) - int(ts.timestamp()) % 300
    assert window.strategy_id == "window-btc" and window.symbol == "btc-updown-5m"
    assert window.p_up == 0.64 and window.window_s == 300
    assert window.window_start == datetime.fromtimestamp(start, UTC)
    assert 0 < window.seconds_left <= 300 and window.pnl_today == "0"


def test_the_schema_lists_the_new_message_types(traded: tuple[TestClient, Any]) -> None:
    client, _ = traded

    schema = client.get("/ws/signals/schema").json()

    assert {"QuoteMessage", "WindowMessage"} <= set(schema["$defs"])
    assert set(schema["discriminator"]["mapping"]) == set(MESSAGE_TYPES)
