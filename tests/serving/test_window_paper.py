"""The `window` strategy on paper in the real serving app: ALPHATIDE_VENUES names a paper `polymarket`
venue pointed at the fake Polymarket (driven by the real ccxt client through the adapter); the app's
lifespan starts the window feed; the strategy enters on a window signal, the paper order fills against
the venue's book, the window resolves, its PnL row lands in the store, the engine holds nothing of it
and the paper broker redeemed it when the venue reported the resolution."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipelines.config import EngineConfig, load_settings
from pipelines.domain.window_market import Outcome, outcome_handle, window_start_s
from pipelines.trading.window_fees import fee_usdc
from serving.app import create_app
from serving.engine.events import SignalEvent, TradeEvent
from serving.engine.window_paper import WindowPaperBroker
from tests.fakes.polymarket_venue import FakePolymarketVenue
from tests.fakes.trading_venue import FakeTradingVenue
from tests.serving.trading_app import market_venue, wait_for

__all__ = ["market_venue"]
pytestmark = pytest.mark.integration

W = 300


def reference(t: float) -> float:
    return 60_000.0 + (t % 86_400) * 0.01  # BTC rises through every window: each one resolves Up


class Shifted:
    """The fake venue's clock: wall time plus an offset the test moves past a window's end."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def polymarket() -> Iterator[tuple[FakePolymarketVenue, Shifted]]:
    clock = Shifted()
    with FakePolymarketVenue(clock, reference) as venue:
        yield venue, clock


def _print(engine, t: float) -> None:  # type: ignore[no-untyped-def]
    # the serving stream's BTC/USDT trades (venue ""), the reference the window strategy settles on
    engine.submit(TradeEvent("BTC/USDT", Decimal(str(round(reference(t), 2))), Decimal("0.1"),
                             datetime.fromtimestamp(t, UTC)))


def _app(tmp_path: Path, market_venue: FakeTradingVenue, fake: FakePolymarketVenue, strategy: dict[str, Any],
         monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The real serving app with `strategy` on the paper polymarket venue, from the environment alone."""
    env = {
        "ALPHATIDE_STRATEGIES": json.dumps([strategy]),
        "ALPHATIDE_VENUES": json.dumps([{"name": "polymarket", "mode": "paper", "api_url": fake.base_url}]),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    left = W - time.time() % W
    if left < 30:  # too late in this window for an entry or a quote: trade the next one
        time.sleep(left + 0.5)
    settings = load_settings(dict(env), home=tmp_path,
                             engine=EngineConfig(api_url=market_venue.base_url, tick_interval_s=0.02))
    return create_app(settings), settings


def test_the_window_strategy_trades_a_window_on_paper_through_the_polymarket_feed(
    tmp_path: Path, market_venue: FakeTradingVenue, polymarket: tuple[FakePolymarketVenue, Shifted],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: a window strategy on the paper polymarket venue.
    fake, fake_clock = polymarket
    strategy = {"id": "window-btc", "kind": "window", "venue": "polymarket", "allocation": "100",
                "params": {"trading": {"min_seconds_left": 5}}}
    app, settings = _app(tmp_path, market_venue, fake, strategy, monkeypatch)

    with TestClient(app) as client:
        engine = app.state.trading_engine
        feed = app.state.window_feed
        broker = engine.execution("polymarket").broker
        broker = getattr(broker, "inner", broker)
        start = window_start_s(datetime.now(UTC))
        up = outcome_handle(start, Outcome.UP)
        assert feed is not None and isinstance(broker, WindowPaperBroker)
        wait_for(lambda: ("polymarket", up) in engine.portfolio.books)  # the venue's book reached the engine
        info = broker.market(up)
        assert (info.tick_size, info.min_size, info.venue_symbol_id) == (
            Decimal("0.01"), Decimal(5), fake.window(start).up
        )
        _print(engine, start - 1)
        _print(engine, time.time())

        # Act 1: the window model says Up at 0.8 against the venue's 0.52 ask.
        engine.submit(SignalEvent("btc-updown-5m", 0.8, datetime.now(UTC)))
        wait_for(lambda: any(p.symbol == up for p in engine.portfolio.positions.values()))

        # Assert 1: an IOC buy at the ask filled on paper with the market's fee curve, withheld in tokens.
        position = next(p for p in engine.portfolio.positions.values() if p.symbol == up)
        size = position.size
        assert position.entry_price == Decimal("0.52") and size > 0
        fee = fee_usdc(size, Decimal("0.52"), Decimal("0.25"), 2)  # the fake's 2500 bps, per market
        assert position.entry_fees == pytest.approx(fee)
        assert broker.balances()[up] == pytest.approx(size - fee / Decimal("0.52"), abs=Decimal("0.000001"))
        assert not fake.orders  # paper: nothing was sent to the venue
        assert not [m for m in engine.reconcile(engine.now()) if "cash" in m]  # fees in tokens count as paid

        # Act 2: the window ends (the reference closes higher) and the venue resolves it.
        _print(engine, start + W - 1)
        _print(engine, start + W + 1)
        fake_clock.offset = start + W + 1 - time.time()
        wait_for(lambda: bool(engine.store.window_pnls("window-btc")) and start in feed.redeemed)

        # Assert 2: the per-window PnL row, no position of that window left, the paper venue redeemed it.
        row = engine.store.window_pnls("window-btc")[0]
        tokens = size - fee / Decimal("0.52")
        assert (row.market, row.settled_side) == (f"btc-updown-5m-{start}", "Up")
        assert row.payout == pytest.approx(tokens) and row.pnl == pytest.approx(tokens - size * Decimal("0.52"))
        assert not [p for p in engine.portfolio.positions.values() if p.symbol.startswith(up.split(":")[0])]
        assert feed.redeemed[start] is Outcome.UP
        assert up not in broker.balances()
        starting = settings.engine.paper_starting_balance
        assert broker.balances()["USDT"] == pytest.approx(starting + row.pnl, abs=Decimal("0.000001"))
        assert not engine.reconcile(engine.now())  # the portfolio and the paper venue agree after redemption
        assert client.get("/trading/status").status_code == 200


def test_the_window_maker_quotes_on_paper_and_a_venue_trade_through_its_bid_fills_it(
    tmp_path: Path, market_venue: FakeTradingVenue, polymarket: tuple[FakePolymarketVenue, Shifted],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: the window market maker on the paper polymarket venue, fair value 0.5.
    fake, _ = polymarket
    strategy = {"id": "window-mm", "kind": "window_mm", "venue": "polymarket", "allocation": "100"}
    app, _ = _app(tmp_path, market_venue, fake, strategy, monkeypatch)

    with TestClient(app):
        engine = app.state.trading_engine
        start = window_start_s(datetime.now(UTC))
        up = outcome_handle(start, Outcome.UP)
        wait_for(lambda: ("polymarket", up) in engine.portfolio.books)
        engine.submit(SignalEvent("btc-updown-5m", 0.5, datetime.now(UTC)))
        wait_for(lambda: any(o.order.symbol == up and o.order.price == Decimal("0.48") for o in _live(engine)))

        # Act: another participant sells 5 at 0.47 on the venue, through our 0.48 bid (the feed's print).
        polls = app.state.window_feed.polls
        wait_for(lambda: app.state.window_feed.polls >= polls + 2)  # a poll began after the bid went live
        fake.trade(fake.window(start).up, "0.47", "5")
        wait_for(lambda: any(p.symbol == up for p in engine.portfolio.positions.values()))

        # Assert: a maker fill of the traded size at our price, no fee; the rest of the bid still rests.
        position = next(p for p in engine.portfolio.positions.values() if p.symbol == up)
        assert (position.size, position.entry_price, position.entry_fees) == (Decimal(5), Decimal("0.48"), 0)
        assert any(o.order.symbol == up and o.order.remaining == Decimal(15) for o in _live(engine))
        assert not fake.orders


def _live(engine: Any) -> list[Any]:
    with engine._lock:
        return [t for t in engine.execution("polymarket").tracked.values() if t.order.is_live]

