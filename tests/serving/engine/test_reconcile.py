"""Reconciliation across strategies: the venue's figure wins; who gets the difference."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from serving.engine.config import StrategyEntry
from tests.serving.engine.conftest import Harness, graduated
from tests.serving.engine.test_kill_switches import set_paper_balances

TWO = (
    StrategyEntry(id="dir-a", kind="directional", allocation=Decimal(3000)),
    StrategyEntry(id="dir-b", kind="directional", allocation=Decimal(1000)),
)


def test_a_holding_nobody_owns_is_adopted_by_the_default_strategy(paper: Callable[..., Harness]) -> None:
    h = paper(graduated(), strategies=TWO)
    h.book("SOL/USDT", "100.00", "100.01")
    set_paper_balances(h, SOL="2")
    positions = h.store.load_all_positions()
    assert positions[("dir-a", "", "SOL/USDT")].size == Decimal(2)
    assert any(a.kind == "reconcile_mismatch" for a in h.store.alerts())


def test_a_shortfall_shrinks_the_largest_holder_first(paper: Callable[..., Harness]) -> None:
    h = paper(graduated(), strategies=TWO)
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    h.advance(0.1)
    h.trade("BTC/USDT", "99.95", "100")  # dir-a 1.2, dir-b 0.4
    set_paper_balances(h, BTC="1.0")  # 0.6 sold outside the engine
    positions = h.store.load_all_positions()
    assert positions[("dir-a", "", "BTC/USDT")].size == Decimal("0.6")
    assert positions[("dir-b", "", "BTC/USDT")].size == Decimal("0.4")
    assert h.engine.reconcile(h.clock.now) == []
