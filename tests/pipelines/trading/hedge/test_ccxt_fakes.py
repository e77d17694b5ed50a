"""The real ccxt 4.5 clients (REST and ccxt.pro WebSocket) against the local Backpack and Hyperliquid fakes.

What the hedge needs from each venue: markets (each venue's own tick, lot and minimums), post-only and
IOC orders, cancels, positions, order updates on the WebSocket and fills by REST poll; and the faults
it must survive: rejects (false "insufficient"), partial fills, timeouts, a dropped WebSocket, delayed
and lost order updates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.pro
import pytest

from pipelines.trading.instruments import MarketInfo
from tests.fakes.backpack_venue import FakeBackpack
from tests.fakes.hyperliquid_venue import FakeHyperliquid

HL_SYMBOL = "BTC/USDC:USDC"


@pytest.fixture
def backpack() -> Iterator[FakeBackpack]:
    with FakeBackpack() as venue:
        venue.matcher.set_book("BTC_USDC", "60000.0", "60000.1")
        venue.matcher.set_book("BTC_USDC_PERP", "60000.0", "60000.1")
        yield venue


@pytest.fixture
def hyperliquid() -> Iterator[FakeHyperliquid]:
    with FakeHyperliquid() as venue:
        venue.matcher.set_book("BTC", "60000", "60001")
        yield venue


def rest(exchange: type[Any], venue: FakeBackpack | FakeHyperliquid, **extra: Any) -> Any:
    client = exchange({**venue.ccxt_config(), **extra})
    client.load_markets()
    return client


async def watch(client: Any, method: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    return await asyncio.wait_for(getattr(client, method)(), timeout)


async def subscribed(venue: FakeBackpack | FakeHyperliquid, n: int = 1, timeout: float = 5.0) -> None:
    """Wait until the venue holds `n` subscriptions (a push before that would reach nobody)."""
    deadline = time.monotonic() + timeout
    while sum(len(c.subscriptions) for c in list(venue.conns)) < n:
        assert time.monotonic() < deadline, "the client never subscribed"
        await asyncio.sleep(0.02)


# ---- Backpack (primary) ---------------------------------------------------------------------------
def test_backpack_markets_give_each_market_its_own_metadata(backpack: FakeBackpack) -> None:
    client = rest(ccxt.backpack, backpack)
    spot = MarketInfo.from_ccxt(client.markets["BTC/USDC"])
    perp = MarketInfo.from_ccxt(client.markets["BTC/USDC:USDC"])
    assert (spot.venue_symbol_id, perp.venue_symbol_id) == ("BTC_USDC", "BTC_USDC_PERP")
    assert (spot.tick_size, spot.lot_size, spot.min_size) == (Decimal("0.1"), Decimal("0.00001"), Decimal("0.00001"))


def test_backpack_post_only_cancel_partial_fill_positions_and_rest_poll(backpack: FakeBackpack) -> None:
    client = rest(ccxt.backpack, backpack)
    order = client.create_order("BTC/USDC", "limit", "buy", 0.001, 60000.0, {"postOnly": True, "clientOrderId": 7})
    assert order["status"] == "open" and order["postOnly"] is True and order["clientOrderId"] == "7"
    with pytest.raises(ccxt.InvalidOrder, match="immediately match"):
        client.create_order("BTC/USDC", "limit", "buy", 0.001, 60000.1, {"postOnly": True})

    backpack.matcher.trade("BTC_USDC", "59999.9", "0.0004")  # a print through our bid: partial fill
    [still_open] = client.fetch_open_orders("BTC/USDC")
    assert still_open["filled"] == pytest.approx(0.0004)
    assert client.cancel_order(order["id"], "BTC/USDC")["status"] == "canceled"
    assert client.fetch_open_orders("BTC/USDC") == []
    [trade] = client.fetch_my_trades("BTC/USDC")  # the REST fallback for a missed fill
    assert (trade["order"], trade["amount"], trade["takerOrMaker"]) == (order["id"], pytest.approx(0.0004), "maker")
    assert client.fetch_balance()["BTC"]["total"] == pytest.approx(0.0004)

    ioc = client.create_order("BTC/USDC:USDC", "limit", "sell", 0.002, 59700.0, {"timeInForce": "IOC"})
    assert ioc["status"] == "closed" and ioc["filled"] == pytest.approx(0.002)
    [position] = client.fetch_positions()
    assert (position["symbol"], position["side"], float(position["contracts"])) == ("BTC/USDC:USDC", "short", 0.002)


def test_backpack_rejects_a_bad_signature_and_scripted_insufficient_funds(backpack: FakeBackpack) -> None:
    client = rest(ccxt.backpack, backpack)
    backpack.matcher.reject_next = ["insufficient"]
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order("BTC/USDC", "limit", "buy", 0.001, 59000.0, {"postOnly": True})
    forged = rest(ccxt.backpack, backpack, secret="A" * 43 + "=")
    with pytest.raises(ccxt.AuthenticationError):
        forged.fetch_balance()


def test_backpack_timeout_is_a_timeout(backpack: FakeBackpack) -> None:
    client = rest(ccxt.backpack, backpack, timeout=400)
    backpack.hang_next(1, 1.0)
    with pytest.raises(ccxt.RequestTimeout):
        client.fetch_open_orders("BTC/USDC")


def test_backpack_order_updates_fill_events_drop_delay_and_loss(backpack: FakeBackpack) -> None:
    async def scenario() -> None:
        client = ccxt.pro.backpack(backpack.ccxt_config())
        try:
            await client.load_markets()
            first = asyncio.ensure_future(client.watch_orders())
            await subscribed(backpack)
            order = await client.create_order("BTC/USDC", "limit", "buy", 0.001, 60000.0, {"postOnly": True})
            [accepted] = await asyncio.wait_for(first, 3)
            assert (accepted["id"], accepted["status"], accepted["info"]["e"]) == (order["id"], "open", "orderAccepted")

            backpack.update_delay = 0.5
            started = time.monotonic()
            backpack.matcher.trade("BTC_USDC", "59999.9", "0.0006")
            update = (await watch(client, "watch_orders"))[-1]
            assert time.monotonic() - started >= 0.45  # the delayed update
            assert update["info"]["e"] == "orderFill" and update["info"]["l"] == "0.0006" and update["info"]["t"]
            backpack.update_delay = 0.0

            backpack.drop_updates(1)  # the next update is lost: the REST poll still finds the fill
            backpack.matcher.trade("BTC_USDC", "59999.9", "0.0004")
            fills = await client.fetch_my_trades("BTC/USDC")
            assert [f["amount"] for f in fills] == [pytest.approx(0.0006), pytest.approx(0.0004)]

            pending = asyncio.ensure_future(client.watch_orders())
            await asyncio.sleep(0.1)
            backpack.drop_websockets()
            await asyncio.sleep(0.1)
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(pending, 3)
            again = asyncio.ensure_future(client.watch_orders())  # reconnects and resubscribes
            await subscribed(backpack)
            await client.create_order("BTC/USDC", "limit", "buy", 0.001, 59990.0, {"postOnly": True})
            assert (await asyncio.wait_for(again, 3))[-1]["info"]["e"] == "orderAccepted"
        finally:
            await client.close()

    asyncio.run(scenario())


# ---- Hyperliquid (hedge) ----------------------------------------------------------------------------
def test_hyperliquid_markets_and_the_builder_fee_turned_off(hyperliquid: FakeHyperliquid) -> None:
    client = rest(ccxt.hyperliquid, hyperliquid)
    info = MarketInfo.from_ccxt(client.markets[HL_SYMBOL])
    assert (info.venue_symbol_id, info.tick_size, info.lot_size, info.min_notional) == (
        "0", Decimal(1), Decimal("0.00001"), Decimal(10),
    )  # fmt: skip
    client.create_order(HL_SYMBOL, "limit", "buy", 0.001, 59000, {"postOnly": True})
    assert hyperliquid.builder_fees[0]["approved"] == "0%"
    assert all(b.get("f") == 0 for b in hyperliquid.builder_fees[1:])  # attached for statistics, charging 0
    assert "setReferrer" not in [a.get("type") for a in hyperliquid.actions]


def test_hyperliquid_ioc_hedge_partial_fill_rejects_positions_and_cancel(hyperliquid: FakeHyperliquid) -> None:
    client = rest(ccxt.hyperliquid, hyperliquid)
    resting = client.create_order(HL_SYMBOL, "limit", "buy", 0.001, 59000, {"postOnly": True})
    with pytest.raises(ccxt.InvalidOrder, match="Post only"):
        client.create_order(HL_SYMBOL, "limit", "buy", 0.001, 60001, {"postOnly": True})
    hedge = client.create_order(HL_SYMBOL, "limit", "sell", 0.0002, 59880, {"timeInForce": "Ioc"})
    assert hedge["filled"] == pytest.approx(0.0002) and hedge["average"] == pytest.approx(60000)
    hyperliquid.matcher.ioc_fill_ratio = Decimal("0.5")
    half = client.create_order(HL_SYMBOL, "limit", "sell", 0.0004, 59880, {"timeInForce": "Ioc"})
    assert half["filled"] == pytest.approx(0.0002)
    with pytest.raises(ccxt.InvalidOrder, match="could not immediately match"):
        client.create_order(HL_SYMBOL, "limit", "sell", 0.0004, 60100, {"timeInForce": "Ioc"})
    hyperliquid.matcher.reject_next = ["insufficient"]
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order(HL_SYMBOL, "limit", "sell", 0.0002, 59880, {"timeInForce": "Ioc"})
    [position] = client.fetch_positions()
    assert (position["symbol"], position["side"], position["contracts"]) == (HL_SYMBOL, "short", pytest.approx(0.0004))
    [open_order] = client.fetch_open_orders(HL_SYMBOL)
    assert open_order["id"] == resting["id"]
    client.cancel_order(resting["id"], HL_SYMBOL)
    assert client.fetch_open_orders(HL_SYMBOL) == []
    assert len(client.fetch_my_trades(HL_SYMBOL)) == 2


def test_hyperliquid_refuses_an_action_signed_by_another_key(hyperliquid: FakeHyperliquid) -> None:
    impostor = rest(ccxt.hyperliquid, hyperliquid, privateKey="0x" + "22" * 32)
    with pytest.raises(ccxt.BaseError, match="does not exist"):
        impostor.create_order(HL_SYMBOL, "limit", "buy", 0.001, 59000, {"postOnly": True})
    assert hyperliquid.matcher.orders == {}


def test_hyperliquid_timeout_is_a_timeout(hyperliquid: FakeHyperliquid) -> None:
    client = rest(ccxt.hyperliquid, hyperliquid, timeout=400)
    hyperliquid.hang_next(1, 1.0)
    with pytest.raises(ccxt.RequestTimeout):
        client.fetch_positions()


def test_hyperliquid_order_updates_and_fills_on_the_websocket_survive_a_drop(hyperliquid: FakeHyperliquid) -> None:
    async def scenario() -> None:
        client = ccxt.pro.hyperliquid(hyperliquid.ccxt_config())
        try:
            await client.load_markets()
            orders = asyncio.ensure_future(client.watch_orders())
            trades = asyncio.ensure_future(client.watch_my_trades())
            await subscribed(hyperliquid, 2)
            await client.create_order(HL_SYMBOL, "limit", "sell", 0.0002, 59880, {"timeInForce": "Ioc"})
            assert (await asyncio.wait_for(orders, 3))[0]["symbol"] == HL_SYMBOL
            [fill] = await asyncio.wait_for(trades, 3)
            assert fill["amount"] == pytest.approx(0.0002) and fill["id"]

            pending = asyncio.ensure_future(client.watch_orders())
            await asyncio.sleep(0.3)
            while pending.done() and pending.exception() is None:
                # A late update of the IOC order (e.g. its final status) resolved this watch before the
                # drop, as it can on a loaded machine: watch again, so the drop is what this one sees.
                pending = asyncio.ensure_future(client.watch_orders())
                await asyncio.sleep(0.3)
            hyperliquid.drop_websockets()
            await asyncio.sleep(0.1)
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(pending, 3)
            again = asyncio.ensure_future(client.watch_orders())
            await subscribed(hyperliquid)
            await client.create_order(HL_SYMBOL, "limit", "buy", 0.001, 59000, {"postOnly": True})
            assert (await asyncio.wait_for(again, 3))[-1]["status"] == "open"
        finally:
            await client.close()

    asyncio.run(scenario())
