"""Paper trading: a spot market maker's account starts holding its target base and quotes both sides."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pipelines.trading.instruments import Side
from serving.engine import build_engine
from serving.engine.broker import PaperBroker
from serving.engine.config import StrategyEntry
from serving.engine.events import BookEvent
from serving.engine.live_broker import CcxtMarkets
from serving.strategies.market_making import MarketMakingStrategy
from tests.fakes.trading_venue import FakeTradingVenue
from tests.serving.engine.conftest import ManualClock, graduated, make_settings

MM = StrategyEntry(id="mm", kind="market_making", allocation=Decimal(1000),
                   params={"symbol": "ETH/USDT", "allow_short": False, "gamma": 0.1, "order_notional": "20",
                           "estimator": {"sigma_prior": 0.05}})


def test_paper_account_holding_the_target_quotes_bid_and_ask_on_the_first_book(
    tmp_path: Path, market_venue: FakeTradingVenue
) -> None:
    # Arrange: 500 USDT + 5 ETH (half the 1000 allocation at 100 is the default target: 5 ETH)
    settings = make_settings(tmp_path / "home", graduated(), paper_starting_balance=Decimal(500),
                             paper_starting_assets={"ETH": Decimal(5)})
    broker = PaperBroker(CcxtMarkets("binance", market_venue.base_url), settings.engine.trading.paper, "USDT",
                         settings.engine.paper_starting_balance, settings.engine.paper_starting_assets)
    clock = ManualClock()
    engine = build_engine(settings, clock=clock, broker=broker, strategies=[MM])
    engine.start(background=False)
    # Act
    engine.handle(BookEvent("ETH/USDT", Decimal("99.99"), Decimal("100.01"), Decimal(5), Decimal(5), clock.now))
    # Assert: the q the strategy quotes from is the paper account's ETH minus the target: flat, two quotes
    strategy = engine.strategy("mm")
    assert isinstance(strategy, MarketMakingStrategy)
    snap = strategy.snapshot()
    assert snap["held_source"] == "balance" and Decimal(snap["target_base"]) == 5 and snap["q_clips"] == 0.0
    sides = {o.side for o in engine.contexts["mm"].open_orders("ETH/USDT")}
    assert sides == {Side.BUY, Side.SELL}, engine.decisions[-3:]
    engine.shutdown()
