"""The directional strategy's decision wiring (SPEC 9), shared by the nightly backtest and the engine.

One wiring of the rules, called by `pipelines.backtest` (per bar) and by
`serving.strategies.directional.DirectionalStrategy` (per signal), so both take the same decision on
the same inputs:

1. `entry_decision`: the side from p_up (long when p_up >= 0.5; a long-only venue never opens a
   short), the confidence max(p, 1 - p), then `decide_entry`'s expected value against its threshold.
2. `entry_size`: `size_position` with the adaptive Kelly fraction, the confidence, the regime and
   correlation factors and the risk component's multiplier and caps.
3. `exit_view` / `exit_decision`: the position as the exit rules see it (tier-3 new listings get the
   maximum hold) and `evaluate_exit`.

Pure: no IO, no clock; units as in `decision`, `sizing` and `exits` (fractions as floats, prices and
sizes as Decimal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pipelines.trading.config import TradingConfig
from pipelines.trading.decision import EntryDecision, EntryInputs, WinRateTracker, decide_entry
from pipelines.trading.exits import ExitDecision, PositionView, evaluate_exit
from pipelines.trading.instruments import MarketInfo, Side
from pipelines.trading.sizing import SizeResult, SizingInputs, size_position

NEW_LISTING_MAX_HOLD_S = 120.0  # SPEC 3: tier-3 new listings hold at most 120 s


@dataclass(frozen=True)
class EntryCosts:
    """Per-candidate inputs of the expected value besides p_up (fractions of notional)."""

    avg_win: float
    avg_loss: float
    fees: float  # round trip
    expected_slippage: float  # round trip
    spread: float
    volatility: float


@dataclass(frozen=True)
class EntryChoice:
    """The side and confidence of a candidate and the gate's decision (None: no side to trade)."""

    side: Side | None
    confidence: float
    decision: EntryDecision | None
    reason: str

    @property
    def enter(self) -> bool:
        return self.side is not None and self.decision is not None and self.decision.enter


def entry_decision(
    p_up: float, costs: EntryCosts, trading: TradingConfig, tracker: WinRateTracker | None, *, long_only: bool
) -> EntryChoice:
    """Step 1 (see the module docstring)."""
    side = Side.BUY if p_up >= 0.5 else Side.SELL
    confidence = max(p_up, 1.0 - p_up)
    if long_only and side is Side.SELL:
        return EntryChoice(None, confidence, None, f"p_up {p_up:.4f} < 0.5: spot is long only")
    inputs = EntryInputs(
        p_win=confidence,
        avg_win=costs.avg_win,
        avg_loss=costs.avg_loss,
        fees=costs.fees,
        expected_slippage=costs.expected_slippage,
        spread=costs.spread,
        volatility=costs.volatility,
    )
    decision = decide_entry(inputs, trading.decision, tracker)
    return EntryChoice(side, confidence, decision, decision.reason)


@dataclass(frozen=True)
class SizeContext:
    """What sizing reads besides the Kelly fraction: the account, the regime and the risk limits."""

    equity: Decimal
    is_major: bool
    open_positions: int
    vpin: float | None = None
    kyle_lambda: float | None = None
    kyle_lambda_threshold: float | None = None
    max_correlation_with_open: float | None = None
    new_listing: bool = False
    risk_multiplier: float = 1.0
    max_trade_notional: Decimal | None = None
    bankroll_cap: Decimal | None = None
    available_notional: Decimal | None = None


def entry_size(
    kelly_fraction: float,
    side: Side,
    price: Decimal,
    confidence: float,
    ctx: SizeContext,
    market: MarketInfo,
    trading: TradingConfig,
) -> SizeResult:
    """Step 2 (see the module docstring)."""
    return size_position(
        kelly_fraction,
        SizingInputs(
            side=side,
            equity=ctx.equity,
            price=price,
            confidence=confidence,
            is_major=ctx.is_major,
            open_positions=ctx.open_positions,
            vpin=ctx.vpin,
            kyle_lambda=ctx.kyle_lambda,
            kyle_lambda_threshold=ctx.kyle_lambda_threshold,
            max_correlation_with_open=ctx.max_correlation_with_open,
            new_listing=ctx.new_listing,
            risk_multiplier=ctx.risk_multiplier,
            max_trade_notional=ctx.max_trade_notional,
            bankroll_cap=ctx.bankroll_cap,
        ),
        market,
        trading.sizing,
        available_notional=ctx.available_notional,
    )


def exit_view(
    symbol: str,
    side: Side,
    entry_price: Decimal,
    opened_at: datetime,
    is_major: bool,
    market: MarketInfo,
    *,
    new_listing: bool = False,
) -> PositionView:
    """Step 3: the position as the exit rules see it."""
    return PositionView(
        symbol=symbol,
        side=side,
        entry_price=entry_price,
        opened_at=opened_at,
        is_major=is_major,
        tick_size=market.tick_at(entry_price),
        max_hold_seconds=NEW_LISTING_MAX_HOLD_S if new_listing else None,
    )


def exit_decision(
    view: PositionView,
    mark: Decimal,
    now: datetime,
    trading: TradingConfig,
    expected_remaining_return: float | None = None,
) -> ExitDecision:
    """Step 3: the first exit rule that applies (SPEC 9), or hold."""
    return evaluate_exit(view, mark, now, trading.exits, expected_remaining_return)


def model_remaining_return(p_up: float, avg_win: float, avg_loss: float, side: Side) -> float:
    """The expected remaining return of a position from the forecast: (2p - 1) x (avg_win + avg_loss) / 2,
    signed for the position's side (the bar-level backtest's input of the EV trail)."""
    edge = (2.0 * p_up - 1.0) * (avg_win + avg_loss) / 2.0
    return edge if side is Side.BUY else -edge
