"""Instrument metadata and the rounding every venue-bound price and size goes through.

Contracts:
- Prices, sizes, notionals, fees are `Decimal`. Fees are fractions of notional (0.001 is 0.1%; a
  negative maker fee is a rebate). Notional is price x size in the quote currency.
- Sizes are always rounded DOWN to the lot: rounding can only make an order smaller, never larger than
  what sizing and the risk caps allowed.
- Prices are rounded in the direction that never worsens the order for us: a buy rounds DOWN (pay at
  most the intended price; a post-only bid stays passive), a sell rounds UP (receive at least the
  intended price; a post-only ask stays passive). The same direction keeps a taker's limit inside its
  slippage cap, so one rule serves both.
- An order whose rounded notional is below the venue minimum is never produced: the check returns a
  human-readable reason instead.
- Send `to_venue_str(value)` to an API, never `str(value)` (which may print "1.5E+3") nor a float.

`MarketInfo` is built from what the venue reports (`load_markets`, see `MarketInfo.from_ccxt`), never
from a hard-coded symbol map (SPEC 1). The only tables here are venue *rules* that ccxt's flat
`precision` cannot express: Upbit's KRW tick size depends on the price band (`TickTable`, the Upbit KRW
tables and `UPBIT_KRW_MIN_ORDER` live in `pipelines.trading.tick_tables`, re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum

from pipelines.trading.config import SizingConfig
from pipelines.trading.tick_tables import (
    UPBIT_KRW_MIN_ORDER,
    UPBIT_KRW_TICKS_2024_01_29,
    UPBIT_KRW_TICKS_2025_07_31,
    TickBand,
    TickTable,
)

__all__ = [
    "UPBIT_KRW_MIN_ORDER",
    "UPBIT_KRW_TICKS_2024_01_29",
    "UPBIT_KRW_TICKS_2025_07_31",
    "MarketInfo",
    "OrderCheck",
    "Rounding",
    "Side",
    "TickBand",
    "TickTable",
    "apply_small_account_rule",
    "is_on_tick",
    "prepare_limit_order",
    "price_for_side",
    "rejection_reason",
    "round_price",
    "round_size",
    "round_to_step",
    "ticks_away",
    "to_decimal",
    "to_venue_str",
]


class Side(StrEnum):
    """Order side."""

    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class Rounding(StrEnum):
    """Direction for rounding to a step."""

    DOWN = "down"
    UP = "up"
    NEAREST = "nearest"


_ROUNDING_MODES = {Rounding.DOWN: ROUND_FLOOR, Rounding.UP: ROUND_CEILING, Rounding.NEAREST: ROUND_HALF_EVEN}


def to_decimal(value: float | int | str | Decimal, name: str = "value") -> Decimal:
    """Convert to Decimal through `str`, refusing NaN and infinities.

    Why `str`: `Decimal(0.1)` is 0.1000000000000000055511151231257827..., which would leak binary noise
    into prices and sizes; `Decimal(str(0.1))` is exactly 0.1.
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        result = Decimal(repr(value))
    else:
        try:
            result = Decimal(value)
        except InvalidOperation as exc:
            raise ValueError(f"{name} is not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def round_to_step(value: Decimal, step: Decimal, rounding: Rounding) -> Decimal:
    """Round `value` to a multiple of `step` (> 0) in the given direction; exact Decimal arithmetic."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    units = (value / step).to_integral_value(rounding=_ROUNDING_MODES[rounding])
    # Not normalized: the result keeps the step's exponent ("3000.10", "143251000"), never "1.43251E+8".
    return units * step if units else Decimal(0)


def to_venue_str(value: Decimal) -> str:
    """Plain decimal text for a venue API ("143251000", "0.00005"), never scientific notation."""
    if not value.is_finite():
        raise ValueError(f"refusing to send non-finite {value!r}")
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


_MAX_ABS_FEE = Decimal("0.05")


@dataclass(frozen=True)
class MarketInfo:
    """One tradable instrument as the venue describes it.

    `symbol` is the unified name (`BTC/KRW`), `venue_symbol_id` what the venue's API expects
    (`KRW-BTC`). `tick_size` is the flat price step; when `tick_table` is set (Upbit KRW) the band
    table decides the step and `tick_size` is only a fallback for display. `min_notional` is in the
    quote currency (0 when the venue has none), `min_size` in base units.
    """

    symbol: str
    venue_symbol_id: str
    tick_size: Decimal
    lot_size: Decimal
    min_notional: Decimal
    maker_fee: Decimal
    taker_fee: Decimal
    min_size: Decimal = Decimal(0)
    tick_table: TickTable | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.symbol or not self.venue_symbol_id:
            raise ValueError("symbol and venue_symbol_id are required")
        for name in ("tick_size", "lot_size", "min_notional", "maker_fee", "taker_fee", "min_size"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise TypeError(f"{name} must be a finite Decimal, got {value!r}")
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise ValueError(f"{self.symbol}: tick_size and lot_size must be positive")
        if self.min_notional < 0 or self.min_size < 0:
            raise ValueError(f"{self.symbol}: minimums must not be negative")
        if abs(self.maker_fee) >= _MAX_ABS_FEE or abs(self.taker_fee) >= _MAX_ABS_FEE:
            raise ValueError(f"{self.symbol}: fees look like percent, not fractions")

    def tick_at(self, price: Decimal) -> Decimal:
        """The price step valid at `price`."""
        return self.tick_table.tick_for(price) if self.tick_table is not None else self.tick_size

    @classmethod
    def from_ccxt(
        cls,
        market: Mapping[str, object],
        *,
        precision_mode: str = "tick_size",
        tick_table: TickTable | None = None,
        min_notional_override: Decimal | None = None,
    ) -> MarketInfo:
        """Build from a ccxt unified market dict (`exchange.markets[symbol]`), no network.

        `precision_mode` mirrors ccxt's `exchange.precisionMode`: "tick_size" (precision values are
        steps, e.g. 0.01) or "decimal_places" (precision values are digit counts, e.g. 2). Pass
        `tick_table=UPBIT_KRW_TICKS_2025_07_31` for Upbit KRW markets, whose tick depends on the price,
        and `min_notional_override=UPBIT_KRW_MIN_ORDER` when ccxt does not report the minimum.
        """
        precision = _mapping(market.get("precision"))
        limits = _mapping(market.get("limits"))
        tick = _step(precision.get("price"), precision_mode, "precision.price")
        lot = _step(precision.get("amount"), precision_mode, "precision.amount")
        cost_min = _mapping(limits.get("cost")).get("min")
        amount_min = _mapping(limits.get("amount")).get("min")
        min_notional = (
            min_notional_override if min_notional_override is not None else _decimal_or_zero(cost_min)
        )
        return cls(
            symbol=str(market["symbol"]),
            venue_symbol_id=str(market["id"]),
            tick_size=tick,
            lot_size=lot,
            min_notional=min_notional,
            maker_fee=_decimal_or_zero(market.get("maker")),
            taker_fee=_decimal_or_zero(market.get("taker")),
            min_size=_decimal_or_zero(amount_min),
            tick_table=tick_table,
        )


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _decimal_or_zero(value: object) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, (int, float, str, Decimal)):
        return to_decimal(value)
    raise TypeError(f"expected a number, got {value!r}")


def _step(value: object, precision_mode: str, name: str) -> Decimal:
    if value is None:
        raise ValueError(f"market has no {name}; refuse to guess a step")
    number = _decimal_or_zero(value)
    if precision_mode == "tick_size":
        return number
    if precision_mode == "decimal_places":
        return Decimal(1).scaleb(-int(number))
    raise ValueError(f"unknown precision_mode {precision_mode!r}")


def round_price(market: MarketInfo, price: Decimal, rounding: Rounding) -> Decimal:
    """Round `price` to the market's tick (band-aware) in the given direction."""
    if price <= 0:
        raise ValueError(f"price must be positive, got {price}")
    return round_to_step(price, market.tick_at(price), rounding)


def price_for_side(market: MarketInfo, price: Decimal, side: Side) -> Decimal:
    """Round a limit price the way that never worsens it for us: buy DOWN, sell UP."""
    return round_price(market, price, Rounding.DOWN if side is Side.BUY else Rounding.UP)


def is_on_tick(market: MarketInfo, price: Decimal) -> bool:
    """True when `price` is a valid order price for this market."""
    return price > 0 and price % market.tick_at(price) == 0


def ticks_away(market: MarketInfo, price: Decimal, n: int) -> Decimal:
    """The price `n` ticks above (n > 0) or below (n < 0) the on-tick `price`, band-aware."""
    result = price
    for _ in range(abs(n)):
        if n > 0:
            result = result + market.tick_at(result)
        else:
            # The tick just below a band boundary is the lower band's tick.
            below = result - market.tick_at(result)
            result = result - market.tick_at(below) if below > 0 else below
    return result


def round_size(market: MarketInfo, size: Decimal) -> Decimal:
    """Round `size` DOWN to the lot: the result is never larger than `size`."""
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    return round_to_step(size, market.lot_size, Rounding.DOWN)


@dataclass(frozen=True)
class OrderCheck:
    """A rounded price and size, and `reason` (None when the order may be sent).

    `note` records an adjustment that was made (e.g. the small-account raise) for the audit log.
    """

    price: Decimal
    size: Decimal
    reason: str | None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def notional(self) -> Decimal:
        return self.price * self.size


def rejection_reason(market: MarketInfo, price: Decimal, size: Decimal) -> str | None:
    """Why an order with this (already rounded) price and size must not be sent, or None."""
    if price <= 0:
        return f"{market.symbol}: price {price} is not positive"
    if not is_on_tick(market, price):
        return f"{market.symbol}: price {price} is not on tick {market.tick_at(price)}"
    if size <= 0:
        return f"{market.symbol}: size rounds to zero at lot {market.lot_size}"
    if size % market.lot_size != 0:
        return f"{market.symbol}: size {size} is not a multiple of lot {market.lot_size}"
    if size < market.min_size:
        return f"{market.symbol}: size {size} below venue minimum size {market.min_size}"
    notional = price * size
    if notional < market.min_notional:
        return f"{market.symbol}: notional {notional} below venue minimum {market.min_notional}"
    return None


def prepare_limit_order(market: MarketInfo, side: Side, price: Decimal, size: Decimal) -> OrderCheck:
    """Round price by side and size down to lot, then check it; `reason` set means do not send."""
    rounded_price = price_for_side(market, price, side)
    rounded_size = round_size(market, size)
    return OrderCheck(rounded_price, rounded_size, rejection_reason(market, rounded_price, rounded_size))


def apply_small_account_rule(
    market: MarketInfo,
    side: Side,
    price: Decimal,
    size: Decimal,
    confidence: float,
    available_notional: Decimal,
    cfg: SizingConfig,
) -> OrderCheck:
    """SPEC 9 small-account rule: never send below the venue minimum; maybe raise to minimum + 10%.

    When the rounded order is below the venue minimum (notional or size), and `confidence` >=
    `cfg.small_account_min_confidence`, and `available_notional` (quote the account can commit to this
    order, fees included; for a sell, base balance x price) covers it, the size is raised to the
    smallest lot multiple whose notional is at least minimum x (1 + `cfg.small_account_margin`).
    Otherwise the result carries a reason and must not be sent. An order already above the minimum is
    returned unchanged (only rounded).
    """
    base = prepare_limit_order(market, side, price, size)
    if base.ok:
        return base
    if base.size > 0 and not _below_minimum(market, base.price, base.size):
        return base  # rejected for a reason the raise cannot fix
    if not math.isfinite(confidence) or confidence < cfg.small_account_min_confidence:
        return OrderCheck(
            base.price,
            base.size,
            f"{base.reason}; confidence {confidence:.2f} < {cfg.small_account_min_confidence} so not raised",
        )
    margin = Decimal(1) + to_decimal(cfg.small_account_margin)
    target_notional = market.min_notional * margin
    target_size = max(
        round_to_step(target_notional / base.price, market.lot_size, Rounding.UP),
        round_to_step(market.min_size * margin, market.lot_size, Rounding.UP),
    )
    cost = target_size * base.price * (Decimal(1) + max(market.taker_fee, Decimal(0)))
    if cost > available_notional:
        return OrderCheck(
            base.price,
            base.size,
            f"{base.reason}; raising to {target_size} needs {cost} but only {available_notional} available",
        )
    reason = rejection_reason(market, base.price, target_size)
    note = (
        f"small-account rule: size raised from {base.size} to {target_size} "
        f"(minimum + {cfg.small_account_margin:.0%})"
    )
    return OrderCheck(base.price, target_size, reason, note)


def _below_minimum(market: MarketInfo, price: Decimal, size: Decimal) -> bool:
    return price * size < market.min_notional or size < market.min_size
