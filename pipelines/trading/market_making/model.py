"""Avellaneda-Stoikov (2008) quoting: the closed forms, then venue-ready Decimal quotes. No IO.

    reservation price   r      = s - q * gamma * sigma^2 * (T - t)
    total spread        delta  = gamma * sigma^2 * (T - t) + (2 / gamma) * ln(1 + gamma / k)
    quotes                       r - delta / 2 (bid),  r + delta / 2 (ask)

sigma is SQUARED in both (a well-known open-source implementation uses sigma: wrong units, and its
skew does not scale with volatility). Units are in `config.py`: seconds, price units, q in clips.

`plan_quotes` turns the model into what may be sent, in this order:
1. the spread is clamped to [min_spread, max_spread] x mid (a mis-scaled k cannot quote nonsense);
2. bid rounded DOWN and ask rounded UP to the venue's tick with Decimal (never tighter than the model);
3. never crossing the book: a bid at most one tick below the best ask, an ask at least one tick above
   the best bid (post-only orders would be rejected otherwise); where the spread is one tick that is
   the touch itself;
4. sizes: one clip = `order_notional` at the quote price rounded down to the lot, raised to the venue
   minimum (+ margin) when below it; every side is checked with `rejection_reason`;
5. inventory cap on q = held - target (`Inventory`): q + resting bids + new bid <= cap, and the same
   below -cap for asks, so no combination of fills can take the inventory past the cap; on spot
   (`allow_short` False) an ask is also never larger than the base held minus the asks resting, so no
   combination of fills takes the holding below 0;
6. rebalancing: above `rebalance_fraction` of the cap (|q|) only the reducing side is quoted, at least
   as aggressively as the touch (still post-only).

The inventory q of the formulas is measured against a target holding: a spot market maker holds base
(it cannot sell what it does not have), so q = base held - `Inventory.target` and both sides can
quote from the start; on a perpetual the target is normally 0 and q is the signed position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from pipelines.trading.instruments import (
    MarketInfo,
    Rounding,
    Side,
    price_for_side,
    rejection_reason,
    round_size,
    round_to_step,
    ticks_away,
    to_decimal,
)
from pipelines.trading.market_making.config import HorizonMode, MarketMakingConfig


def reservation_price(mid: float, q: float, gamma: float, sigma: float, tau: float) -> float:
    """r = s - q gamma sigma^2 (T - t): long inventory (q > 0) puts r below the mid."""
    return mid - q * gamma * sigma * sigma * tau


def optimal_spread(gamma: float, sigma: float, tau: float, k: float) -> float:
    """The TOTAL spread delta^a + delta^b = gamma sigma^2 (T - t) + (2/gamma) ln(1 + gamma/k)."""
    if gamma <= 0 or k <= 0:
        raise ValueError(f"gamma and k must be positive, got gamma={gamma} k={k}")
    return gamma * sigma * sigma * tau + (2.0 / gamma) * math.log1p(gamma / k)


def time_to_horizon(now: datetime, mode: HorizonMode, horizon_seconds: float) -> float:
    """T - t in seconds. finite: cycles of T aligned to the UTC epoch (T - t runs from T down towards 0,
    then a new cycle starts); rolling: the horizon never comes closer (the infinite-horizon mode)."""
    if mode == "rolling":
        return horizon_seconds
    elapsed = now.timestamp() % horizon_seconds
    return horizon_seconds - elapsed


@dataclass(frozen=True)
class Touch:
    """The best bid and ask the quotes must not cross."""

    bid: Decimal
    ask: Decimal

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True)
class QuotePlan:
    """What to quote now. A side is None when it must not be quoted; `reasons` says why."""

    mid: float
    reservation: float
    spread: float  # total model spread after the min/max clamp, price units
    q: float  # inventory in clips, relative to the target holding
    clip: Decimal
    bid_price: Decimal | None = None
    bid_size: Decimal | None = None
    ask_price: Decimal | None = None
    ask_size: Decimal | None = None
    rebalancing: bool = False
    reasons: tuple[str, ...] = field(default_factory=tuple)


def clip_size(market: MarketInfo, price: Decimal, cfg: MarketMakingConfig) -> Decimal:
    """One clip at `price`: `order_notional` rounded down to the lot, raised to the venue minimum
    (notional and size) plus `min_notional_margin` when it falls below it."""
    size = round_size(market, cfg.order_notional / price)
    if size * price >= market.min_notional and size >= market.min_size and size > 0:
        return size
    margin = Decimal(1) + to_decimal(cfg.min_notional_margin)
    return max(
        round_to_step(market.min_notional * margin / price, market.lot_size, Rounding.UP),
        round_to_step(max(market.min_size, market.lot_size), market.lot_size, Rounding.UP),
    )


def _passive_price(market: MarketInfo, touch: Touch, side: Side, raw: float) -> Decimal | None:
    """Round away from the touch (bid down, ask up) and keep the order resting (never crossing)."""
    if not math.isfinite(raw) or raw <= 0:
        return None
    price = price_for_side(market, to_decimal(raw), side)
    if side is Side.BUY:
        limit = ticks_away(market, touch.ask, -1)
        price = min(price, limit)
    else:
        price = max(price, ticks_away(market, touch.bid, 1))
    return price if price > 0 else None


def _sized(market: MarketInfo, price: Decimal, clip: Decimal, headroom: Decimal) -> tuple[Decimal | None, str]:
    """The clip at `price` within the cap headroom, or None and why not."""
    size = min(clip, round_size(market, max(headroom, Decimal(0))))
    reason = rejection_reason(market, price, size)
    if reason is not None:
        return None, f"cap headroom {headroom}: {reason}" if size < clip else reason
    return size, ""


@dataclass(frozen=True)
class Inventory:
    """Base held and what is still resting (orders whose cancel may not have landed yet), base units.

    `position` is the base held (spot: the account's base balance; a perpetual: the signed position);
    `target` is the holding the strategy returns to, so q = position - target is the model's inventory.
    """

    position: Decimal
    resting_buy: Decimal = Decimal(0)
    resting_sell: Decimal = Decimal(0)
    target: Decimal = Decimal(0)

    @property
    def q(self) -> Decimal:
        """The inventory the model and the cap see: base held minus the target, base units."""
        return self.position - self.target


def plan_quotes(
    market: MarketInfo,
    touch: Touch,
    inventory: Inventory,
    *,
    sigma: float,
    k: float,
    tau: float,
    cfg: MarketMakingConfig,
) -> QuotePlan:
    """The two quotes (or fewer) for this instant; see the module docstring for the rules."""
    if touch.bid <= 0 or touch.ask <= touch.bid:
        return QuotePlan(float(touch.mid), float("nan"), float("nan"), 0.0, Decimal(0), reasons=("crossed book",))
    mid = float(touch.mid)
    clip = clip_size(market, touch.mid, cfg)
    q_base = inventory.q
    q = float(q_base / clip)
    r = reservation_price(mid, q, cfg.gamma, sigma, tau)
    model_spread = optimal_spread(cfg.gamma, sigma, tau, k)
    spread = min(max(model_spread, cfg.min_spread * mid), cfg.max_spread * mid)
    cap = clip * cfg.max_inventory_clips
    rebalancing = abs(q_base) > cap * to_decimal(cfg.rebalance_fraction)
    bid = _passive_price(market, touch, Side.BUY, r - spread / 2)
    ask = _passive_price(market, touch, Side.SELL, r + spread / 2)
    reasons: list[str] = []
    if model_spread > cfg.max_spread * mid:
        # The SPEC 12 pitfall: a k in the wrong unit (per tick, not per price unit) quotes the ceiling.
        reasons.append(f"model spread {model_spread:.6g} above max_spread x mid: check k ({k:.4g}) is per price unit")
    if rebalancing:
        reasons.append(f"rebalancing: |q| {abs(q_base)} > {cfg.rebalance_fraction:.0%} of cap {cap}")
        if q_base > 0:
            bid = None
            ask = min(ask, touch.ask) if ask is not None else touch.ask
        else:
            ask = None
            bid = max(bid, touch.bid) if bid is not None else touch.bid
    bid_size = ask_size = None
    if bid is not None:
        headroom = cap - q_base - inventory.resting_buy
        bid_size, why = _sized(market, bid, clip_size(market, bid, cfg), headroom)
        bid = bid if bid_size is not None else None
        reasons += [f"no bid: {why}"] if bid is None else []
    if ask is not None:
        headroom = q_base + cap - inventory.resting_sell
        if not cfg.allow_short:  # spot: never sell more base than is held (and not already offered)
            headroom = min(headroom, inventory.position - inventory.resting_sell)
        ask_size, why = _sized(market, ask, clip_size(market, ask, cfg), headroom)
        ask = ask if ask_size is not None else None
        reasons += [f"no ask: {why}"] if ask is None else []
    return QuotePlan(mid, r, spread, q, clip, bid, bid_size, ask, ask_size, rebalancing, tuple(reasons))


def needs_refresh(
    last_mid: float | None, last_at: datetime | None, mid: float, now: datetime, cfg: MarketMakingConfig
) -> bool:
    """Re-quote when nothing is quoted yet, the mid moved past the threshold, or `refresh_seconds` passed."""
    if last_mid is None or last_at is None or last_mid <= 0:
        return True
    if abs(mid - last_mid) / last_mid >= cfg.refresh_mid_move:
        return True
    return (now - last_at).total_seconds() >= cfg.refresh_seconds
