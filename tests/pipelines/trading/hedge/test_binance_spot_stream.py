"""The real ccxt.pro binance client's spot order stream (WebSocket API, signed subscription) against the
local spot fakes: `FakeTradingVenue` (REST) with `BinanceSpotStream` (its user data stream)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal

import ccxt
import ccxt.pro
import pytest

from tests.fakes.binance_spot_stream import BinanceSpotStream
from tests.fakes.trading_venue import FakeTradingVenue

SPOT = "BTC/USDT"


@pytest.fixture
def stream() -> Iterator[BinanceSpotStream]:
    with (
        FakeTradingVenue({"BTCUSDT": ("BTC", "USDT")}, {"USDT": Decimal(10_000)}) as venue,
        BinanceSpotStream(venue) as s,
    ):
        venue.set_book(SPOT, "60000.00", "60000.01")
        yield s


async def subscribed(stream: BinanceSpotStream, n: int = 1, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(stream.streams()) < n:
        assert time.monotonic() < deadline, "the client never subscribed"
        await asyncio.sleep(0.02)


def test_execution_reports_of_a_maker_fill_delayed_lost_and_after_a_dropped_websocket(
    stream: BinanceSpotStream,
) -> None:
    venue = stream.venue

    async def scenario() -> None:
        client = ccxt.pro.binance(stream.ccxt_config())
        try:
            await client.load_markets()
            first = asyncio.ensure_future(client.watch_orders(SPOT))
            await subscribed(stream)
            assert stream.ws_messages[0]["method"] == "userDataStream.subscribe.signature"
            order = await client.create_order(SPOT, "limit", "buy", 0.002, 60000, {"postOnly": True})
            [accepted] = await asyncio.wait_for(first, 3)
            assert (accepted["id"], accepted["status"], accepted["info"]["x"]) == (order["id"], "open", "NEW")

            stream.update_delay = 0.5
            started = time.monotonic()
            venue.trade(SPOT, "59999.99", "0.0012")
            update = (await asyncio.wait_for(client.watch_orders(SPOT), 3))[-1]
            assert time.monotonic() - started >= 0.45
            assert (update["info"]["x"], update["info"]["l"], update["info"]["m"]) == ("TRADE", "0.0012", True)
            assert update["filled"] == pytest.approx(0.0012) and update["info"]["t"] > 0
            stream.update_delay = 0.0

            stream.drop_updates(1)  # lost: the REST poll (myTrades) still has it
            venue.trade(SPOT, "59999.99", "0.0008")
            fills = await client.fetch_my_trades(SPOT, None, None, {"orderId": order["id"]})
            assert [f["amount"] for f in fills] == [pytest.approx(0.0012), pytest.approx(0.0008)]

            pending = asyncio.ensure_future(client.watch_orders(SPOT))
            await asyncio.sleep(0.1)
            stream.drop_websockets()
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(pending, 3)
            again = asyncio.ensure_future(client.watch_orders(SPOT))  # reconnects and signs a new subscription
            await subscribed(stream)
            await client.create_order(SPOT, "limit", "sell", 0.001, 59990, {"timeInForce": "IOC"})
            last = (await asyncio.wait_for(again, 3))[-1]
            assert last["side"] == "sell"
        finally:
            await client.close()

    asyncio.run(scenario())


def test_a_subscription_signed_with_another_secret_is_refused(stream: BinanceSpotStream) -> None:
    async def scenario() -> None:
        client = ccxt.pro.binance({**stream.ccxt_config(), "secret": "not-the-secret"})
        try:
            await client.load_markets()
            # ccxt 4.5.90 raises AuthenticationError(-1022) and then, cleaning up the refused
            # subscription a second time, KeyError('spot'): either way the watch fails.
            with pytest.raises((ccxt.AuthenticationError, KeyError)):
                await asyncio.wait_for(client.watch_orders(SPOT), 3)
        finally:
            await client.close()

    asyncio.run(scenario())
    assert stream.streams() == []
