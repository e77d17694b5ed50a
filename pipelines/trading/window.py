"""Binary window markets: configuration, quarter-Kelly sizing, entry decisions and settlement. Pure.

SPEC 9 / 13b: buying an outcome token at `price` with model probability `p` of that outcome has
edge = p - price; the Kelly fraction of the bankroll for a binary bet paying 1 is edge / (1 - price),
and the strategy bets a quarter of it: f = kelly_fraction x edge / (1 - price), capped at
`max_bankroll_fraction`, zero when edge <= min_edge (0 by default). The stake is also capped by the
deployment phase (seed phase 1: $200 bankroll, $20 per trade) and by what is left of the daily loss
budget ($10): a binary bet can lose its whole stake, so the stake never exceeds that budget.

Timing: entries only while at least `min_seconds_left` of the window is left (no entry in the last
seconds, when the price already knows the answer). Settlement at resolution pays 1 per winning token.
Model probabilities are floats; prices, sizes and money are Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.domain.window_market import DEFAULT_WINDOW_S, Outcome
from pipelines.trading.window_fees import effective_fee_fraction


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WindowTradingConfig(_Frozen):
    """Directional window trading (defaults: SPEC 9 quarter-Kelly, the seed's deployment phase 1)."""

    window_s: int = Field(default=DEFAULT_WINDOW_S, gt=0)
    bankroll: Decimal = Field(default=Decimal(200), gt=0)
    max_trade: Decimal = Field(default=Decimal(20), gt=0)
    daily_loss_limit: Decimal = Field(default=Decimal(10), gt=0)
    kelly_fraction: float = Field(default=0.25, gt=0, le=1)
    max_bankroll_fraction: float = Field(default=0.10, gt=0, le=1)
    min_edge: float = Field(default=0.0, ge=0, lt=0.5)
    min_seconds_left: float = Field(default=30.0, ge=0)
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal("0.99")
    fee_exponent: int = Field(default=2, ge=0, le=4)
    size_step: Decimal = Field(default=Decimal("0.01"), gt=0)  # shares (Polymarket: 2 decimals)
    entries_per_window: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> WindowTradingConfig:
        if not Decimal(0) < self.min_price < self.max_price < Decimal(1):
            raise ValueError("need 0 < min_price < max_price < 1")
        if self.min_seconds_left >= self.window_s:
            raise ValueError("min_seconds_left must be shorter than the window")
        return self


class WindowMMConfig(_Frozen):
    """Window-market maker (SPEC 12 variant): fair value from the model, 4-cent spread, 1-cent skew."""

    window_s: int = Field(default=DEFAULT_WINDOW_S, gt=0)
    spread: Decimal = Field(default=Decimal("0.04"), gt=0, lt=1)
    skew_per_unit: Decimal = Field(default=Decimal("0.01"), ge=0)
    skew_unit: Decimal = Field(default=Decimal(10), gt=0)  # shares of net inventory per skew step
    quote_size: Decimal = Field(default=Decimal(20), gt=0)
    max_shares_per_side: Decimal = Field(default=Decimal(200), gt=0)
    pull_seconds: float = Field(default=20.0, ge=0)  # quotes are cancelled this long before resolution
    requote_threshold: Decimal = Field(default=Decimal("0.01"), gt=0)
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal("0.99")

    @model_validator(mode="after")
    def _consistent(self) -> WindowMMConfig:
        if not Decimal(0) < self.min_price < self.max_price < Decimal(1):
            raise ValueError("need 0 < min_price < max_price < 1")
        if self.quote_size > self.max_shares_per_side:
            raise ValueError("quote_size must not exceed max_shares_per_side")
        return self


def kelly_stake_fraction(p: float, price: Decimal, cfg: WindowTradingConfig, fee_rate: Decimal = Decimal(0)) -> Decimal:
    """Quarter-Kelly share of the bankroll (exact Decimal) for buying at `price` with probability `p`.

    Zero without edge. The fee (fee fraction of notional x price, per share) is taken off the edge.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p}")
    if not cfg.min_price <= price <= cfg.max_price:
        return Decimal(0)
    fee_per_share = effective_fee_fraction(price, fee_rate, cfg.fee_exponent) * price
    edge = Decimal(repr(p)) - price - fee_per_share
    if edge <= Decimal(repr(cfg.min_edge)):
        return Decimal(0)
    raw = Decimal(repr(cfg.kelly_fraction)) * edge / (Decimal(1) - price)
    return min(raw, Decimal(repr(cfg.max_bankroll_fraction)))


def kelly_fraction(p: float, price: Decimal, cfg: WindowTradingConfig, fee_rate: Decimal = Decimal(0)) -> float:
    """`kelly_stake_fraction` as a float (for reports and tests)."""
    return float(kelly_stake_fraction(p, price, cfg, fee_rate))


@dataclass(frozen=True)
class WindowEntry:
    outcome: Outcome
    price: Decimal
    size: Decimal  # shares
    edge: float
    fraction: float
    stake: Decimal  # USDC at risk = price x size


@dataclass(frozen=True)
class WindowDecision:
    entry: WindowEntry | None
    reason: str


def decide_entry(
    p_up: float,
    up_ask: Decimal | None,
    down_ask: Decimal | None,
    seconds_left: float,
    cfg: WindowTradingConfig,
    *,
    pnl_today: Decimal = Decimal(0),
    min_size: Decimal = Decimal(0),
    fee_rate: Decimal = Decimal(0),
) -> WindowDecision:
    """Which outcome to buy (at its ask) and how many shares, or why none.

    Down is bought with probability 1 - p_up at the Down ask. The side with the larger Kelly fraction
    wins. `pnl_today` (realized, USDC) consumes the daily loss budget.
    """
    if seconds_left < cfg.min_seconds_left:
        return WindowDecision(None, f"{seconds_left:.0f}s left < {cfg.min_seconds_left:.0f}s: no entry")
    budget = cfg.daily_loss_limit + min(pnl_today, Decimal(0))
    if budget <= 0:
        return WindowDecision(None, f"daily loss limit reached (pnl {pnl_today})")
    candidates = []
    for outcome, p, ask in ((Outcome.UP, p_up, up_ask), (Outcome.DOWN, 1.0 - p_up, down_ask)):
        if ask is not None:
            candidates.append((kelly_stake_fraction(p, ask, cfg, fee_rate), outcome, p, ask))
    if not candidates:
        return WindowDecision(None, "no ask on either outcome")
    fraction, outcome, p, ask = max(candidates, key=lambda c: c[0])
    if fraction <= 0:
        return WindowDecision(None, f"no edge: p_up {p_up:.3f}, asks up {up_ask} down {down_ask}")
    stake = min(cfg.bankroll * fraction, cfg.max_trade, budget)
    size = ((stake / ask / cfg.size_step).to_integral_value(rounding=ROUND_FLOOR) * cfg.size_step).quantize(
        cfg.size_step
    )
    if size <= 0 or size < min_size:
        return WindowDecision(None, f"size {size} below the venue minimum {min_size}")
    entry = WindowEntry(outcome, ask, size, p - float(ask), float(fraction), ask * size)
    return WindowDecision(entry, f"buy {size} {outcome.value} @ {ask}: edge {p - float(ask):.3f}, f {fraction:.4f}")


def resolve(open_price: float, close_price: float) -> Outcome:
    """The venue's rule: end >= start resolves Up (a tie is Up)."""
    return Outcome.UP if close_price >= open_price else Outcome.DOWN


def settle(shares: dict[Outcome, Decimal], cost: Decimal, winner: Outcome) -> tuple[Decimal, Decimal]:
    """(payout, pnl) of a window position at resolution: 1 USDC per winning token, 0 per losing one."""
    payout = shares.get(winner, Decimal(0))
    return payout, payout - cost
