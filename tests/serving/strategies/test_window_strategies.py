"""Window-market strategies through a StrategyContext: entries, cutoff, refusals, settlement, quotes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pipelines.domain.window_market import Outcome, outcome_handle
from pipelines.trading.instruments import Side
from serving.engine.events import BookEvent, SignalEvent, TradeEvent
from serving.engine.strategy import ExecutionStyle, Strategy, TimeInForce
from serving.strategies.window import build_window_directional
from serving.strategies.window_mm import build_window_mm
from tests.serving.strategies.context import HonestContext

T0 = 1_700_000_100
D = Decimal
UP, DOWN = outcome_handle(T0, Outcome.UP), outcome_handle(T0, Outcome.DOWN)


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def _ctx(now: float, sid: str = "window") -> HonestContext:
    ctx = HonestContext(sid, [at(now)])
    _books(ctx, T0, now)
    return ctx


def _books(ctx: HonestContext, start: int, now: float) -> None:
    for outcome, bid, ask in ((Outcome.UP, "0.50", "0.52"), (Outcome.DOWN, "0.46", "0.50")):
        ctx.books[("polymarket", outcome_handle(start, outcome))] = BookEvent(
            outcome_handle(start, outcome), D(bid), D(ask), D(100), D(100), at(now), venue="polymarket"
        )


def _signal(strategy: Strategy, ctx: HonestContext, p: float, tradeable: bool = True) -> None:
    strategy.on_signal(ctx, SignalEvent("btc-updown-5m", p, ctx.now(), tradeable=tradeable))


def _print(strategy: Strategy, ctx: HonestContext, seconds: float, price: str) -> None:
    ctx.clock[0] = at(seconds)
    strategy.on_trade(ctx, TradeEvent("BTC/USDT", D(price), D("0.1"), at(seconds), venue="binance"))


# ---- directional -----------------------------------------------------------------------------------
def test_enters_quarter_kelly_through_submit_once_per_window() -> None:
    ctx = _ctx(60)
    strategy = build_window_directional("window", {})
    assert isinstance(strategy, Strategy) and isinstance(build_window_mm("mm", {}), Strategy)
    strategy.on_start(ctx)
    _signal(strategy, ctx, 0.65)  # edge 0.13 at 0.52: f 0.0677 -> $13.54, capped by the $10 daily-loss budget
    assert len(ctx.submitted) == 1
    intent = ctx.submitted[0]
    assert (intent.symbol, intent.side, intent.price, intent.size) == (UP, Side.BUY, D("0.52"), D("19.23"))
    assert (intent.style, intent.time_in_force, intent.post_only, intent.venue) == (
        ExecutionStyle.LIMIT,
        TimeInForce.IOC,
        False,
        "polymarket",
    )
    _signal(strategy, ctx, 0.70)
    assert len(ctx.submitted) == 1  # one entry per window


def test_no_entry_in_the_last_seconds_nor_on_an_untradeable_signal() -> None:
    late = _ctx(300 - 25)
    strategy = build_window_directional("window", {})
    _signal(strategy, late, 0.8)
    assert late.submitted == []
    early = _ctx(60)
    _signal(strategy, early, 0.8, tradeable=False)
    assert early.submitted == []


def test_a_refused_entry_is_recorded_and_not_hammered() -> None:
    ctx = _ctx(60)
    ctx.kill_reason = "kill switch: daily loss"
    strategy = build_window_directional("window", {})
    _signal(strategy, ctx, 0.8)
    _signal(strategy, ctx, 0.8)
    assert ctx.submitted == [] and ctx.orders == {}
    assert [r[0] for r in ctx.records] == ["refused"] and "daily loss" in ctx.records[0][1]
    ctx.kill_reason = None
    ctx.clock[0] = at(66)
    _books(ctx, T0, 66)
    _signal(strategy, ctx, 0.8)
    assert len(ctx.submitted) == 1  # retried after retry_after_s


def _filled_up_position(close: str) -> tuple[HonestContext, Strategy]:
    ctx = _ctx(60)
    strategy = build_window_directional("window", {})
    _print(strategy, ctx, -2, "60000")
    _print(strategy, ctx, 5, "60005")  # first print of the window: its open is 60000
    ctx.clock[0] = at(60)
    _signal(strategy, ctx, 0.65)
    order_id = next(iter(ctx.orders))
    ctx.fill(strategy, order_id, D("19.23"), D("0.52"))
    _print(strategy, ctx, 299, close)
    _print(strategy, ctx, 301, close)  # the first print after the end settles the window
    return ctx, strategy


def test_settlement_credits_the_winning_side_up() -> None:
    ctx, _ = _filled_up_position("60001")
    settles = [r for r in ctx.records if r[0] == "settle"]
    assert len(settles) == 1 and "resolved Up" in settles[0][1]
    assert "payout 19.23" in settles[0][1] and "pnl 9.2304" in settles[0][1]
    assert [(r.settled_side, r.payout, r.pnl) for r in ctx.settled] == [("Up", D("19.23"), D("9.2304"))]


def test_a_settled_window_is_not_entered_again_while_the_engine_clock_lags_the_reference() -> None:
    # Arrange: the window settled on the reference's print past its end; the engine's clock is still inside it.
    ctx, strategy = _filled_up_position("60001")
    ctx.clock[0] = at(200)
    _books(ctx, T0, 200)
    # Act: a fresh strong signal for the same window.
    _signal(strategy, ctx, 0.9)
    # Assert: no second order (before the guard, the settled position's entry count was gone and it re-entered).
    assert len(ctx.submitted) == 1


def test_settlement_on_a_tie_is_up_and_a_loss_consumes_the_daily_budget() -> None:
    tie, _ = _filled_up_position("60000")
    assert "resolved Up" in next(r for r in tie.records if r[0] == "settle")[1]
    ctx, strategy = _filled_up_position("59999")
    settle = next(r for r in ctx.records if r[0] == "settle")[1]
    assert "resolved Down" in settle and "pnl -9.9996" in settle
    assert ctx.saved["pnl_today"] == "-9.9996"
    # the next window: only 0.0004 of the $10 budget is left, below the venue minimum: no entry
    ctx.clock[0] = at(360)
    _books(ctx, T0 + 300, 360)
    _signal(strategy, ctx, 0.9)
    assert len(ctx.submitted) == 1


# ---- market maker -----------------------------------------------------------------------------------
def _bids(ctx: HonestContext) -> dict[str, tuple[Decimal | None, Decimal]]:
    return {o.symbol: (o.price, o.remaining) for o in ctx.open_orders()}


def test_maker_quotes_both_sides_around_the_model_and_keeps_them() -> None:
    ctx = _ctx(60, "mm")
    mm = build_window_mm("mm", {})
    _signal(mm, ctx, 0.60)
    assert _bids(ctx) == {UP: (D("0.58"), D(20)), DOWN: (D("0.38"), D(20))}  # Up offered at 0.62
    assert all(i.post_only and i.style is ExecutionStyle.LIMIT for i in ctx.submitted)
    mm.on_timer(ctx, ctx.now())
    assert len(ctx.submitted) == 2 and ctx.cancelled == []


def test_maker_skews_against_inventory() -> None:
    ctx = _ctx(60, "mm")
    mm = build_window_mm("mm", {})
    _signal(mm, ctx, 0.60)
    up_order = next(oid for oid, (i, _) in ctx.orders.items() if i.symbol == UP)
    ctx.fill(mm, up_order, D(20), D("0.58"))  # long 20 Up: 2 cents of skew
    assert _bids(ctx) == {UP: (D("0.56"), D(20)), DOWN: (D("0.40"), D(20))}
    assert any(reason == "requote" for _, reason in ctx.cancelled)


def test_maker_pulls_quotes_before_resolution_and_on_a_kill_switch() -> None:
    ctx = _ctx(60, "mm")
    mm = build_window_mm("mm", {})
    _signal(mm, ctx, 0.60)
    ctx.clock[0] = at(300 - 19)
    mm.on_timer(ctx, ctx.now())
    assert ctx.open_orders() == [] and any(r[0] == "pull" for r in ctx.records)
    fresh = _ctx(60, "mm")
    mm2 = build_window_mm("mm", {})
    _signal(mm2, fresh, 0.60)
    fresh.kill_reason = "manual kill"
    mm2.on_timer(fresh, fresh.now())
    assert fresh.open_orders() == []
    _signal(mm2, fresh, 0.61)
    assert fresh.open_orders() == [] and len(fresh.submitted) == 2


def test_maker_quotes_stay_inside_the_band_at_extreme_probabilities() -> None:
    ctx = _ctx(60, "mm")
    mm = build_window_mm("mm", {})
    _signal(mm, ctx, 0.999)
    prices = [o.price for o in ctx.open_orders()]
    assert prices and all(p is not None and D("0.01") <= p <= D("0.99") for p in prices)


def test_maker_cancels_quotes_of_a_past_window() -> None:
    ctx = _ctx(60, "mm")
    mm = build_window_mm("mm", {})
    _signal(mm, ctx, 0.60)
    ctx.clock[0] = at(310)
    _books(ctx, T0 + 300, 310)
    _signal(mm, ctx, 0.55)
    symbols = {o.symbol for o in ctx.open_orders()}
    assert symbols == {outcome_handle(T0 + 300, Outcome.UP), outcome_handle(T0 + 300, Outcome.DOWN)}


def test_a_window_without_reference_prints_is_not_guessed() -> None:
    ctx = _ctx(60)
    strategy = build_window_directional("window", {})
    _signal(strategy, ctx, 0.65)
    ctx.fill(strategy, next(iter(ctx.orders)), D("19.23"), D("0.52"))
    _print(strategy, ctx, 400, "60000")  # the first print we see is after the window ended
    _print(strategy, ctx, 420, "60001")
    assert [a[0] for a in ctx.alerts] == ["window_unsettled"]  # once, not on every print
    assert not [r for r in ctx.records if r[0] == "settle"]


def test_positions_and_daily_pnl_survive_a_restart() -> None:
    ctx = _ctx(60)
    first = build_window_directional("window", {})
    _print(first, ctx, -2, "60000")
    _print(first, ctx, 5, "60005")
    ctx.clock[0] = at(60)
    _signal(first, ctx, 0.65)
    ctx.fill(first, next(iter(ctx.orders)), D("19.23"), D("0.52"))
    # Act: a new process with the persisted state sees the rest of the window's prints
    second = build_window_directional("window", {})
    second.on_start(ctx)
    _print(second, ctx, 100, "60010")  # its first print: the window's open is unknown to it
    _print(second, ctx, 299, "60011")
    _print(second, ctx, 301, "60011")
    # Assert: the position was recovered (no second entry) but the side is not guessed without the open
    _signal(second, ctx, 0.9)
    assert len(ctx.submitted) == 1
    assert [a[0] for a in ctx.alerts] == ["window_unsettled"]


def test_maker_settles_its_fills_at_resolution_and_reports_the_window() -> None:
    ctx = _ctx(60, "mm")
    mm = build_window_mm("mm", {})
    _print(mm, ctx, -2, "60000")
    _print(mm, ctx, 5, "60005")
    ctx.clock[0] = at(60)
    _signal(mm, ctx, 0.60)
    up_order = next(oid for oid, (i, _) in ctx.orders.items() if i.symbol == UP)
    ctx.fill(mm, up_order, D(20), D("0.58"))  # maker: no fee

    _print(mm, ctx, 299, "59990")
    _print(mm, ctx, 301, "59990")  # resolves Down: the 20 Up tokens pay nothing

    assert len(ctx.settled) == 1
    result = ctx.settled[0]
    assert (result.strategy_id, result.settled_side, result.cost, result.payout, result.pnl, result.fees) == (
        "mm", "Down", D("11.60"), D(0), D("-11.60"), D(0)
    )
    assert result.market == f"btc-updown-5m-{T0}"
