"""The paper broker of window-market outcome tokens and the feed that gives it the venue's markets,
against the fake Polymarket through the real ccxt client (`serving.engine.window_paper`,
`serving.window_feed`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pipelines.adapters.polymarket import PolymarketWindowVenue, VenueSettings
from pipelines.domain.window_market import Outcome, outcome_handle
from pipelines.trading.config import PaperConfig
from pipelines.trading.instruments import MarketInfo, Side
from pipelines.trading.orders import BookTop, Filled, Liquidity, Order, OrderKind, Rejected
from pipelines.trading.paper import Trade
from serving.engine.broker import BrokerError
from serving.engine.events import BookEvent, TradeEvent
from serving.engine.window_paper import WindowPaperBroker
from serving.window_feed import WindowFeed, venue_urls
from tests.fakes.polymarket_venue import FakePolymarketVenue

D = Decimal
T0 = 1_700_000_100  # a window start (multiple of 300)
UP = outcome_handle(T0, Outcome.UP)
NOW = datetime.fromtimestamp(T0 + 10, UTC)


def _info(symbol: str = UP) -> MarketInfo:
    # the fake's market: tick 0.01, 5 shares minimum, 2500 bps: peak fee 0.25 x 0.25^2
    return MarketInfo(symbol, "tok", D("0.01"), D("0.01"), D(0), D(0), D("0.015625"), D(5))


def _broker() -> WindowPaperBroker:
    broker = WindowPaperBroker(PaperConfig(latency_ms=0), "USDT", D(100))
    broker.register(_info())
    broker.on_book(UP, BookTop(D("0.48"), D("0.52"), D(100), D(100), NOW))
    return broker


def _order(cid: str, side: Side, kind: OrderKind, price: str, size: str) -> Order:
    return Order(cid, UP, side, kind, D(price), D(size), NOW)


def test_a_marketable_buy_fills_against_the_book_and_the_fee_is_withheld_in_tokens() -> None:
    broker = _broker()

    events = broker.place(_order("a1", Side.BUY, OrderKind.IOC, "0.52", "20"), NOW)
    events += broker.poll([], NOW + timedelta(milliseconds=1))

    fills = [e.fill for e in events if isinstance(e, Filled)]
    assert [(f.size, f.price, f.liquidity) for f in fills] == [(D(20), D("0.52"), Liquidity.TAKER)]
    fee = D(20) * D("0.52") * D("0.25") * (D("0.52") * D("0.48")) ** 2
    assert fills[0].fee == fee
    assert broker.balances()["USDT"] == D(100) - D("10.40")
    assert broker.balances()[UP] == D(20) - (fee / D("0.52")).quantize(D("0.000001"), rounding="ROUND_CEILING")
    # the full position as bought cannot be sold: the venue withheld the fee in tokens
    sell = broker.place(_order("a2", Side.SELL, OrderKind.IOC, "0.48", "20"), NOW)
    assert isinstance(sell[0], Rejected) and "insufficient" in sell[0].reason


def test_a_resting_order_fills_only_on_trades_through_its_price_up_to_their_size_without_fee() -> None:
    broker = _broker()
    broker.place(_order("r1", Side.BUY, OrderKind.POST_ONLY, "0.50", "10"), NOW)
    broker.poll([], NOW + timedelta(milliseconds=1))

    at_price = broker.on_trade(UP, Trade(D("0.50"), D(50), NOW + timedelta(seconds=1)))
    through = broker.on_trade(UP, Trade(D("0.49"), D(4), NOW + timedelta(seconds=2)))

    assert not [e for e in at_price if isinstance(e, Filled)]
    fills = [e.fill for e in through if isinstance(e, Filled)]
    assert [(f.size, f.price, f.fee, f.liquidity) for f in fills] == [(D(4), D("0.50"), D(0), Liquidity.MAKER)]
    assert broker.balances()[UP] == D(4) and broker.balances()["USDT"] == D(98)


def test_an_undiscovered_window_is_refused_and_redemption_pays_the_winner() -> None:
    broker = _broker()
    broker.place(_order("b1", Side.BUY, OrderKind.IOC, "0.52", "10"), NOW)
    broker.poll([], NOW + timedelta(milliseconds=1))
    tokens = broker.balances()[UP]

    unknown = Order("b2", outcome_handle(T0 + 600, Outcome.UP), Side.BUY, OrderKind.IOC, D("0.5"), D(10), NOW)
    refused = broker.place(unknown, NOW)
    credited = broker.redeem(T0, Outcome.UP)

    assert isinstance(refused[0], Rejected) and "not a window market" in refused[0].reason
    assert credited == tokens and UP not in broker.balances()
    assert broker.balances()["USDT"] == D(100) - D("5.20") + tokens


class Sink:
    """What the feed writes to: the engine's `submit` (thread-safe queue in the engine)."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def submit(self, event: Any) -> bool:
        self.events.append(event)
        return True


@pytest.fixture
def fake() -> Iterator[tuple[FakePolymarketVenue, list[float]]]:
    now = [T0 + 10.0]
    with FakePolymarketVenue(lambda: now[0], lambda t: 60_000.0 + (t - T0) * 0.1) as venue:
        yield venue, now


def test_the_feed_registers_windows_and_sends_books_new_trades_and_redeems_resolved_windows(
    fake: tuple[FakePolymarketVenue, list[float]],
) -> None:
    venue_fake, now = fake
    clock = lambda: datetime.fromtimestamp(now[0], UTC)  # noqa: E731
    broker, sink = WindowPaperBroker(PaperConfig(latency_ms=0), "USDT", D(100)), Sink()
    venue_fake.trade(venue_fake.window(T0).up, "0.52", "3")  # printed before the feed watched: history
    feed = WindowFeed(sink, broker, VenueSettings(urls=venue_urls(venue_fake.base_url), max_retries=0), clock=clock)

    async def scenario() -> None:
        async with PolymarketWindowVenue(feed.settings, clock=clock) as venue:
            await feed.poll(venue)
            venue_fake.trade(venue_fake.window(T0).up, "0.51", "7")
            await feed.poll(venue)
            now[0] = T0 + 301
            await feed.poll(venue)

    asyncio.run(scenario())

    books = [e for e in sink.events if isinstance(e, BookEvent)]
    assert {e.symbol for e in books} == {outcome_handle(s, o) for s in (T0, T0 + 300, T0 + 600) for o in Outcome}
    first = next(e for e in books if e.symbol == UP)
    assert (first.bid, first.ask, first.venue) == (D("0.48"), D("0.52"), "polymarket")
    trades = [e for e in sink.events if isinstance(e, TradeEvent)]
    assert [(e.symbol, e.price, e.size, e.venue) for e in trades] == [(UP, D("0.51"), D(7), "polymarket")]
    nxt = outcome_handle(T0 + 300, Outcome.DOWN)
    assert broker.market(nxt).min_size == D(5) and broker.market(nxt).taker_fee == D("0.015625")
    assert feed.redeemed == {T0: Outcome.UP} and T0 not in feed.windows
    with pytest.raises(BrokerError):  # a redeemed window's tokens are no longer instruments
        broker.market(UP)


def test_a_resting_order_of_a_redeemed_window_is_cancelled_by_the_resolution() -> None:
    broker = _broker()
    resting = _order("c1", Side.BUY, OrderKind.POST_ONLY, "0.45", "10")
    broker.place(resting, NOW)
    broker.poll([], NOW + timedelta(milliseconds=1))
    broker.redeem(T0, Outcome.DOWN)

    events = broker.cancel(resting, NOW + timedelta(seconds=300))

    assert [type(e).__name__ for e in events] == ["Cancelled"] and broker.open_orders() == []
    assert broker.balances() == {"USDT": D(100)}


def test_the_paper_account_survives_a_restart_with_its_tokens_and_the_fees_withheld_in_them() -> None:
    broker = _broker()
    broker.place(_order("s1", Side.BUY, OrderKind.IOC, "0.52", "10"), NOW)
    broker.poll([], NOW + timedelta(milliseconds=1))

    restarted = WindowPaperBroker(PaperConfig(latency_ms=0), "USDT", D(100))
    restarted.restore_state(broker.export_state())

    assert restarted.balances() == broker.balances() and restarted.held_windows() == {T0}
    assert restarted.token_fees_held() == broker.token_fees_held() > 0
