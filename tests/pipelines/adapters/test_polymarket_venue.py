"""The real ccxt Polymarket client, through the adapter, against the fake venue on 127.0.0.1."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from pipelines.adapters.polymarket import PolymarketWindowVenue, VenueSettings
from pipelines.adapters.polymarket.client import VenueRefusedError
from pipelines.adapters.polymarket.parse import market_info
from pipelines.domain.window_market import Outcome, outcome_handle
from pipelines.trading.window_fees import TokenLedger, peak_fee_rate
from tests.fakes.polymarket_venue import FakePolymarketVenue

T0 = 1_700_000_100  # a window start (multiple of 300)
D = Decimal


@dataclass
class Clocks:
    unix: float = T0 + 10.0
    mono: float = 0.0

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.unix, UTC)


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def fake(clocks: Clocks) -> Iterator[FakePolymarketVenue]:
    # BTC rises through every window: each one resolves Up
    with FakePolymarketVenue(lambda: clocks.unix, lambda t: 60_000.0 + (t - T0) * 0.1) as venue:
        yield venue


def _venue(fake: FakePolymarketVenue, clocks: Clocks) -> PolymarketWindowVenue:
    key = "0x" + secrets.token_hex(32)  # a throwaway wallet: nothing here is a real credential
    settings = VenueSettings(private_key=SecretStr(key), urls=fake.ccxt_urls(), tick_ttl_s=30, max_retries=0)
    return PolymarketWindowVenue(settings, clock=clocks.utc, monotonic=lambda: clocks.mono)


def test_discovers_the_current_and_next_window(fake: FakePolymarketVenue, clocks: Clocks) -> None:
    async def scenario() -> None:
        async with _venue(fake, clocks) as venue:
            current, upcoming = await venue.current_and_next()
            assert current is not None and upcoming is not None
            assert (current.slug, upcoming.slug) == (f"btc-updown-5m-{T0}", f"btc-updown-5m-{T0 + 300}")
            assert current.start.timestamp() == T0 and current.end.timestamp() == T0 + 300
            assert current.up.handle == outcome_handle(T0, Outcome.UP)
            assert current.up.token_id == fake.window(T0).up and current.down.token_id == fake.window(T0).down
            assert (current.tick_size, current.min_size, current.active, current.resolved) == (
                D("0.01"),
                D(5),
                True,
                False,
            )
            assert await venue.window(T0 + 600) is None  # not listed yet

    asyncio.run(scenario())


def test_reads_books_trades_and_the_fee_per_market(fake: FakePolymarketVenue, clocks: Clocks) -> None:
    async def scenario() -> None:
        async with _venue(fake, clocks) as venue:
            current, upcoming = await venue.current_and_next()
            assert current is not None and upcoming is not None
            fake.set_fee(T0 + 300, 1000)
            fake.set_book(current.up.token_id, [("0.47", "50"), ("0.48", "100")], [("0.53", "80"), ("0.52", "100")])
            book = await venue.order_book(current.up.token_id)
            assert [(b.price, b.size) for b in book.bids] == [(D("0.48"), D(100)), (D("0.47"), D(50))]
            assert book.best_ask is not None and book.best_ask.price == D("0.52")
            fee = await venue.fee(current.up.token_id)
            assert fee.rate == D("0.25")
            info = market_info(current, Outcome.UP, fee, await venue.tick_size(current.up.token_id), 2)
            assert (info.symbol, info.venue_symbol_id, info.taker_fee, info.tick_size, info.min_size) == (
                current.up.handle,
                current.up.token_id,
                D("0.015625"),
                D("0.01"),
                D(5),
            )
            assert peak_fee_rate(info.taker_fee, 2) == D("0.25")
            assert (await venue.fee(upcoming.up.token_id)).rate == D("0.1")  # per market, from the venue
            fake.trade(current.up.token_id, "0.52", "7")
            trades = await venue.trades(current.up.token_id)
            assert [(t.price, t.size) for t in trades] == [(D("0.52"), D(7))]

    asyncio.run(scenario())


def test_places_cancels_and_sees_fills(fake: FakePolymarketVenue, clocks: Clocks) -> None:
    async def scenario() -> None:
        async with _venue(fake, clocks) as venue:
            current, _ = await venue.current_and_next()
            assert current is not None
            up = current.up.token_id
            bid = await venue.place_limit(up, "buy", D("0.50"), D(20), post_only=True)
            assert bid.status == "open"
            assert [o.order_id for o in await venue.open_orders(up)] == [bid.order_id]
            assert await venue.cancel(bid.order_id)
            assert await venue.open_orders(up) == []
            with pytest.raises(VenueRefusedError, match="crosses"):
                await venue.place_limit(up, "buy", D("0.52"), D(10), post_only=True)
            resting = await venue.place_limit(up, "buy", D("0.49"), D(30), post_only=True)
            fake.trade(up, "0.49", "12")
            fills = await venue.fills(up)
            assert [(f.price, f.size, f.side, f.order_id) for f in fills] == [
                (D("0.49"), D(12), "buy", resting.order_id)
            ]
            assert fills[0].fee_rate == 0  # makers pay no fee
            assert (await venue.open_orders(up))[0].filled == D(12)
            assert resting.order_id in {o.order_id for o in await venue.open_orders(up)}

    asyncio.run(scenario())


def test_fees_in_tokens_leave_a_sellable_balance_at_the_venue(fake: FakePolymarketVenue, clocks: Clocks) -> None:
    async def scenario() -> None:
        async with _venue(fake, clocks) as venue:
            current, _ = await venue.current_and_next()
            assert current is not None
            up = current.up.token_id
            fee = await venue.fee(up)
            # Act: a taker buy of 100 Up at 0.52 (the venue takes its fee in Up tokens)
            await venue.place_limit(up, "buy", D("0.52"), D(100), time_in_force="FOK")
            ledger = TokenLedger(cash=D(1000))
            for fill in await venue.fills(up):
                ledger.apply_fill(up, fill.side, fill.size, fill.price, taker=True, rate=fee.rate, exponent=2)
            # Assert: our ledger holds exactly what the venue credited, and selling "100" fails
            assert await venue.token_balance(up) == ledger.balance(up) == D("98.442496")
            with pytest.raises(VenueRefusedError) as refused:
                await venue.place_limit(up, "sell", D("0.48"), D(100), time_in_force="FOK")
            assert refused.value.kind == "InsufficientFunds"
            sold = await venue.place_limit(up, "sell", D("0.48"), ledger.sellable(up, D("0.01")), time_in_force="FOK")
            assert sold.status == "closed"
            assert D(0) <= await venue.token_balance(up) < D("0.01")

    asyncio.run(scenario())


def test_tick_size_is_reread_not_cached_forever(fake: FakePolymarketVenue, clocks: Clocks) -> None:
    async def scenario() -> None:
        async with _venue(fake, clocks) as venue:
            current, _ = await venue.current_and_next()
            assert current is not None
            up = current.up.token_id
            fake.set_tick(T0, "0.001")
            assert await venue.tick_size(up) == D("0.001")
            fake.set_tick(T0, "0.01")
            assert await venue.tick_size(up) == D("0.001")  # within the TTL
            clocks.mono += 31
            assert await venue.tick_size(up) == D("0.01")  # re-read after it
            fake.set_tick(T0, "0.001")
            await venue.tick_size(up)  # cached 0.001 ...
            fake.set_tick(T0, "0.01")  # ... the venue moves to 0.01: the first try is refused, re-read, retried
            order = await venue.place_limit(up, "buy", D("0.455"), D(10), post_only=True)
            assert order.price == D("0.45")

    asyncio.run(scenario())


def test_window_resolves_on_the_clock_and_credits_the_winner(fake: FakePolymarketVenue, clocks: Clocks) -> None:
    async def scenario() -> None:
        async with _venue(fake, clocks) as venue:
            current, _ = await venue.current_and_next()
            assert current is not None
            await venue.place_limit(current.up.token_id, "buy", D("0.52"), D(50), time_in_force="FOK")
            held = await venue.token_balance(current.up.token_id)
            cash_before = await venue.collateral()
            clocks.unix = T0 + 300.5  # past the end: BTC rose, Up wins
            resolved = await venue.window(T0)
            assert resolved is not None and resolved.resolved and resolved.winner is Outcome.UP
            assert await venue.collateral() == cash_before + held
            current2, _ = await venue.current_and_next()
            assert current2 is not None and current2.start.timestamp() == T0 + 300

    asyncio.run(scenario())


def test_streams_the_book_and_trades_over_the_market_websocket(fake: FakePolymarketVenue, clocks: Clocks) -> None:
    async def next_update(venue: PolymarketWindowVenue, token: str, action: Callable[[], Awaitable[object]]) -> Any:
        # a watch resolves on the next message: start waiting, then make the venue send one
        book = asyncio.ensure_future(venue.watch_book(token))
        trades = asyncio.ensure_future(venue.watch_trades(token))
        await asyncio.sleep(0.5)  # let both watchers register their futures
        await action()
        return await asyncio.wait_for(book, 10), trades

    async def scenario() -> None:
        async with _venue(fake, clocks) as venue:
            current, _ = await venue.current_and_next()
            assert current is not None
            up = current.up.token_id
            first = await asyncio.wait_for(venue.watch_book(up), 10)  # subscribe: the snapshot
            assert first.best_bid is not None and first.best_bid.price == D("0.48")

            async def replace() -> None:
                fake.set_book(up, [("0.49", "40")], [("0.53", "60")])  # a new snapshot is pushed

            replaced, pending = await next_update(venue, up, replace)
            pending.cancel()
            assert replaced.best_bid is not None and (replaced.best_bid.price, replaced.best_bid.size) == (
                D("0.49"),
                D(40),
            )

            async def take() -> None:
                await venue.place_limit(up, "buy", D("0.53"), D(25), time_in_force="IOC")  # 25 of the 60 offered

            taken, prints = await next_update(venue, up, take)
            assert taken.best_ask is not None and taken.best_ask.size == D(35)
            assert [(t.price, t.size) for t in await asyncio.wait_for(prints, 10)] == [(D("0.53"), D(25))]

    asyncio.run(scenario())
