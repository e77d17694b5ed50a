"""The directional strategy through the engine: signals that must not open a position."""

from __future__ import annotations

from collections.abc import Callable

from tests.serving.engine import conftest as engine_fixtures
from tests.serving.engine.conftest import Harness

market_venue = engine_fixtures.market_venue
paper = engine_fixtures.paper


def test_a_signal_that_is_not_tradeable_opens_nothing_and_says_why(paper: Callable[..., Harness]) -> None:
    h = paper()
    h.book("BTC/USDT", "100.00", "100.01")
    h.signal("BTC/USDT", p_up=0.9, tradeable=False)
    assert h.orders() == []
    last = h.engine.decisions[-1]
    assert last.action == "skip" and "not tradeable" in last.reason and last.strategy_id == "directional"
    h.signal("BTC/USDT", p_up=0.9)  # the same signal once the model is tradeable
    assert len(h.orders()) == 1


def test_the_strategys_counters_survive_a_restart(paper: Callable[..., Harness]) -> None:
    h = paper()
    h.open_long("BTC/USDT")
    h.clock.advance(30)
    h.book("BTC/USDT", "100.80", "100.81")  # take profit
    h.advance(0.1)
    h.trade("BTC/USDT", "100.82", "1")
    returns = h.directional.kelly.state().recent_returns
    assert len(returns) == 1
    h.directional.on_start(h.engine.contexts["directional"])  # reloads from the persisted state
    assert h.directional.kelly.state().recent_returns == returns
    assert h.directional.wins.outcomes() == (True,)


def test_a_window_markets_signal_is_neither_traded_nor_logged_by_the_directional_strategy(
    paper: Callable[..., Harness],
) -> None:
    # Arrange: a book and a window-model signal of the same engine (the stream submits both kinds).
    h = paper()
    h.book("BTC/USDT", "100.00", "100.01")
    before = len(h.engine.decisions)
    # Act
    h.signal("btc-updown-5m", p_up=0.9, kind="window")
    # Assert: no order and no "skip" decision for a symbol that is not a market.
    assert h.orders() == []
    assert [d for d in list(h.engine.decisions)[before:] if d.strategy_id == "directional"] == []
