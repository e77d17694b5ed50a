"""A venue that answers an IOC with its fills inside `submit` (the engine reports them before `submit`
returns): the hedge strategy still counts them for the order being submitted, once."""

from __future__ import annotations

from decimal import Decimal

from pipelines.trading.instruments import Side
from pipelines.trading.orders import Fill, Liquidity, OrderState
from serving.engine.strategy import FillEvent, OrderIntent, OrderUpdate, SubmitResult
from tests.serving.strategies.hedge_harness import Harness, HedgeContext

SIZE = Decimal("0.00019")


class AnsweringContext(HedgeContext):
    """`submit` of an IOC delivers its fill and its FILLED state before returning, as the engine does."""

    harness: Harness | None = None

    def submit(self, intent: OrderIntent) -> SubmitResult:
        result = super().submit(intent)
        h = self.harness
        if h is None or intent.post_only or not result.accepted or result.order_id is None:
            return result
        sent = h.order(result.order_id)
        sent.filled, sent.state = intent.size, OrderState.FILLED
        venue = "primary" if intent.venue == h.cfg.primary_venue else "hedge"
        self.positions[venue] += intent.size if intent.side is Side.BUY else -intent.size
        assert intent.price is not None
        fill = Fill(f"sync-{result.order_id}", intent.size, intent.price, Decimal(0), Liquidity.TAKER, self.clock)
        oid, cid = result.order_id, f"c-{result.order_id}"
        h.strategy.on_fill(self, FillEvent(oid, cid, intent.venue, intent.symbol, intent.side, fill, intent.tag))  # type: ignore[arg-type]
        update = OrderUpdate(
            oid, cid, intent.venue, intent.symbol, intent.side, OrderState.FILLED, intent.size, Decimal(0),
            self.clock, "", intent.tag,
        )  # fmt: skip
        h.strategy.on_order_update(self, update)  # type: ignore[arg-type]
        return result


def test_an_ioc_filled_inside_its_own_submit_closes_the_cycle_clean() -> None:
    ctx = AnsweringContext()
    h = Harness(ctx=ctx)
    ctx.harness = h
    h.start()
    h.set_books()
    [maker] = h.ctx.sent

    h.fill(maker.order_id, SIZE)

    [hedge] = h.orders("hedge")
    assert hedge.intent.size == SIZE and len(h.orders("hedge")) == 1  # not retried: its fill was counted
    assert h.net == 0 and h.strategy.cycle is None
    record = h.strategy.records[-1]
    assert record.outcome == "clean" and record.hedge_size == SIZE and record.hedge.trades == 1
    assert not any(kind == "hedge_late_fill" for kind, _ in h.ctx.alerts)  # not taken for a stray fill
