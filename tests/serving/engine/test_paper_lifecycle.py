"""Order lifecycle and the strategy loop through the runtime on the paper broker (SPEC 9 and 11)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import pytest

from pipelines.trading.orders import Order, OrderKind, OrderState, VenueEvent
from serving.engine.broker import PaperBroker
from serving.engine.live_broker import CcxtMarkets
from tests.fakes.trading_venue import FakeTradingVenue
from tests.serving.engine.conftest import Harness


def test_entry_is_post_only_at_the_bid_and_written_before_it_is_sent(paper: Callable[..., Harness]) -> None:
    # Arrange: a broker that checks the store at the moment an order is placed.
    h = paper()
    seen_in_store: list[bool] = []
    broker = h.engine.broker
    assert isinstance(broker, PaperBroker)
    original = broker.place

    def place(order: Order, now: datetime) -> list[VenueEvent]:
        seen_in_store.append(bool(h.store.known_client_ids([order.client_order_id])))
        return original(order, now)

    broker.place = place  # type: ignore[method-assign]
    h.book("BTC/USDT", "100.00", "100.01")

    # Act
    h.signal("BTC/USDT", p_up=0.8)

    # Assert
    [stored] = h.orders()
    assert seen_in_store == [True]
    assert stored.order.kind is OrderKind.POST_ONLY and stored.order.price == Decimal("100.00")
    assert stored.purpose == "entry"
    # phase 1 caps: Kelly 0.05 x confidence 0.8 of a 200 bankroll = 8 USDT -> 0.08 BTC at 100
    assert stored.order.size == Decimal("0.08")
    assert stored.order.client_order_id.startswith("at") and len(stored.order.client_order_id) == 34


def test_no_entry_when_expected_value_is_below_the_threshold(paper: Callable[..., Harness]) -> None:
    h = paper()
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT", p_up=0.6)
    assert h.orders() == []
    assert h.engine.decisions[-1].action == "skip" and "E=" in h.engine.decisions[-1].reason


def test_fill_only_when_the_market_trades_through_then_take_profit_closes_the_trade(
    paper: Callable[..., Harness],
) -> None:
    h = paper()
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    h.advance(0.1)
    h.trade("BTC/USDT", "100.00", "10")  # at our price: not proof our place in the queue was reached
    assert "BTC/USDT" not in h.engine.positions

    h.trade("BTC/USDT", "99.99", "0.05")  # through it, for less than our size: partial
    pos = h.engine.positions["BTC/USDT"]
    assert pos.size == Decimal("0.05") and pos.entry_price == Decimal("100.00")
    h.trade("BTC/USDT", "99.98", "1")
    assert h.engine.positions["BTC/USDT"].size == Decimal("0.08")

    # Take profit at +0.7%: the exit is a post-only sell at the ask, filled by a trade through it.
    h.clock.advance(30)
    h.book("BTC/USDT", "100.80", "100.81")
    exit_order = h.orders()[-1].order
    assert exit_order.side.value == "sell" and exit_order.kind is OrderKind.POST_ONLY
    h.advance(0.1)
    h.trade("BTC/USDT", "100.82", "1")
    assert "BTC/USDT" not in h.engine.positions
    [closed] = h.store.closed_trades()
    fees = Decimal("0.08") * (Decimal("100.00") + Decimal("100.81")) * Decimal("0.001")
    assert closed.net_pnl == Decimal("0.08") * Decimal("0.81") - fees
    assert "take_profit" in closed.exit_reason
    assert h.directional.kelly.state().recent_returns == (closed.net_return,)
    assert h.engine.cash == Decimal(10_000) + closed.net_pnl


def test_time_to_live_cancels_and_the_intent_expires(paper: Callable[..., Harness]) -> None:
    from pipelines.trading.config import OrderConfig, TradingConfig

    h = paper(TradingConfig(orders=OrderConfig(taker_fallback_enabled=False)))
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    h.advance(0.1)
    for _ in range(12):  # a minute of quiet book updates
        h.clock.advance(5)
        h.book("BTC/USDT", "100.00", "100.01")
    h.advance(0.1)
    h.advance(1)
    [stored] = h.orders()
    assert stored.order.state is OrderState.CANCELLED
    assert h.engine.works == {}
    assert any(d.action == "entry_done" and "time to live" in d.reason for d in h.engine.decisions)


def test_partial_fill_then_taker_fallback_within_one_tick_after_the_cancel_delay(
    paper: Callable[..., Harness],
) -> None:
    h = paper()
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    h.advance(0.1)
    h.trade("BTC/USDT", "99.99", "0.02")  # 25% filled
    h.clock.advance(10)
    h.book("BTC/USDT", "100.00", "100.01")  # 10 s, < 80% filled: cancel the maker for a taker
    h.advance(0.1)  # the cancel lands
    h.advance(0.2)  # still inside the 500 ms cancel delay: nothing placed
    assert len(h.orders()) == 1
    h.advance(0.4)
    h.advance(0.1)  # the IOC activates against the book
    maker, taker = (s.order for s in h.orders())
    assert maker.state is OrderState.CANCELLED and maker.filled == Decimal("0.02")
    assert taker.kind is OrderKind.IOC and taker.size == Decimal("0.06")
    assert taker.price <= Decimal("100.02")  # at most one tick beyond the touch
    assert maker.closed_at is not None
    assert (taker.created_at - maker.closed_at).total_seconds() >= 0.5
    assert taker.state is OrderState.FILLED
    assert h.engine.positions["BTC/USDT"].size == Decimal("0.08")


def test_below_min_notional_is_not_sent(paper: Callable[..., Harness]) -> None:
    # 200 bankroll x Kelly 0.05 x 0.8 = 8 USDT; at a per-trade cap of 4 USDT < the 5 USDT minimum
    from pipelines.trading.config import DeploymentConfig, KillSwitchConfig, PhaseCap, TradingConfig

    tiny = PhaseCap(name="tiny", bankroll=Decimal(200), max_trade_notional=Decimal(4), max_daily_loss=Decimal(10))
    h = paper(TradingConfig(kill=KillSwitchConfig(deployment=DeploymentConfig(phases=(tiny,), active_phase=1))))
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT", p_up=0.55 + 0.25)
    assert h.orders() == []
    assert "below venue minimum" in h.engine.decisions[-1].reason


def test_graceful_shutdown_cancels_resting_orders_and_persists(
    paper: Callable[..., Harness], market_venue: FakeTradingVenue
) -> None:
    h = paper()
    h.open_long("ETH/USDT")
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    h.advance(0.1)
    h.engine.shutdown()
    states = {s.order.symbol: s.order.state for s in h.orders()}
    assert states["BTC/USDT"] is OrderState.CANCELLED
    # The position and counters are in the store for the next process.
    from serving.engine.store import TradingStore

    store = TradingStore.sqlite_file(h.settings.home / "trading" / "engine.db")
    assert store.load_positions()["ETH/USDT"].size > 0
    assert "kelly" in store.get_state("strategy:directional") and store.get_state("deployment_phase") == 1


def test_restart_restores_positions_counters_and_paper_balances(
    paper: Callable[..., Harness], market_venue: FakeTradingVenue
) -> None:
    h = paper()
    h.open_long("ETH/USDT")
    h.engine.kill("test")
    cash = h.engine.cash
    h.engine.shutdown()
    from serving.engine import build_engine

    broker = PaperBroker(
        CcxtMarkets("binance", market_venue.base_url), h.settings.engine.trading.paper, "USDT", Decimal(10_000)
    )
    again = build_engine(h.settings, clock=h.clock, broker=broker)
    again.start(background=False)
    assert again.positions["ETH/USDT"].size == h.engine.positions["ETH/USDT"].size
    assert again.manual_kill is True and again.cash == cash
    assert again.reconcile(h.clock.now) == []  # paper balances restored: nothing to correct
    again.shutdown()


@pytest.mark.parametrize("p_up", [0.3, 0.49])
def test_spot_is_long_only(paper: Callable[..., Harness], p_up: float) -> None:
    h = paper()
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT", p_up=p_up)
    assert h.orders() == [] and "long only" in h.engine.decisions[-1].reason


def test_an_entry_correlated_with_an_open_position_is_halved(paper: Callable[..., Harness]) -> None:
    from tests.serving.engine.conftest import graduated

    h = paper(graduated(), correlation_sample_s=1.0, correlation_min_samples=5)
    h.open_long("BTC/USDT")
    # BTC and ETH move together, SOL against them.
    for i in range(12):
        up = Decimal(i % 3) * Decimal("0.10")
        h.book("BTC/USDT", str(Decimal("100.00") + up), str(Decimal("100.01") + up))
        h.book("ETH/USDT", str(Decimal("100.00") + up * 2), str(Decimal("100.01") + up * 2))
        h.book("SOL/USDT", str(Decimal("100.30") - up), str(Decimal("100.31") - up))
        h.advance(1)
    held = list(h.engine.positions)
    assert (h.directional.max_correlation_with_open("ETH/USDT", held) or 0) > 0.8
    assert (h.directional.max_correlation_with_open("SOL/USDT", held) or 0) < 0.8
    h.signal("ETH/USDT")
    h.signal("SOL/USDT")
    eth, sol = h.orders("ETH/USDT")[-1].order, h.orders("SOL/USDT")[-1].order
    assert eth.size * eth.price * 2 == pytest.approx(sol.size * sol.price, rel=Decimal("0.01"))


def test_a_replay_runs_on_the_events_own_time(tmp_path, market_venue: FakeTradingVenue) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, timedelta

    from pipelines.config import load_settings
    from serving.engine import ReplayClock, build_engine
    from serving.engine.events import BookEvent, SignalEvent, TradeEvent

    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    settings = load_settings({}, home=tmp_path)
    broker = PaperBroker(
        CcxtMarkets("binance", market_venue.base_url), settings.engine.trading.paper, "USDT", Decimal(10_000)
    )
    engine = build_engine(settings, clock=ReplayClock(t0), broker=broker)
    engine.start(background=False)
    engine.handle(BookEvent("BTC/USDT", Decimal("100.00"), Decimal("100.01"), Decimal(5), Decimal(5), t0))
    engine.handle(SignalEvent("BTC/USDT", 0.8, t0 + timedelta(milliseconds=10)))
    engine.handle(TradeEvent("BTC/USDT", Decimal("99.99"), Decimal(1), t0 + timedelta(seconds=1)))
    assert engine.positions["BTC/USDT"].size == Decimal("0.08")
    assert engine.positions["BTC/USDT"].opened_at == t0 + timedelta(seconds=1)
    engine.shutdown()
