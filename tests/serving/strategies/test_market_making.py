"""The Avellaneda-Stoikov strategy against a small, honest StrategyContext (`fake_context.BookContext`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.trading.instruments import MarketInfo, Side
from pipelines.trading.market_making.config import MarketMakingConfig
from pipelines.trading.orders import OrderState
from serving.engine.events import BookEvent, TradeEvent
from serving.engine.strategy import (
    ExecutionStyle,
    OrderUpdate,
    Strategy,
)
from serving.strategies.market_making import MarketMakingStrategy, build_market_making
from tests.serving.strategies.fake_context import BookContext

T0 = datetime(2024, 8, 9, 0, 0, tzinfo=UTC)
MARKET = MarketInfo(
    symbol="ETH/USDT",
    venue_symbol_id="ETHUSDT",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("0.1"),
    min_notional=Decimal("5"),
    maker_fee=Decimal("0.001"),
    taker_fee=Decimal("0.001"),
)
# 20 USDT at ~150 is 0.133, one 0.1 lot: one clip = 0.1 ETH, the cap 5 clips = 0.5 ETH.
CFG = MarketMakingConfig(symbol="ETH/USDT", gamma=0.1, order_notional=Decimal("20"), max_inventory_clips=5)
CAP = Decimal("0.5")


def started() -> tuple[MarketMakingStrategy, BookContext]:
    strategy = MarketMakingStrategy("mm-test", CFG)
    ctx = BookContext(MARKET, T0)
    strategy.on_start(ctx)
    return strategy, ctx


def test_it_is_a_strategy_and_the_factory_builds_it_from_a_mapping() -> None:
    built = build_market_making("mm-1", {"symbol": "ETH/USDT", "gamma": 0.05})
    assert isinstance(built, Strategy) and built.strategy_id == "mm-1" and built.cfg.gamma == 0.05


def test_a_fresh_book_gets_two_post_only_quotes_that_do_not_cross() -> None:
    strategy, ctx = started()
    ctx.send_book(strategy, "150.00", "150.10")
    quotes = ctx.quotes()
    assert set(quotes) == {Side.BUY, Side.SELL}
    assert quotes[Side.BUY].price is not None and quotes[Side.BUY].price < Decimal("150.10")
    assert quotes[Side.SELL].price is not None and quotes[Side.SELL].price > Decimal("150.00")
    assert all(i.post_only and i.style is ExecutionStyle.LIMIT for i in ctx.submitted)


def test_keeps_quoting_through_a_dropped_and_reconnected_stream() -> None:
    strategy, ctx = started()
    ctx.send_book(strategy, "150.00", "150.10")
    assert len(ctx.quotes()) == 2
    # The stream drops: no book for 5 s. The timer sees a stale book and pulls both quotes.
    ctx.clock += timedelta(seconds=5)
    strategy.on_timer(ctx, ctx.clock)
    assert ctx.quotes() == {} and any("stale" in reason for _, reason in ctx.records)
    ctx.confirm_cancels(strategy)
    sent = len(ctx.submitted)
    ctx.clock += timedelta(seconds=10)
    strategy.on_timer(ctx, ctx.clock)
    assert len(ctx.submitted) == sent  # nothing is quoted on a stale book
    # Reconnected: the first fresh book resumes quoting at once.
    ctx.send_book(strategy, "150.20", "150.30")
    quotes = ctx.quotes()
    assert set(quotes) == {Side.BUY, Side.SELL} and quotes[Side.BUY].price is not None
    assert quotes[Side.BUY].price < Decimal("150.30") and len(ctx.submitted) == sent + 2


def test_refreshes_on_a_mid_move_or_after_thirty_seconds_but_not_in_between() -> None:
    strategy, ctx = started()
    ctx.send_book(strategy, "150.00", "150.10")
    sent = len(ctx.submitted)
    ctx.send_book(strategy, "150.00", "150.11")  # a move below the threshold
    assert len(ctx.submitted) == sent and not ctx.cancel_requested
    ctx.send_book(strategy, "151.00", "151.10")  # 0.66%: past the 0.05% threshold
    assert ctx.cancel_requested and len(ctx.submitted) > sent


def test_a_fill_skews_both_quotes_down_and_the_cap_holds() -> None:
    strategy, ctx = started()
    ctx.send_book(strategy, "150.00", "150.10")
    before = strategy.last_plan
    ctx.fill(strategy, ctx.quotes()[Side.BUY].order_id)
    after = strategy.last_plan
    assert ctx.pos == Decimal("0.1") and before is not None and after is not None
    assert after.reservation < before.reservation and after.q == 1.0


def test_refusals_are_recorded_and_a_reducing_quote_still_goes_as_an_exit() -> None:
    strategy, ctx = started()
    ctx.pos = Decimal("0.2")
    ctx.blocked = "daily loss limit: no new entries"
    ctx.send_book(strategy, "150.00", "150.10")
    quotes = ctx.quotes()
    assert Side.BUY not in quotes and any("entries not allowed" in r for _, r in ctx.records)
    assert Side.SELL in quotes and ctx.submitted[-1].is_exit
    # A refusal from the risk component itself (here: a book that moved under the quote) is recorded.
    strategy2, ctx2 = started()
    ctx2.latest = BookEvent("ETH/USDT", Decimal("149.00"), Decimal("149.05"), Decimal(1), Decimal(1), T0)
    ctx2.clock = T0
    strategy2._book = BookEvent("ETH/USDT", Decimal("150.00"), Decimal("150.10"), Decimal(1), Decimal(1), T0)
    strategy2.on_timer(ctx2, T0)
    assert ctx2.refusals and any(action == "quote refused" for action, _ in ctx2.records)


actions = st.lists(
    st.tuples(
        st.sampled_from(["book", "fill_bid", "fill_ask", "partial_bid", "confirm", "timer"]),
        st.integers(-30, 30),
    ),
    max_size=60,
)


@settings(max_examples=60)
@given(steps=actions)
def test_inventory_never_exceeds_the_cap_whatever_fills(steps: list[tuple[str, int]]) -> None:
    strategy, ctx = started()
    ctx.send_book(strategy, "150.00", "150.10")
    mid_ticks = 15005
    for action, move in steps:
        if action == "book":
            mid_ticks = min(max(mid_ticks + move, 14000), 16000)
            ctx.send_book(strategy, str(Decimal(mid_ticks - 5) / 100), str(Decimal(mid_ticks + 5) / 100))
        elif action in ("fill_bid", "fill_ask", "partial_bid"):
            side = Side.BUY if action != "fill_ask" else Side.SELL
            resting = [o for o in ctx.orders.values() if o.side is side]  # cancel requested or not: it can fill
            if resting:
                part = resting[0].remaining / 2 if action == "partial_bid" else None
                part = part if part and part % MARKET.lot_size == 0 else None
                ctx.fill(strategy, resting[0].order_id, part)
        elif action == "confirm":
            ctx.confirm_cancels(strategy)
        else:
            ctx.clock += timedelta(seconds=31)
            ctx.send_book(strategy, str(Decimal(mid_ticks - 5) / 100), str(Decimal(mid_ticks + 5) / 100), after=0)
        buys = sum((o.remaining for o in ctx.orders.values() if o.side is Side.BUY), Decimal(0))
        sells = sum((o.remaining for o in ctx.orders.values() if o.side is Side.SELL), Decimal(0))
        assert -CAP <= ctx.pos <= CAP
        assert ctx.pos + buys <= CAP and ctx.pos - sells >= -CAP  # even if every resting order fills


def test_trades_feed_the_intensity_fit_against_the_mid_before_them() -> None:
    strategy, ctx = started()
    ctx.send_book(strategy, "150.00", "150.10")
    strategy.on_trade(ctx, TradeEvent("ETH/USDT", Decimal("150.30"), Decimal("1"), ctx.clock, Side.BUY))
    strategy.on_trade(ctx, TradeEvent("BTC/USDT", Decimal("1"), Decimal("1"), ctx.clock, Side.BUY))  # not ours
    assert [round(o[2], 6) for o in strategy.intensity._orders] == [0.25]


def test_stop_cancels_every_quote() -> None:
    strategy, ctx = started()
    ctx.send_book(strategy, "150.00", "150.10")
    strategy.on_stop(ctx)
    assert ctx.quotes() == {} and len(ctx.cancel_requested) == 2


def test_a_rejected_quote_waits_for_the_next_refresh_instead_of_looping() -> None:
    strategy, ctx = started()
    ctx.send_book(strategy, "150.00", "150.10")
    bid = ctx.quotes()[Side.BUY]
    del ctx.orders[bid.order_id]  # the venue rejects it (e.g. post-only would have crossed)
    strategy.on_order_update(
        ctx,
        OrderUpdate(
            bid.order_id,
            bid.order_id,
            "",
            "ETH/USDT",
            Side.BUY,
            OrderState.REJECTED,
            Decimal(0),
            Decimal(0),
            ctx.clock,
            "would cross",
        ),
    )
    sent = len(ctx.submitted)
    ctx.send_book(strategy, "150.00", "150.10")
    assert len(ctx.submitted) == sent  # not re-sent on the very next book
    ctx.send_book(strategy, "150.00", "150.10", after=30)
    assert Side.BUY in ctx.quotes()  # the 30 s refresh quotes the side again


def test_the_nightly_table_seeds_the_estimators(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    path = tmp_path / "mm_params.json"
    path.write_text(json.dumps({"params": {"binance/ETH/USDT": {"A": 4.0, "k": 2.5, "sigma": 0.3, "orders": 900}}}))
    strategy = MarketMakingStrategy("mm-test", CFG.model_copy(update={"params_path": path}))
    strategy.on_start(BookContext(MARKET, T0))
    assert strategy.intensity.current(0.0).k == 2.5 and strategy.vol.prior == 0.3


def test_a_kill_switch_firing_mid_quote_pulls_the_entry_side_at_once() -> None:
    strategy, ctx = started()
    ctx.pos = Decimal("0.1")
    ctx.send_book(strategy, "150.00", "150.10")
    bid, ask = ctx.quotes()[Side.BUY], ctx.quotes()[Side.SELL]
    ctx.blocked = "max drawdown: halt"
    strategy.on_timer(ctx, ctx.clock + timedelta(seconds=1))  # no refresh is due, the block is enough
    assert bid.order_id in ctx.cancel_requested
    assert ask.order_id not in ctx.cancel_requested  # selling 0.1 of a 0.1 long only reduces


def test_snapshot_reports_inventory_spread_and_quotes() -> None:
    strategy, ctx = started()
    assert strategy.snapshot()["quoting"] is False and strategy.snapshot()["pulled_reason"] == "no book yet"
    ctx.send_book(strategy, "150.00", "150.10")
    snap = strategy.snapshot()
    assert snap["quoting"] and set(snap["quotes"]) == {"buy", "sell"} and snap["q_clips"] == 0.0
    assert snap["spread"] > 0 and snap["k_source"] == "prior"
