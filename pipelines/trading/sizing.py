"""Position sizing: adaptive Kelly with regime, exposure and correlation factors (SPEC 9).

fraction = min(kelly, cap) x confidence x regime x open-positions x correlation x tier x risk
fraction = min(fraction, per-trade cap: 12% of equity for majors, 8% for alts)
notional = fraction x min(equity, phase bankroll), then min(notional, phase per-trade cap)
size     = notional / price rounded DOWN to the lot; an order below the venue minimum is not produced
           (except through the small-account raise, see `size_position`).

Contracts: fractions are `float` fractions of equity; equity, prices, notionals and sizes are
`Decimal` (quote currency / base units). A zero size always comes with a reason.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pipelines.trading.config import SizingConfig
from pipelines.trading.instruments import (
    MarketInfo,
    Side,
    apply_small_account_rule,
    price_for_side,
    rejection_reason,
    round_size,
    to_decimal,
)


def kelly_fraction(win_rate: float, payoff_ratio: float) -> float:
    """Full Kelly for a win/loss bet: W - (1 - W) / R, where R = avg win / avg loss (may be inf).

    May be negative (no edge); callers clamp.
    """
    if payoff_ratio <= 0.0:
        return -1.0
    if math.isinf(payoff_ratio):
        return win_rate
    return win_rate - (1.0 - win_rate) / payoff_ratio


@dataclass(frozen=True)
class KellyCalibration:
    """One recalibration, for the log: the window's statistics and the fraction before/after."""

    trades: int
    win_rate: float
    payoff_ratio: float
    raw_kelly: float
    clamped_kelly: float
    previous: float
    current: float


@dataclass(frozen=True)
class KellyState:
    """What to persist so a restart continues where it stopped."""

    fraction: float
    recent_returns: tuple[float, ...]
    since_recalibration: int


class AdaptiveKelly:
    """Kelly fraction recalibrated every `recalibrate_every` closed trades from the last `lookback_trades`.

    The window's full-Kelly estimate is clamped into [0, kelly_cap] *before* smoothing
    (0.9 old + 0.1 new): clamping after smoothing would let a run of large raw values build a hidden
    reserve above the cap that a later drop of edge must first burn through, keeping sizes at the cap
    for longer than the evidence supports.
    """

    def __init__(self, cfg: SizingConfig, state: KellyState | None = None) -> None:
        self._cfg = cfg
        self._returns: deque[float] = deque(maxlen=cfg.lookback_trades)
        self._fraction = cfg.initial_kelly_fraction
        self._since = 0
        if state is not None:
            self._returns.extend(state.recent_returns)
            self._fraction = min(max(0.0, state.fraction), cfg.kelly_cap)
            self._since = state.since_recalibration
        self.last_calibration: KellyCalibration | None = None

    @property
    def fraction(self) -> float:
        """The current (smoothed, capped) Kelly fraction of equity."""
        return self._fraction

    def state(self) -> KellyState:
        return KellyState(self._fraction, tuple(self._returns), self._since)

    def record_trade(self, net_return: float) -> KellyCalibration | None:
        """Add a closed trade's net return (fraction, fees included); recalibrate when due.

        A trade with net return > 0 is a win; zero counts as a loss (after fees, flat is not an edge).
        Non-finite returns are refused with `ValueError` rather than poisoning the window.
        """
        if not math.isfinite(net_return):
            raise ValueError(f"net_return must be finite, got {net_return}")
        self._returns.append(net_return)
        self._since += 1
        if self._since < self._cfg.recalibrate_every:
            return None
        self._since = 0
        return self._recalibrate()

    def _recalibrate(self) -> KellyCalibration:
        window = list(self._returns)
        wins = [r for r in window if r > 0.0]
        losses = [-r for r in window if r <= 0.0]
        win_rate = len(wins) / len(window)
        avg_win = sum(wins) / len(wins) if wins else 0.0
        avg_loss = sum(losses) / len(losses) if losses else 0.0
        payoff = math.inf if avg_loss == 0.0 else avg_win / avg_loss
        raw = kelly_fraction(win_rate, payoff) if wins else 0.0
        clamped = min(max(raw, 0.0), self._cfg.kelly_cap)
        old_w = self._cfg.smoothing_old_weight
        previous = self._fraction
        self._fraction = min(old_w * previous + (1.0 - old_w) * clamped, self._cfg.kelly_cap)
        self.last_calibration = KellyCalibration(
            len(window), win_rate, payoff, raw, clamped, previous, self._fraction
        )
        return self.last_calibration


def regime_factor(
    vpin: float | None,
    kyle_lambda: float | None,
    kyle_lambda_threshold: float | None,
    cfg: SizingConfig,
) -> tuple[float, list[str]]:
    """Toxic-flow factor: VPIN > 0.7 -> x0.3; Kyle's lambda above its 80th percentile -> x0.6.

    `kyle_lambda_threshold` is the trailing `cfg.kyle_lambda_percentile` percentile computed upstream.
    Missing inputs (None) apply no factor; NaN is treated as toxic (fail closed) because a broken
    estimator must not look like a calm market.
    """
    factor = 1.0
    notes: list[str] = []
    if vpin is not None and (math.isnan(vpin) or vpin > cfg.vpin_threshold):
        factor *= cfg.vpin_factor
        notes.append(f"VPIN {vpin:.3f} > {cfg.vpin_threshold}: x{cfg.vpin_factor}")
    if (
        kyle_lambda is not None
        and kyle_lambda_threshold is not None
        and (
            math.isnan(kyle_lambda)
            or math.isnan(kyle_lambda_threshold)
            or kyle_lambda > kyle_lambda_threshold
        )
    ):
        factor *= cfg.kyle_lambda_factor
        notes.append(
            f"Kyle lambda {kyle_lambda:.3g} above p{cfg.kyle_lambda_percentile * 100:.0f} "
            f"{kyle_lambda_threshold:.3g}: x{cfg.kyle_lambda_factor}"
        )
    return factor, notes


def open_positions_multiplier(open_positions: int, cfg: SizingConfig) -> float | None:
    """Multiplier for a new entry given how many positions are open; None means no new entry."""
    if open_positions < 0:
        raise ValueError("open_positions must not be negative")
    for tier in cfg.open_position_tiers:
        if open_positions <= tier.max_open:
            return tier.multiplier
    return None


@dataclass(frozen=True)
class SizingInputs:
    """Everything `size_position` needs besides the Kelly fraction and the market.

    equity: account equity, quote currency. price: the limit price the order will use (rounded by side
    here). confidence in [0, 1]. max_correlation_with_open: highest return correlation of this symbol
    with any open position (None when nothing is open). risk_multiplier, max_trade_notional and
    bankroll_cap come from `RiskVerdict` (kill switches and deployment phase).
    """

    side: Side
    equity: Decimal
    price: Decimal
    confidence: float
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


@dataclass(frozen=True)
class SizeResult:
    """Sized order: `size` at `price` (both Decimal, rounded), or zero with `reason`.

    `fraction` is the fraction of (capped) equity before rounding; `factors` lists every multiplier
    applied, by name, for the decision log. `note` records the small-account raise when it happened.
    """

    price: Decimal
    size: Decimal
    fraction: float
    factors: tuple[tuple[str, float], ...]
    reason: str | None
    note: str | None = None

    @property
    def notional(self) -> Decimal:
        return self.price * self.size


def _fraction_decimal(fraction: float) -> Decimal:
    """Float fraction to Decimal on a 1e-12 grid.

    Why: float arithmetic leaves 0.05 as 0.04999999999999999, which would round a 100-share order down
    to 99. Every configured cap is on the 1e-12 grid, so this rounding can never lift a value above one.
    """
    return to_decimal(round(fraction, 12), "fraction")


def _zero(price: Decimal, fraction: float, factors: list[tuple[str, float]], reason: str) -> SizeResult:
    return SizeResult(price, Decimal(0), fraction, tuple(factors), reason)


def size_position(
    kelly: float,
    inputs: SizingInputs,
    market: MarketInfo,
    cfg: SizingConfig,
    *,
    available_notional: Decimal | None = None,
) -> SizeResult:
    """Size one new entry (SPEC 9). Returns size 0 with a reason whenever it must not trade.

    Guarantees: without the small-account raise, notional <= per-trade cap x min(equity, bankroll_cap)
    and <= max_trade_notional; size is a lot multiple; an order below the venue minimum is never returned
    with a non-zero size. The small-account raise (only when `available_notional` is given) may exceed
    the per-trade equity fraction, as SPEC 9 intends for accounts too small to trade otherwise, but never
    exceeds `max_trade_notional` nor `available_notional`.
    """
    factors: list[tuple[str, float]] = []
    if inputs.price <= 0 or inputs.equity <= 0:
        return _zero(inputs.price, 0.0, factors, "price and equity must be positive")
    price = price_for_side(market, inputs.price, inputs.side)
    if not math.isfinite(inputs.confidence) or not 0.0 <= inputs.confidence <= 1.0:
        return _zero(price, 0.0, factors, f"confidence {inputs.confidence} outside [0, 1]")
    if not math.isfinite(kelly) or kelly <= 0.0:
        return _zero(price, 0.0, factors, f"Kelly fraction {kelly} has no edge")
    if not math.isfinite(inputs.risk_multiplier) or inputs.risk_multiplier <= 0.0:
        return _zero(price, 0.0, factors, f"risk multiplier {inputs.risk_multiplier} stops entries")

    positions_mult = open_positions_multiplier(inputs.open_positions, cfg)
    if positions_mult is None:
        last = cfg.open_position_tiers[-1].max_open
        return _zero(price, 0.0, factors, f"{inputs.open_positions} open positions > {last}: no new entry")

    fraction = _scaled_fraction(kelly, inputs, cfg, positions_mult, factors)
    base_equity = inputs.equity
    if inputs.bankroll_cap is not None:
        base_equity = min(base_equity, inputs.bankroll_cap)
    notional = base_equity * _fraction_decimal(fraction)
    if inputs.max_trade_notional is not None:
        notional = min(notional, inputs.max_trade_notional)
    size = round_size(market, notional / price)
    reason = rejection_reason(market, price, size)
    if reason is None:
        return SizeResult(price, size, fraction, tuple(factors), None)

    if available_notional is not None:
        budget = available_notional
        if inputs.max_trade_notional is not None:
            budget = min(budget, inputs.max_trade_notional)
        raised = apply_small_account_rule(market, inputs.side, price, size, inputs.confidence, budget, cfg)
        if raised.ok:
            return SizeResult(price, raised.size, fraction, tuple(factors), None, raised.note)
        reason = raised.reason or reason
    return _zero(price, fraction, factors, reason)


def _scaled_fraction(
    kelly: float, inputs: SizingInputs, cfg: SizingConfig, positions_mult: float, factors: list[tuple[str, float]]
) -> float:
    """Capped Kelly x every multiplier (confidence, regime, open positions, correlation, new listing,
    risk), then the per-trade cap; each factor applied is appended to `factors` (the report's order)."""
    fraction = min(kelly, cfg.kelly_cap)
    factors.append(("kelly", fraction))
    factors.append(("confidence", inputs.confidence))
    regime, _notes = regime_factor(inputs.vpin, inputs.kyle_lambda, inputs.kyle_lambda_threshold, cfg)
    factors.append(("regime", regime))
    factors.append(("open_positions", positions_mult))
    corr = inputs.max_correlation_with_open
    if corr is not None and (math.isnan(corr) or corr > cfg.correlation_threshold):
        factors.append(("correlation", cfg.correlation_factor))
    if inputs.new_listing:
        factors.append(("new_listing", cfg.new_listing_factor))
    factors.append(("risk", inputs.risk_multiplier))
    for _name, value in factors[1:]:
        fraction *= value
    trade_cap = cfg.max_trade_fraction_major if inputs.is_major else cfg.max_trade_fraction_alt
    if fraction > trade_cap:
        fraction = trade_cap
        factors.append(("per_trade_cap", trade_cap))
    return fraction


def binary_kelly(p_win: float, price: float, cfg: SizingConfig) -> tuple[float, str | None]:
    """Fraction of equity for a binary share bought at `price` in (0, 1) paying 1 (SPEC 9).

    Quarter-Kelly: edge = p - price, f = multiplier x edge / (1 - price), capped at
    `cfg.binary_max_trade_fraction`. Returns (0, reason) without an edge.
    """
    if not (math.isfinite(p_win) and math.isfinite(price)):
        return 0.0, "non-finite probability or price"
    if not 0.0 <= p_win <= 1.0:
        return 0.0, f"p {p_win} outside [0, 1]"
    if not 0.0 < price < 1.0:
        return 0.0, f"price {price} outside (0, 1)"
    edge = p_win - price
    if edge <= 0.0:
        return 0.0, f"no edge: p {p_win:.4f} <= price {price:.4f}"
    fraction = cfg.binary_kelly_multiplier * edge / (1.0 - price)
    return min(fraction, cfg.binary_max_trade_fraction), None


def size_binary(
    p_win: float,
    price: Decimal,
    equity: Decimal,
    market: MarketInfo,
    cfg: SizingConfig,
    *,
    max_trade_notional: Decimal | None = None,
) -> SizeResult:
    """Shares to buy of a binary outcome at `price` (Decimal in (0, 1)), rounded down to the lot."""
    rounded = price_for_side(market, price, Side.BUY) if price > 0 else price
    fraction, reason = binary_kelly(p_win, float(rounded), cfg)
    factors = (("binary_kelly", fraction),)
    if reason is not None or equity <= 0:
        return SizeResult(rounded, Decimal(0), fraction, factors, reason or "equity must be positive")
    notional = equity * _fraction_decimal(fraction)
    if max_trade_notional is not None:
        notional = min(notional, max_trade_notional)
    size = round_size(market, notional / rounded)
    why = rejection_reason(market, rounded, size)
    if why is not None:
        return SizeResult(rounded, Decimal(0), fraction, factors, why)
    return SizeResult(rounded, size, fraction, factors, None)


@dataclass(frozen=True)
class OpenPositionRef:
    """An open position as the correlation rule needs it."""

    symbol: str
    opened_at: datetime


def positions_to_halve(
    positions: Sequence[OpenPositionRef],
    correlations: Mapping[tuple[str, str], float],
    cfg: SizingConfig,
) -> frozenset[str]:
    """Symbols to halve: for every pair with return correlation > threshold, the newer of the two.

    `correlations` may hold a pair in either order. The newer is the later `opened_at` (ties: the
    lexicographically larger symbol, so the answer is deterministic). A symbol is halved once even if it
    is correlated with several older positions.
    """
    result: set[str] = set()
    for i, first in enumerate(positions):
        for second in positions[i + 1 :]:
            corr = correlations.get((first.symbol, second.symbol))
            if corr is None:
                corr = correlations.get((second.symbol, first.symbol))
            if corr is None or not (math.isnan(corr) or corr > cfg.correlation_threshold):
                continue
            newer = max(first, second, key=lambda pos: (pos.opened_at, pos.symbol))
            result.add(newer.symbol)
    return frozenset(result)
