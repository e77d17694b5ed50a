"""Several strategies in one engine: ids, allocations, attribution of orders, fills, positions and PnL."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from serving.engine.config import EngineExtras, StrategyEntry
from serving.strategies.registry import StrategyEnv, build_strategy, kinds
from tests.serving.engine.conftest import Harness, graduated

TWO = (
    StrategyEntry(id="dir-a", kind="directional", allocation=Decimal(3000)),
    StrategyEntry(id="dir-b", kind="directional", allocation=Decimal(1000), params={"symbols": ["BTC/USDT"]}),
)


def test_two_strategies_trade_one_symbol_with_separate_attribution(paper: Callable[..., Harness]) -> None:
    # Arrange
    h = paper(graduated(), strategies=TWO)

    # Act: one signal, both strategies enter; a trade through the bid fills both.
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT")
    h.advance(0.1)
    h.trade("BTC/USDT", "99.95", "100")

    # Assert: each strategy sized on its own allocation (Kelly 0.05 x 0.8 x allocation / 100).
    by_strategy = {s.strategy_id: s for s in h.store.load_orders()}
    assert by_strategy["dir-a"].order.size == Decimal("1.2") and by_strategy["dir-b"].order.size == Decimal("0.4")
    positions = h.store.load_all_positions()
    assert positions[("dir-a", "", "BTC/USDT")].size == Decimal("1.2")
    assert positions[("dir-b", "", "BTC/USDT")].size == Decimal("0.4")
    assert h.engine.reconcile(h.clock.now) == []  # the venue holds the sum of both
    status = {s.strategy_id: s for s in h.engine.status().strategies}
    assert status["dir-a"].allocation == Decimal(3000) and status["dir-a"].open_positions == 1
    assert status["dir-b"].exposure == Decimal("0.4") * Decimal("100.00")
    assert {p.strategy_id for p in h.engine.position_snapshots()} == {"dir-a", "dir-b"}


def test_a_strategy_trades_only_its_symbols_and_closes_its_own_round_trip(paper: Callable[..., Harness]) -> None:
    h = paper(graduated(), strategies=TWO)
    h.book("ETH/USDT", "100.00", "100.01")
    h.signal("ETH/USDT")  # dir-b trades BTC only
    assert {s.strategy_id for s in h.store.load_orders()} == {"dir-a"}
    h.advance(0.1)
    h.trade("ETH/USDT", "99.95", "100")
    h.clock.advance(30)
    h.book("ETH/USDT", "100.80", "100.81")  # take profit
    h.advance(0.1)
    h.trade("ETH/USDT", "100.82", "100")
    [closed] = h.store.closed_trades()
    assert closed.strategy_id == "dir-a" and closed.net_pnl > 0
    status = {s.strategy_id: s for s in h.engine.status().strategies}
    assert status["dir-a"].realized_pnl == closed.net_pnl and status["dir-b"].realized_pnl == 0
    assert status["dir-a"].equity == Decimal(3000) + closed.net_pnl


def test_an_allocation_caps_a_strategys_exposure(paper: Callable[..., Harness]) -> None:
    # 12 USDT: Kelly sizes are below the 5 USDT minimum, raised to 5.5 (small-account rule) while it fits.
    tiny = (StrategyEntry(id="small", kind="directional", allocation=Decimal(12)),)
    h = paper(graduated(max_leverage=10.0, max_symbol_exposure_share=1.0), strategies=tiny)
    h.open_long("BTC/USDT")
    h.open_long("ETH/USDT")
    h.book("SOL/USDT", "100.00", "100.01")
    h.signal("SOL/USDT")
    assert h.orders("SOL/USDT") == []
    assert "SOL/USDT" not in h.engine.positions
    assert h.engine.portfolio.exposure("small") == Decimal("11.00")


def test_strategy_entries_are_validated_and_kinds_are_registered() -> None:
    assert "directional" in kinds()
    with pytest.raises(ValueError, match="unique"):
        EngineExtras(strategies=(TWO[0], TWO[0]))
    with pytest.raises(ValueError, match="unknown kind"):
        from pipelines.config import load_settings

        s = load_settings({})
        build_strategy(StrategyEntry(id="x", kind="nope"), StrategyEnv(s.engine, frozenset(), "USDT"))


def test_strategies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHATIDE_STRATEGIES", '[{"id": "d1", "kind": "directional", "allocation": "500"}]')
    [entry] = EngineExtras().strategies
    assert entry.id == "d1" and entry.allocation == Decimal(500)
