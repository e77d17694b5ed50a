"""The risk component alone: it only reduces or refuses, exits always pass, per-strategy limits."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pipelines.config import EngineConfig
from pipelines.trading.instruments import MarketInfo, Side
from pipelines.trading.orders import BookTop
from serving.engine.portfolio import Portfolio
from serving.engine.risk import Risk
from serving.engine.strategy import ExecutionStyle, OrderIntent, RiskLimits

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
MARKET = MarketInfo(
    symbol="BTC/USDT",
    venue_symbol_id="BTCUSDT",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("0.001"),
    min_notional=Decimal(5),
    maker_fee=Decimal("0.001"),
    taker_fee=Decimal("0.001"),
)
BOOK = BookTop(Decimal("100.00"), Decimal("100.01"), Decimal(5), Decimal(5), T0)
OPEN = RiskLimits(True, "")


def risk(tmp_path: Path, allocation: Decimal | None = Decimal(100)) -> Risk:
    portfolio = Portfolio({"s": allocation})
    return Risk(EngineConfig(), portfolio, tmp_path / "PAUSE", lambda now, kind, message: None)


def buy(size: str, price: str = "100.00", *, exit_: bool = False) -> OrderIntent:
    side = Side.SELL if exit_ else Side.BUY
    return OrderIntent("BTC/USDT", side, Decimal(size), Decimal(price), ExecutionStyle.LIMIT, is_exit=exit_)


def test_an_entry_above_the_allocation_is_reduced_to_fit(tmp_path: Path) -> None:
    approval = risk(tmp_path).check("s", buy("2"), MARKET, BOOK, OPEN, Decimal(0))
    assert approval.accepted and approval.size == Decimal(1) and "allocation" in approval.reason


def test_a_reduction_below_the_minimum_is_a_refusal(tmp_path: Path) -> None:
    approval = risk(tmp_path).check("s", buy("2"), MARKET, BOOK, OPEN, Decimal(97))  # 3 USDT of room left
    assert not approval.accepted and "minimum" in approval.reason


def test_exits_pass_whatever_the_limits_say(tmp_path: Path) -> None:
    blocked = RiskLimits(False, "manual stop", 0.0)
    approval = risk(tmp_path).check("s", buy("2", exit_=True), MARKET, BOOK, blocked, Decimal(0))
    assert approval.accepted and approval.size == Decimal(2)


def test_a_strategys_own_daily_loss_stops_its_entries(tmp_path: Path) -> None:
    r = risk(tmp_path, Decimal(1000))
    r.strategy_day_start["s"] = Decimal(1000)
    r.portfolio.realized["s"] = Decimal(-60)  # -6% of its allocation today
    verdict = r.guard.evaluate(r.snapshot(T0, []), T0)
    limits = r.limits("s", "BTC/USDT", verdict, None)
    assert not limits.allowed and "strategy s: daily PnL" in limits.reason


@given(size=st.integers(1, 10_000), room=st.integers(0, 500), cap=st.integers(1, 500))
def test_risk_never_enlarges_an_intent(tmp_path_factory: object, size: int, room: int, cap: int) -> None:
    r = Risk(EngineConfig(), Portfolio({"s": Decimal(500)}), Path("/nonexistent/PAUSE"), lambda *a: None)
    intent = buy(str(Decimal(size) / 1000))
    limits = RiskLimits(True, "", 1.0, max_trade_notional=Decimal(cap))
    approval = r.check("s", intent, MARKET, BOOK, limits, Decimal(500 - room))
    assert approval.size <= intent.size
    if approval.accepted:
        assert approval.size * Decimal("100.00") <= min(Decimal(cap), Decimal(room)) + Decimal("0.1")
