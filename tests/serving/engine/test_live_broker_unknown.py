"""The live broker never resends a new order whose fate is unknown (real ccxt binance, local fake venue).

Binance's client order ids are unique only among open orders: an IOC resent after its answer was lost
would be taken as a new order and execute twice. A refusal before execution (429) is still retried.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import SecretStr

from pipelines.trading.config import OrderConfig
from pipelines.trading.instruments import Side
from pipelines.trading.orders import Filled, Order, OrderKind
from serving.engine.live_broker import LiveBroker
from tests.fakes.trading_venue import TEST_API_KEY, TEST_API_SECRET, FakeTradingVenue

pytestmark = pytest.mark.integration


def broker(venue: FakeTradingVenue) -> LiveBroker:
    b = LiveBroker(
        "binance", SecretStr(TEST_API_KEY), SecretStr(TEST_API_SECRET), order_cfg=OrderConfig(),
        api_url=venue.base_url, backoff_s=0.01, sleep=lambda _: None,
    )  # fmt: skip
    b.exchange.enableRateLimit = False
    return b


def ioc(now: datetime) -> Order:
    return Order("at-ioc-1", "BTC/USDT", Side.BUY, OrderKind.IOC, Decimal("100.02"), Decimal("0.1"), now)


def test_an_ioc_whose_answer_was_lost_is_not_resent_and_the_poll_finds_its_fill(venue: FakeTradingVenue) -> None:
    venue.set_book("BTC/USDT", "100.00", "100.01")
    b, now = broker(venue), datetime.now(UTC)
    order = ioc(now)
    venue.lose_answers_next(1)  # executed at the venue, the answer lost on the way back

    assert b.place(order, now) == []  # unknown: nothing assumed

    posts = [p for m, path, p in venue.requests if m == "POST" and path == "/api/v3/order"]
    assert len(posts) == 1 and venue.balance("BTC") == Decimal("0.1")  # executed once
    fills = [e for e in b.poll([order], now) if isinstance(e, Filled)]
    assert [(f.fill.size, f.fill.price) for f in fills] == [(Decimal("0.1"), Decimal("100.01"))]


def test_a_rate_limited_new_order_is_still_retried(venue: FakeTradingVenue) -> None:
    venue.set_book("BTC/USDT", "100.00", "100.01")
    b, now = broker(venue), datetime.now(UTC)
    b.market("BTC/USDT")
    venue.rate_limit_next(1)  # 429: refused before execution

    events = b.place(ioc(now), now)

    assert any(isinstance(e, Filled) for e in events) and venue.balance("BTC") == Decimal("0.1")
