"""The runtime on the live broker: the real ccxt binance client against the local fake venue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import SecretStr

from pipelines.trading.config import OrderConfig, TradingConfig
from pipelines.trading.instruments import Side
from pipelines.trading.killswitch import Switch
from pipelines.trading.orders import Order, OrderKind, OrderState
from serving.engine.broker import BrokerError
from serving.engine.live_broker import LiveBroker
from tests.fakes.trading_venue import TEST_API_KEY, FakeTradingVenue
from tests.serving.engine.conftest import Harness, graduated

pytestmark = pytest.mark.integration


def posts(venue: FakeTradingVenue) -> list[dict[str, str]]:
    return [params for method, path, params in venue.requests if method == "POST" and path == "/api/v3/order"]


def test_entry_fill_and_exit_through_ccxt(live: Callable[..., Harness], venue: FakeTradingVenue) -> None:
    h = live(sweep_interval_s=0.1)
    venue.set_book("BTC/USDT", "100.00", "100.01")
    h.book("BTC/USDT", "100.00", "100.01")

    h.signal("BTC/USDT")

    [sent] = posts(venue)
    [stored] = h.orders()
    assert sent["type"] == "LIMIT_MAKER" and sent["price"] == "100" and sent["quantity"] == "0.08"
    assert sent["newClientOrderId"] == stored.order.client_order_id
    assert stored.order.state is OrderState.OPEN and stored.order.venue_order_id is not None

    venue.trade("BTC/USDT", "99.99", "0.03")  # partial, then the rest
    h.advance(0.2)
    assert h.engine.positions["BTC/USDT"].size == Decimal("0.03")
    venue.trade("BTC/USDT", "99.98", "1")
    h.advance(0.2)
    assert h.engine.positions["BTC/USDT"].size == Decimal("0.08")
    assert h.orders()[0].order.state is OrderState.FILLED
    assert len(h.orders()[0].order.fills) == 2

    venue.set_book("BTC/USDT", "100.80", "100.81")
    h.book("BTC/USDT", "100.80", "100.81")  # take profit: post-only sell at the ask
    assert posts(venue)[-1]["side"] == "SELL"
    venue.trade("BTC/USDT", "100.82", "1")
    h.advance(0.2)
    assert "BTC/USDT" not in h.engine.positions
    [closed] = h.store.closed_trades()
    assert closed.net_pnl > 0
    # Our books agree with the venue's, to the cent.
    assert venue.balance("BTC") == 0
    assert h.engine.reconcile(h.clock.now) == []


def test_partial_fill_then_cancel_delay_then_ioc_taker_within_the_cap(
    live: Callable[..., Harness], venue: FakeTradingVenue
) -> None:
    h = live(sweep_interval_s=0.1)
    venue.set_book("BTC/USDT", "100.00", "100.01", ask_qty="5")
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    venue.trade("BTC/USDT", "99.99", "0.02")
    h.advance(10)
    h.book("BTC/USDT", "100.00", "100.01")  # 10 s at 25%: cancel at the venue
    maker_id = h.orders()[0].order.client_order_id
    assert venue.order_by_client_id(maker_id).status == "CANCELED"  # type: ignore[union-attr]
    h.advance(0.3)
    assert len(posts(venue)) == 1  # inside the 500 ms delay
    h.advance(0.3)
    taker_post = posts(venue)[-1]
    assert taker_post["timeInForce"] == "IOC" and taker_post["type"] == "LIMIT"
    assert Decimal(taker_post["price"]) <= Decimal("100.02")  # one tick beyond the touch at most
    taker = h.orders()[-1].order
    assert taker.kind is OrderKind.IOC and taker.state is OrderState.FILLED
    assert h.engine.positions["BTC/USDT"].size == Decimal("0.08")


def test_rejections_end_the_working_order_after_the_limit(
    live: Callable[..., Harness], venue: FakeTradingVenue
) -> None:
    h = live(sweep_interval_s=0.1)
    venue.reject_next(3)
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    for _ in range(3):
        h.advance(0.6)
        h.book("BTC/USDT", "100.00", "100.01")
    states = [s.order.state for s in h.orders()]
    assert states == [OrderState.REJECTED] * 3
    assert h.engine.works == {}
    assert any("3 rejections" in d.reason for d in h.engine.decisions)


def test_post_only_that_would_cross_is_rejected_by_the_venue(
    live: Callable[..., Harness], venue: FakeTradingVenue
) -> None:
    h = live(sweep_interval_s=0.1)
    venue.set_book("BTC/USDT", "99.90", "100.00")  # the venue's book moved: our bid would take
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    [stored] = h.orders()
    assert stored.order.state is OrderState.REJECTED
    assert "immediately match" in (stored.order.reject_reason or "")


def test_rate_limit_backs_off_and_retries(live: Callable[..., Harness], venue: FakeTradingVenue) -> None:
    h = live()
    venue.rate_limit_next(2)
    balances = h.engine.broker.balances()
    assert balances["USDT"] == Decimal(10_000)
    requests, errors = h.engine.broker.api_health(datetime.now(UTC))
    assert errors == 2 and requests >= 3


def test_api_error_rate_pauses_entries(live: Callable[..., Harness], venue: FakeTradingVenue) -> None:
    h = live(graduated(), request_retries=0)
    for _ in range(20):
        h.engine.broker.balances()
    venue.rate_limit_next(2)
    for _ in range(2):
        with pytest.raises(BrokerError):
            h.engine.broker.balances()
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    assert h.engine.decisions[-1].action == "blocked"
    assert h.engine.last_verdict is not None and Switch.API_ERROR_RATE in h.engine.last_verdict.active


def test_clean_start_cancels_every_open_order_of_the_account(
    live: Callable[..., Harness], venue: FakeTradingVenue
) -> None:
    # Arrange: one order of ours from a previous session (in the store, live) and one nobody knows.
    first = live(sweep_interval_s=0.1)
    first.book("BTC/USDT", "100.00", "100.01")
    first.signal("BTC/USDT")
    ours = first.orders()[0].order.client_order_id
    venue.place_foreign_order("ETH/USDT", "BUY", "50.00", "1", "manual123")
    assert len(venue.open_orders()) == 2

    # Act: a new process on the same store starts.
    second = live(start=False, sweep_interval_s=0.1)
    second.engine.store.close()
    second.engine.store = first.engine.store
    second.engine.start(background=False)

    # Assert
    assert venue.open_orders() == []
    [stored] = second.orders()
    assert stored.order.client_order_id == ours and stored.order.state is OrderState.CANCELLED
    unknown = [a for a in second.store.alerts() if a.kind == "clean_start"]
    assert len(unknown) == 1 and "manual123" in unknown[0].message


def test_reconciliation_mismatch_the_venue_wins_and_an_alert_is_recorded(
    live: Callable[..., Harness], venue: FakeTradingVenue
) -> None:
    h = live(sweep_interval_s=0.1)
    venue.set_book("BTC/USDT", "100.00", "100.01")
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    venue.trade("BTC/USDT", "99.99", "1")
    h.advance(0.2)
    assert h.engine.positions["BTC/USDT"].size == Decimal("0.08")

    venue.set_balance("BTC", Decimal("0.05"))  # someone sold 0.03 BTC outside the engine
    mismatches = h.engine.reconcile(h.clock.now)

    assert mismatches == ["BTC/USDT: local 0.08 vs venue 0.05 BTC"]
    assert h.engine.positions["BTC/USDT"].size == Decimal("0.05")
    assert h.store.load_positions()["BTC/USDT"].size == Decimal("0.05")
    assert any(a.kind == "reconcile_mismatch" and "venue's figure wins" in a.message for a in h.store.alerts())


def broker_for(venue: FakeTradingVenue, secret: str | None = None) -> LiveBroker:
    broker = LiveBroker(
        "binance",
        SecretStr(TEST_API_KEY),
        SecretStr(secret or venue.api_secret),
        order_cfg=OrderConfig(),
        api_url=venue.base_url,
        backoff_s=0.01,
    )
    broker.exchange.enableRateLimit = False
    return broker


def test_order_below_the_venue_minimum_is_never_sent(venue: FakeTradingVenue) -> None:
    broker = broker_for(venue)
    now = datetime.now(UTC)
    tiny = Order("at" + "0" * 32, "BTC/USDT", Side.BUY, OrderKind.POST_ONLY, Decimal("100"), Decimal("0.04"), now)
    [event] = broker.place(tiny, now)
    assert "below venue minimum" in getattr(event, "reason", "")
    assert posts(venue) == []


def test_wrong_secret_is_refused_by_the_venue(venue: FakeTradingVenue) -> None:
    broker = broker_for(venue, "wrong")
    with pytest.raises(BrokerError, match="AuthenticationError"):
        broker.balances()


def test_market_metadata_comes_from_the_venue(venue: FakeTradingVenue) -> None:
    broker = broker_for(venue)
    market = broker.market("ETH/USDT")
    assert (market.tick_size, market.lot_size, market.min_notional) == (
        Decimal("0.01"),
        Decimal("0.00001"),
        Decimal("5"),
    )
    assert market.venue_symbol_id == "ETHUSDT"
    loads = [p for m, p, _ in venue.requests if p == "/api/v3/exchangeInfo"]
    broker.market("BTC/USDT")
    assert len([p for m, p, _ in venue.requests if p == "/api/v3/exchangeInfo"]) == len(loads)  # cached


def test_a_trading_config_is_required_to_be_valid() -> None:
    with pytest.raises(ValueError):
        TradingConfig(orders=OrderConfig(taker_fallback_after_seconds=100))


def test_partial_fill_then_venue_drops_the_order_rest_is_requoted_at_the_same_price(
    live: Callable[..., Harness], venue: FakeTradingVenue
) -> None:
    h = live(TradingConfig(orders=OrderConfig(taker_fallback_enabled=False)), sweep_interval_s=0.1)
    venue.set_book("BTC/USDT", "100.00", "100.01")
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    venue.trade("BTC/USDT", "99.99", "0.03")
    first = h.orders()[0].order
    venue_order = venue.order_by_client_id(first.client_order_id)
    assert venue_order is not None
    venue._unlock_rest(venue_order)  # the venue expires the rest of the order (e.g. a maintenance sweep)
    venue_order.status = "EXPIRED"
    h.advance(0.2)
    h.advance(0.6)
    h.book("BTC/USDT", "100.00", "100.01")
    first, second = (s.order for s in h.orders())
    assert first.state is OrderState.EXPIRED and first.filled == Decimal("0.03")
    assert second.kind is OrderKind.POST_ONLY and second.price == first.price and second.size == Decimal("0.05")


def test_stale_order_sweep_resends_an_unconfirmed_cancel(live: Callable[..., Harness], venue: FakeTradingVenue) -> None:
    h = live(TradingConfig(orders=OrderConfig(taker_fallback_enabled=False)), sweep_interval_s=0.1)
    venue.set_book("BTC/USDT", "100.00", "100.01")
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    h.clock.advance(60)
    venue.drop_next(4)  # the TTL cancel (and its retries) never get an answer
    h.book("BTC/USDT", "100.00", "100.01")
    [stored] = h.orders()
    assert stored.order.state is OrderState.CANCEL_REQUESTED
    assert venue.open_orders() != []
    h.advance(6)  # cancel unconfirmed for > 5 s: a zombie; the sweep sends the cancel again
    [stored] = h.orders()
    assert stored.order.state is OrderState.CANCELLED
    assert venue.open_orders() == []


def test_paper_market_source_does_not_hammer_an_unreachable_venue(venue: FakeTradingVenue) -> None:
    from serving.engine.live_broker import CcxtMarkets

    venue.__exit__()  # the venue goes away
    markets = CcxtMarkets("binance", venue.base_url, timeout_s=1)
    with pytest.raises(BrokerError, match="load_markets failed"):
        markets("BTC/USDT")
    with pytest.raises(BrokerError, match="retrying later"):
        markets("BTC/USDT")


def test_no_entry_until_the_clean_start_succeeds(live: Callable[..., Harness], venue: FakeTradingVenue) -> None:
    venue.place_foreign_order("ETH/USDT", "BUY", "50.00", "1", "leftover1")
    h = live(start=False, sweep_interval_s=0.1, request_retries=0)
    venue.drop_next(2)  # the venue answers neither the balance nor the open-orders listing at start
    h.engine.start(background=False)
    assert h.engine.clean_started is False
    status = h.engine.status()
    assert status.entries_allowed is False and any("clean start" in r for r in status.reasons)
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    assert posts(venue) == [] and "clean start" in h.engine.decisions[-1].reason
    h.advance(0.2)  # the sweep retries
    assert h.engine.clean_started is True and venue.open_orders() == []
    assert h.engine.status().entries_allowed is True


def test_no_entry_until_the_first_reconciliation_succeeds(
    live: Callable[..., Harness], venue: FakeTradingVenue
) -> None:
    h = live(start=False, sweep_interval_s=0.1, request_retries=0, reconcile_interval_s=5)
    venue.drop_next(3)  # balance, open-orders listing and the reconciliation's balances all go unanswered
    h.engine.start(background=False)
    h.advance(0.2)  # the sweep's clean start succeeds; the reconciliation is not due yet
    assert h.engine.clean_started is True
    status = h.engine.status()
    assert status.entries_allowed is False and status.reconciled is False
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    assert posts(venue) == [] and "reconciliation" in h.engine.decisions[-1].reason
    h.advance(5)  # the reconciliation runs again and succeeds
    assert h.engine.status().entries_allowed is True
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    assert len(posts(venue)) == 1
