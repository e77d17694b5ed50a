"""A spot market maker's q: the venue's base balance minus its target holding, not the fills since start."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pipelines.trading.instruments import Side
from pipelines.trading.orders import Fill, Liquidity
from serving.engine.strategy import FillEvent, Strategy
from serving.strategies.market_making import MarketMakingStrategy
from tests.serving.strategies.fake_context import BookContext
from tests.serving.strategies.test_market_making import CFG, MARKET, T0

SPOT = CFG.model_copy(update={"allow_short": False})


class BalanceContext(BookContext):
    """`BookContext` whose venue also keeps the account's balances (as a broker's `balances()`)."""

    def __init__(self, balances: dict[str, Decimal]) -> None:
        super().__init__(MARKET, T0)
        self.balances = dict(balances)
        self.reads = 0

    def available_balance(self, venue: str, asset: str) -> Decimal | None:
        self.reads += 1
        return self.balances.get(asset)

    def fill(self, strategy: Strategy, order_id: str, size: Decimal | None = None) -> None:
        order = self.orders[order_id]
        moved = order.remaining if size is None else size
        self.balances["ETH"] += moved if order.side is Side.BUY else -moved
        super().fill(strategy, order_id, size)


def started(balances: dict[str, Decimal], allocation: Decimal | None = Decimal(1000)) -> tuple[
        MarketMakingStrategy, BalanceContext]:
    strategy = MarketMakingStrategy("mm-spot", SPOT, allocation)
    ctx = BalanceContext(balances)
    strategy.on_start(ctx)
    return strategy, ctx


def test_holding_the_default_target_quotes_both_sides_with_no_fill_yet() -> None:
    # Arrange: allocation 1000, half of it at the first mid 150.05 is 3.332 ETH, 3.3 on the 0.1 lot
    strategy, ctx = started({"ETH": Decimal("3.3"), "USDT": Decimal(500)})
    # Act
    ctx.send_book(strategy, "150.00", "150.10")
    # Assert: the engine's position is still 0, the account holds the target: flat, two quotes
    snap = strategy.snapshot()
    assert ctx.pos == 0 and Decimal(snap["target_base"]) == Decimal("3.3") and snap["held_source"] == "balance"
    assert snap["q_clips"] == 0.0
    assert set(ctx.quotes()) == {Side.BUY, Side.SELL}


def test_without_an_allocation_the_target_is_half_the_pair_value_at_the_venue() -> None:
    # 2 ETH x 150.05 + 300.10 USDT = 600.20: half is 300.10, 2.0 ETH: flat
    strategy, ctx = started({"ETH": Decimal(2), "USDT": Decimal("300.10")}, allocation=None)
    ctx.send_book(strategy, "150.00", "150.10")
    assert Decimal(strategy.snapshot()["target_base"]) == 2 and strategy.snapshot()["q_clips"] == 0.0


def test_own_fills_move_q_between_reads_and_a_reread_does_not_count_them_twice() -> None:
    strategy, ctx = started({"ETH": Decimal("3.3"), "USDT": Decimal(500)})
    ctx.send_book(strategy, "150.00", "150.10")
    reads = ctx.reads
    # Act 1: the ask fills a second later: held 3.2, q = -0.1 ETH = -1 clip, no new balance read
    ctx.clock += timedelta(seconds=1)
    ctx.fill(strategy, ctx.quotes()[Side.SELL].order_id)
    assert strategy.last_plan is not None and strategy.last_plan.q == -1.0
    assert ctx.reads == reads
    # Act 2: after balance_refresh_seconds the balance (3.2, the fill included) is read again: still -1 clip
    ctx.send_book(strategy, "150.00", "150.10", after=SPOT.balance_refresh_seconds)
    assert ctx.reads > reads and strategy.last_plan is not None and strategy.last_plan.q == -1.0
    # Act 3: a fill the venue counted before that read but reported late is already in the balance
    late = Fill("late-1", Decimal("0.1"), Decimal("150.10"), Decimal(0), Liquidity.MAKER,
                ctx.clock - timedelta(seconds=5))
    strategy.on_fill(ctx, FillEvent("x", "x", "", "ETH/USDT", Side.SELL, late))
    assert strategy.last_plan.q == -1.0


def test_an_outside_deposit_moves_q_at_the_next_read() -> None:
    # The venue's balance, not the fills since start: base arriving from outside the strategy counts
    strategy, ctx = started({"ETH": Decimal("3.3"), "USDT": Decimal(500)})
    ctx.send_book(strategy, "150.00", "150.10")
    ctx.balances["ETH"] += Decimal("0.2")
    ctx.send_book(strategy, "150.00", "150.10", after=SPOT.balance_refresh_seconds)
    assert strategy.last_plan is not None and strategy.last_plan.q == 2.0 and ctx.pos == 0


def test_a_spot_ask_is_never_larger_than_the_base_held() -> None:
    # Target 3.3 but only 0.05 ETH held (below one 0.1 lot): q is far below the target, no ask at all
    strategy, ctx = started({"ETH": Decimal("0.05"), "USDT": Decimal(990)})
    ctx.send_book(strategy, "150.00", "150.10")
    assert Side.SELL not in ctx.quotes() and Side.BUY in ctx.quotes()
