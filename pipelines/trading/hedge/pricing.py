"""Sizes, prices and economics of one hedge cycle. Pure Decimal arithmetic on each venue's `MarketInfo`.

- Maker size: the phase's target notional at the maker price, rounded DOWN to a lot both venues accept
  (the least common multiple of the two lot sizes), so a full maker fill is hedgeable exactly; refused
  (a reason, not an order) below either venue's minimum size or notional.
- Hedge price: a marketable limit within `band` of the hedge venue's touch (a sell at bid x (1 - band),
  a buy at ask x (1 + band)), rounded to the hedge venue's own tick in the direction that keeps it
  inside the band (sell up, buy down).
- Spread cost (bps of the maker price, positive = we lose): a maker buy at P hedged by a sell at H costs
  (P - H) / P; a maker sell at P hedged by a buy at H costs (H - P) / P.
- Edge: maker rebate (-maker fee) minus spread cost, minus the hedge's taker fee when configured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from pipelines.trading.hedge.config import HedgeConfig
from pipelines.trading.instruments import MarketInfo, Rounding, Side, price_for_side, round_to_step

BPS = Decimal(10_000)


def common_lot(a: Decimal, b: Decimal) -> Decimal:
    """The smallest positive size that is a whole number of both lots (exact, for Decimal steps)."""
    exponent = min(a.as_tuple().exponent, b.as_tuple().exponent)
    if not isinstance(exponent, int):
        raise ValueError(f"lots must be finite, got {a}, {b}")
    scale = Decimal(1).scaleb(exponent)
    ia, ib = int(a / scale), int(b / scale)
    return Decimal(ia * ib // math.gcd(ia, ib)) * scale


@dataclass(frozen=True)
class SizeCheck:
    size: Decimal
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None


def maker_size(
    notional: Decimal, price: Decimal, primary: MarketInfo, hedge: MarketInfo, max_raise: Decimal = Decimal("1.25")
) -> SizeCheck:
    """The maker order size for a target notional, hedgeable as a whole on the hedge venue.

    Below a venue minimum (size or notional) the size is raised to that minimum plus 10% (so a hedge at
    a price up to 10% worse still clears it), but never beyond `max_raise` x the target notional.
    """
    lot = common_lot(primary.lot_size, hedge.lot_size)
    size = round_to_step(notional / price, lot, Rounding.DOWN)
    margin = Decimal("1.1")
    floor = max(primary.min_size, hedge.min_size) * margin
    floor = max(floor, max(primary.min_notional, hedge.min_notional) * margin / price)
    if size < floor or size <= 0:
        raised = max(round_to_step(floor, lot, Rounding.UP), lot)
        if raised * price > notional * max_raise:
            return SizeCheck(size, f"target {notional} at {price} is below the venues' minimum ({raised} needed)")
        size = raised
    return SizeCheck(size, None)


def taker_limit(market: MarketInfo, side: Side, touch: Decimal, band: Decimal) -> Decimal:
    """A marketable IOC limit at most `band` through the touch, on the venue's tick, never outside the band."""
    raw = touch * (Decimal(1) + band) if side is Side.BUY else touch * (Decimal(1) - band)
    return price_for_side(market, raw, side)


def hedgeable(market: MarketInfo, size: Decimal, price: Decimal) -> Decimal:
    """`size` rounded down to the venue's lot, or 0 when that is below its minimum size or notional."""
    rounded = round_to_step(size, market.lot_size, Rounding.DOWN)
    if rounded <= 0 or rounded < market.min_size or rounded * price < market.min_notional:
        return Decimal(0)
    return rounded


def spread_cost_bps(maker_side: Side, maker_price: Decimal, hedge_price: Decimal) -> float:
    """What crossing to the hedge venue costs, in bps of the maker price (negative = a gain)."""
    diff = maker_price - hedge_price if maker_side is Side.BUY else hedge_price - maker_price
    return float(diff / maker_price * BPS)


def fee_rates(cfg: HedgeConfig, primary: MarketInfo, hedge: MarketInfo) -> tuple[Decimal, Decimal]:
    """(primary maker fee, hedge taker fee) as fractions: configuration wins over the venue's figure."""
    maker = cfg.primary_maker_fee if cfg.primary_maker_fee is not None else primary.maker_fee
    taker = cfg.hedge_taker_fee if cfg.hedge_taker_fee is not None else hedge.taker_fee
    return maker, taker


def expected_edge_bps(
    cfg: HedgeConfig,
    maker_side: Side,
    maker_price: Decimal,
    hedge_touch: Decimal,
    primary: MarketInfo,
    hedge: MarketInfo,
) -> tuple[float, float]:
    """(edge, spread cost) in bps for a maker at `maker_price` hedged at the hedge venue's current touch."""
    maker_fee, taker_fee = fee_rates(cfg, primary, hedge)
    cost = spread_cost_bps(maker_side, maker_price, hedge_touch)
    edge = float(-maker_fee * BPS) - cost
    if cfg.include_hedge_taker_fee:
        edge -= float(taker_fee * BPS)
    return edge, cost


def hedge_margin_needed(cfg: HedgeConfig, hedge: MarketInfo, size: Decimal, price: Decimal) -> Decimal:
    """Hedge-venue balance a hedge of `size` at `price` needs: margin plus the taker fee."""
    notional = size * price
    return notional * cfg.hedge_margin_per_notional + notional * max(hedge.taker_fee, Decimal(0))
