"""Reconciliation of a perpetual: the venue's positions (ccxt `fetchPositions`), not its balances.

The real ccxt Hyperliquid client inside `LiveBroker` against the local Hyperliquid fake on 127.0.0.1:
a short the engine does not know is adopted as a short (the venue wins, logged and alerted); a local
short the venue holds too is a match (spot symbols stay balance-based: tests/serving/engine/test_reconcile.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import ccxt
import pytest
from pydantic import SecretStr

from pipelines.config import EngineConfig
from pipelines.trading.instruments import Side
from pipelines.trading.orders import BookTop, ClientOrderIdFactory, Fill, Liquidity
from serving.engine.execution import Execution, ExecutionHooks
from serving.engine.live_broker import LiveBroker
from serving.engine.persistence.state import Persistence
from serving.engine.persistence.store import TradingStore
from serving.engine.portfolio import Portfolio
from serving.engine.reconcile import Reconciler
from tests.fakes.hyperliquid_venue import FakeHyperliquid

pytestmark = pytest.mark.integration
PERP = "BTC/USDC:USDC"
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


class Parts:
    def __init__(self, venue: FakeHyperliquid, tmp: Path) -> None:
        cfg = EngineConfig()
        broker = LiveBroker("hyperliquid", SecretStr("k"), SecretStr("s"), order_cfg=cfg.trading.orders, retries=0)
        broker.exchange = ccxt.hyperliquid(venue.ccxt_config())  # the fake's wallet and URLs
        self.alerts: list[tuple[str, str]] = []
        self.store = TradingStore.sqlite_file(tmp / "engine.db")
        persistence = Persistence(self.store, 60)
        hooks = ExecutionHooks(lambda *a: None, lambda *a: None, lambda *a: None, self._alert)
        ids = ClientOrderIdFactory(lambda: NOW, cfg.trading.orders.client_id_prefix)
        self.ex = Execution("hl", broker, cfg.trading, ids, persistence, hooks)
        self.portfolio = Portfolio({"hedge-1": None})
        self.portfolio.on_book("hl", PERP, BookTop(Decimal(60000), Decimal(60001), Decimal(1), Decimal(1), NOW))
        self.reconciler = Reconciler(self.portfolio, persistence, "USDC", "hedge-1", lambda s: True, self._alert)

    def _alert(self, now: datetime, kind: str, message: str) -> None:
        self.alerts.append((kind, message))

    def short_locally(self, size: str) -> None:
        fill = Fill("f1", Decimal(size), Decimal(60000), Decimal(0), Liquidity.TAKER, NOW)
        self.portfolio.apply_fill(
            ("hedge-1", "hl", PERP), Side.SELL, fill, is_major=True, lot=Decimal("0.00001"), reduce_only=False
        )

    def cash_as_venue(self) -> None:
        self.portfolio.cash["hl"] = self.ex.broker.balances().get("USDC", Decimal(0))


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    with FakeHyperliquid() as venue:
        venue.matcher.set_book("BTC", "60000", "60001")
        p = Parts(venue, tmp_path)
        p.venue = venue  # type: ignore[attr-defined]
        yield p
        p.store.close()


def test_an_unknown_short_at_the_venue_is_adopted_as_a_short(
    parts: Parts, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: the venue holds -0.01 BTC perpetual (e.g. a hedge filled while we were down); locally flat
    parts.venue.matcher.positions["BTC"] = Decimal("-0.01")  # type: ignore[attr-defined]
    parts.cash_as_venue()
    # Act
    with caplog.at_level(logging.WARNING, logger="alphatide.engine.reconcile"):
        result = parts.reconciler.reconcile(parts.ex, {PERP}, NOW)
    # Assert: the venue wins (a SELL position of 0.01), logged and alerted
    assert result.ok and result.mismatches == [f"{PERP}: local 0 vs venue -0.01 contracts"]
    pos = parts.portfolio.positions[("hedge-1", "hl", PERP)]
    assert pos.side is Side.SELL and pos.size == Decimal("0.01")
    assert [k for k, _ in parts.alerts] == ["reconcile_mismatch"]
    assert "the venue's figure wins" in caplog.text
    # and once adopted the next reconciliation matches
    assert parts.reconciler.reconcile(parts.ex, {PERP}, NOW).mismatches == []


def test_a_local_short_the_venue_holds_is_a_match(parts: Parts) -> None:
    # Arrange: the same short on both sides (a balance read would see no BTC and call it a mismatch)
    parts.venue.matcher.positions["BTC"] = Decimal("-0.02")  # type: ignore[attr-defined]
    parts.short_locally("0.02")
    parts.cash_as_venue()
    # Act
    result = parts.reconciler.reconcile(parts.ex, {PERP}, NOW)
    # Assert
    assert result.ok and result.mismatches == [] and parts.alerts == []
    assert parts.portfolio.positions[("hedge-1", "hl", PERP)].signed_size == Decimal("-0.02")


def test_a_short_the_venue_closed_is_dropped_and_a_flip_becomes_a_long(parts: Parts) -> None:
    parts.short_locally("0.02")
    parts.cash_as_venue()
    parts.venue.matcher.positions["BTC"] = Decimal("0.005")  # type: ignore[attr-defined]
    result = parts.reconciler.reconcile(parts.ex, {PERP}, NOW)
    assert result.mismatches == [f"{PERP}: local -0.02 vs venue 0.005 contracts"]
    pos = parts.portfolio.positions[("hedge-1", "hl", PERP)]
    assert pos.side is Side.BUY and pos.size == Decimal("0.005")
