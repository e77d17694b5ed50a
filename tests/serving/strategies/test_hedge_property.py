"""Property: whatever the venues do (partial fills, duplicates, rejects, silence, fills nobody reports),
the hedge never exceeds what was filled, and every completed cycle leaves a zero net position."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.trading.hedge.cycle import Role
from pipelines.trading.instruments import Side
from pipelines.trading.orders import OrderState
from tests.serving.strategies.hedge_harness import Harness, Sent

LOT = Decimal("0.00001")
TAKER_TAGS = ("hedge-hedge", "hedge-unwind", "hedge-correct")

op = st.one_of(
    st.tuples(st.just("maker_fill"), st.integers(1, 120)),
    st.tuples(st.just("duplicate"), st.just(0)),
    st.tuples(st.just("answer"), st.sampled_from(["all", "part", "reject", "silence", "silent_fill"])),
    st.tuples(st.just("tick"), st.sampled_from([0.5, 2, 5.5])),
    st.tuples(st.just("maker_end"), st.just(0)),
)


class Venue:
    """The test's venue: answers the strategy's orders as the drawn operations say."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.answered: set[str] = set()
        self.last_fill: tuple[str, Decimal, str] | None = None
        self.seq = 0

    def pending_takers(self) -> list[Sent]:
        return [s for s in self.h.ctx.sent if s.intent.tag in TAKER_TAGS and s.order_id not in self.answered]

    def live_maker(self) -> Sent | None:
        makers = [s for s in self.h.ctx.sent if s.intent.tag == "hedge-maker" and s.order_id not in self.answered]
        return makers[-1] if makers else None

    def apply(self, kind: str, arg: object) -> None:
        h = self.h
        if kind == "maker_fill" and (maker := self.live_maker()) is not None:
            rest = maker.intent.size - maker.filled
            qty = min(rest, LOT * int(arg))  # type: ignore[call-overload]
            if qty > 0:
                self.seq += 1
                fid = f"m{self.seq}"
                h.fill(maker.order_id, qty, fill_id=fid)
                self.last_fill = (maker.order_id, qty, fid)
                if maker.filled == maker.intent.size:
                    self.answered.add(maker.order_id)
        elif kind == "duplicate" and self.last_fill is not None:
            order_id, qty, fid = self.last_fill
            h.fill(order_id, qty, fill_id=fid)
        elif kind == "answer" and (pending := self.pending_takers()):
            self.answer(pending[0], str(arg))
        elif kind == "tick":
            h.advance(float(arg))  # type: ignore[arg-type]
        elif kind == "maker_end" and (maker := self.live_maker()) is not None:
            self.answered.add(maker.order_id)
            h.update(maker.order_id, OrderState.CANCELLED if maker.filled < maker.intent.size else OrderState.FILLED)

    def answer(self, order: Sent, how: str) -> None:
        self.answered.add(order.order_id)
        size = order.intent.size
        if how == "all":
            self.h.fill_ioc(order.order_id)
        elif how == "part":
            self.h.fill_ioc(order.order_id, max(LOT, (size / 2).quantize(LOT)) if size > LOT else size)
        elif how == "reject":
            self.h.update(order.order_id, OrderState.REJECTED, "Insufficient margin to place order.")
        elif how == "silence":  # an IOC ends at the venue at once; only its report is lost
            order.state = OrderState.EXPIRED
        elif how == "silent_fill":  # executed at the venue, and no event ever reports it
            venue = "primary" if order.intent.venue == "primary" else "hedge"
            signed = size if order.intent.side is Side.BUY else -size
            self.h.ctx.positions[venue] += signed
            order.state = OrderState.FILLED

    def settle(self) -> None:
        """From now on the venues behave: every order is answered and filled, until the cycle closes."""
        for _ in range(200):
            if self.h.strategy.cycle is None:
                return
            if self.live_maker() is not None:
                self.apply("maker_end", 0)
            elif pending := self.pending_takers():
                self.answer(pending[0], "all")
            else:
                self.h.advance(1.0)


def check_invariant(h: Harness) -> None:
    """Never hedge more than was filled: hedged + still working <= filled - unwound, at every step."""
    cycle = h.strategy.cycle
    if cycle is not None:
        assert cycle.hedged + cycle.open_of(Role.HEDGE) <= cycle.filled - cycle.unwound


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, max_size=25), phase=st.sampled_from(["10", "50", "100"]))
def test_net_is_zero_after_every_completed_cycle(ops: list[tuple[str, object]], phase: str) -> None:
    h = Harness({"phases": [phase], "cooldown_seconds": 0, "max_hedge_attempts": 2}).start()
    h.set_books()
    venue = Venue(h)
    for kind, arg in ops:
        venue.apply(kind, arg)
        check_invariant(h)
        for record in h.strategy.records:
            assert record.net_after == 0 or record.outcome == "failed"
    venue.settle()
    assert h.strategy.cycle is None, h.strategy.status()
    assert h.net == 0, (h.ctx.positions, [r.outcome for r in h.strategy.records])
    assert all(r.net_after == 0 for r in h.strategy.records)
    assert not h.strategy.halted
