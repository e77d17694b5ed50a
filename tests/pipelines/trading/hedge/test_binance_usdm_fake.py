"""The real ccxt 4.5 binanceusdm clients (REST and ccxt.pro user data stream) against the local USD-M fake.

What the hedge needs from the hedge venue, in Binance's own wire format: markets (its own tick, lot and
minimum notional), GTX post-only and IOC orders, cancels, positions, balances, the user data stream's
ORDER_TRADE_UPDATE events and fills by REST (`userTrades`); and the faults it must survive: rejects,
partial fills, a forged signature, timeouts, a dropped WebSocket, delayed and lost order updates.
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
from tests.fakes.binance_usdm_venue import FakeBinanceUsdm

PERP = "BTC/USDT:USDT"


@pytest.fixture
def usdm() -> Iterator[FakeBinanceUsdm]:
    with FakeBinanceUsdm() as venue:
        venue.matcher.set_book("BTCUSDT", "60000.0", "60000.1")
        yield venue


def rest(venue: FakeBinanceUsdm, **extra: Any) -> Any:
    client = ccxt.binanceusdm({**venue.ccxt_config(), **extra})
    client.load_markets()
    return client


async def streaming(venue: FakeBinanceUsdm, n: int = 1, timeout: float = 5.0) -> None:
    """Wait until `n` user data streams are connected (a push before that would reach nobody)."""
    deadline = time.monotonic() + timeout
    while len(venue.stream_conns()) < n:
        assert time.monotonic() < deadline, "the client never opened its user data stream"
        await asyncio.sleep(0.02)


def test_markets_give_the_perpetual_its_own_metadata(usdm: FakeBinanceUsdm) -> None:
    client = rest(usdm)
    info = MarketInfo.from_ccxt(client.markets[PERP])
    assert (info.venue_symbol_id, info.tick_size, info.lot_size, info.min_notional) == (
        "BTCUSDT", Decimal("0.1"), Decimal("0.001"), Decimal(5),
    )  # fmt: skip
    assert client.markets[PERP]["swap"] and client.markets[PERP]["linear"]


def test_gtx_post_only_ioc_partial_fill_reject_positions_balance_and_cancel(usdm: FakeBinanceUsdm) -> None:
    client = rest(usdm)
    resting = client.create_order(PERP, "limit", "buy", 0.002, 59000, {"postOnly": True, "newClientOrderId": "m1"})
    assert resting["status"] == "open" and resting["postOnly"] and resting["clientOrderId"] == "m1"
    assert usdm.requests[-1][2]["timeInForce"] == "GTX"
    with pytest.raises(ccxt.InvalidOrder, match="Post Only"):  # -5022: GTX that would take
        client.create_order(PERP, "limit", "buy", 0.001, 60000.1, {"postOnly": True})

    usdm.matcher.ioc_fill_ratio = Decimal("0.5")
    half = client.create_order(PERP, "limit", "sell", 0.004, 59880, {"timeInForce": "IOC"})
    assert (half["status"], half["filled"], half["trades"]) == ("expired", pytest.approx(0.002), [])
    [trade] = client.fetch_my_trades(PERP, None, None, {"orderId": half["id"]})  # the fill, by REST
    assert (trade["amount"], trade["price"], trade["takerOrMaker"]) == (pytest.approx(0.002), 60000, "taker")
    nothing = client.create_order(PERP, "limit", "sell", 0.002, 60100, {"timeInForce": "IOC"})
    assert (nothing["status"], nothing["filled"]) == ("expired", 0)  # an IOC that cannot match: expired
    usdm.matcher.reject_next = ["insufficient"]
    with pytest.raises(ccxt.ExchangeError, match="Margin is insufficient"):  # -2019 (ccxt: ExchangeError)
        client.create_order(PERP, "limit", "sell", 0.002, 59880, {"timeInForce": "IOC"})

    [position] = client.fetch_positions([PERP])
    assert (position["side"], position["contracts"], position["entryPrice"]) == ("short", pytest.approx(0.002), 60000)
    assert client.fetch_balance()["USDT"]["total"] == pytest.approx(10_000 - 120 * 0.0005)
    [open_order] = client.fetch_open_orders(PERP)
    assert open_order["id"] == resting["id"]
    assert client.cancel_order(resting["id"], PERP)["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(resting["id"], PERP)
    assert client.fetch_open_orders(PERP) == []


def test_a_forged_signature_and_a_wrong_key_are_refused(usdm: FakeBinanceUsdm) -> None:
    forged = rest(usdm, secret="not-the-secret")
    with pytest.raises(ccxt.AuthenticationError):  # -1022
        forged.fetch_balance()
    stranger = rest(usdm, apiKey="someone-else")
    with pytest.raises(ccxt.AuthenticationError):  # -2015
        stranger.create_order(PERP, "limit", "buy", 0.001, 59000, {"postOnly": True})
    assert usdm.matcher.orders == {}


def test_timeout_and_execution_status_unknown(usdm: FakeBinanceUsdm) -> None:
    client = rest(usdm, timeout=400)
    usdm.hang_next(1, 1.0)
    with pytest.raises(ccxt.RequestTimeout):
        client.fetch_positions([PERP])
    usdm.unknown_next(1, executed=True)
    with pytest.raises(ccxt.NetworkError):  # 503 -1007: the order may or may not exist
        client.create_order(PERP, "limit", "sell", 0.001, 59880, {"timeInForce": "IOC", "newClientOrderId": "u1"})
    found = client.fetch_order(None, PERP, {"origClientOrderId": "u1"})
    assert (found["status"], found["filled"]) == ("closed", pytest.approx(0.001))


def test_user_data_stream_order_updates_delay_loss_and_a_dropped_websocket(usdm: FakeBinanceUsdm) -> None:
    async def scenario() -> None:
        client = ccxt.pro.binanceusdm(usdm.ccxt_config())
        try:
            await client.load_markets()
            first = asyncio.ensure_future(client.watch_orders(PERP))
            await streaming(usdm)
            assert any(path == "/fapi/v1/listenKey" and m == "POST" for m, path, _ in usdm.requests)
            order = await client.create_order(PERP, "limit", "buy", 0.002, 59990, {"postOnly": True})
            [accepted] = await asyncio.wait_for(first, 3)
            assert (accepted["id"], accepted["status"], accepted["info"]["x"]) == (order["id"], "open", "NEW")

            usdm.update_delay = 0.5
            started = time.monotonic()
            usdm.matcher.trade("BTCUSDT", "59989.9", "0.0012")
            update = (await asyncio.wait_for(client.watch_orders(PERP), 3))[-1]
            assert time.monotonic() - started >= 0.45  # the delayed update
            assert (update["info"]["x"], update["info"]["l"], update["filled"]) == ("TRADE", "0.0012", 0.0012)
            assert update["info"]["t"] and update["info"]["m"] is True
            usdm.update_delay = 0.0

            usdm.drop_updates(1)  # the next update is lost: the REST poll still finds the fill
            usdm.matcher.trade("BTCUSDT", "59989.9", "0.0008")
            fills = await client.fetch_my_trades(PERP, None, None, {"orderId": order["id"]})
            assert [f["amount"] for f in fills] == [pytest.approx(0.0012), pytest.approx(0.0008)]

            pending = asyncio.ensure_future(client.watch_orders(PERP))
            await asyncio.sleep(0.1)
            usdm.drop_websockets()
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(pending, 3)
            again = asyncio.ensure_future(client.watch_orders(PERP))  # reconnects on the same listenKey
            await streaming(usdm)
            await client.create_order(PERP, "limit", "sell", 0.001, 59880, {"timeInForce": "IOC"})
            assert (await asyncio.wait_for(again, 3))[-1]["side"] == "sell"
        finally:
            await client.close()

    asyncio.run(scenario())
