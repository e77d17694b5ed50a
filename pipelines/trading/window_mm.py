"""Quotes of the window-market maker (SPEC 12, window variant). Pure.

Fair value is the model's probability that the window resolves Up. Around it:

    mid   = fair - skew_per_unit x (net inventory / skew_unit)      (long Up -> quotes move down)
    bid   = mid - spread / 2,  ask = mid + spread / 2

rounded to the market's tick (bid down, ask up: never tighter than asked) and clamped to
[min_price, max_price] = [0.01, 0.99]. Net inventory is Up tokens minus Down tokens (a pair of one
Up and one Down token is worth exactly 1 at resolution, i.e. flat).

Selling Up at `ask` is done as buying Down at 1 - ask (the same exposure, and it needs no Up tokens
in the wallet), so both quotes are bids: `up_bid` on the Up token and `down_bid` on the Down token.
Each side is at most `max_shares_per_side` of net exposure: the Up bid shrinks as the net long grows,
the Down bid as the net short grows. Inside the last `pull_seconds` of the window there are no quotes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from pipelines.trading.window import WindowMMConfig


@dataclass(frozen=True)
class Quote:
    price: Decimal  # the price of the token being bought
    size: Decimal


@dataclass(frozen=True)
class WindowQuotes:
    up_bid: Quote | None  # buy Up at this price
    down_bid: Quote | None  # buy Down at this price (= offer Up at 1 - price)
    fair: Decimal
    mid: Decimal

    @property
    def up_ask(self) -> Decimal | None:
        """The Up-token price at which the Down bid is an offer of Up."""
        return None if self.down_bid is None else Decimal(1) - self.down_bid.price


def _on_tick(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (price / tick).to_integral_value(rounding=rounding) * tick


def _size(limit: Decimal, cfg: WindowMMConfig, step: Decimal) -> Decimal | None:
    size = (min(cfg.quote_size, limit) / step).to_integral_value(rounding=ROUND_FLOOR) * step
    return size if size > 0 else None


def window_quotes(
    p_up: float,
    net_inventory: Decimal,
    seconds_left: float,
    tick: Decimal,
    cfg: WindowMMConfig,
    *,
    size_step: Decimal = Decimal("0.01"),
    min_size: Decimal = Decimal(0),
) -> WindowQuotes | None:
    """The two quotes for the current window, or None when they must be pulled (close to resolution)."""
    if not 0.0 <= p_up <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p_up}")
    if tick <= 0:
        raise ValueError("tick must be positive")
    if seconds_left <= cfg.pull_seconds:
        return None
    fair = Decimal(repr(p_up))
    mid = fair - cfg.skew_per_unit * (net_inventory / cfg.skew_unit)
    half = cfg.spread / 2
    lo, hi = cfg.min_price, cfg.max_price
    bid = min(max(_on_tick(mid - half, tick, ROUND_FLOOR), lo), hi)
    ask = max(min(_on_tick(mid + half, tick, ROUND_CEILING), hi), lo)
    up_size = _size(cfg.max_shares_per_side - max(net_inventory, Decimal(0)), cfg, size_step)
    down_size = _size(cfg.max_shares_per_side - max(-net_inventory, Decimal(0)), cfg, size_step)
    up_quote = Quote(bid, up_size) if up_size is not None and up_size >= min_size and bid < ask else None
    down_price = Decimal(1) - ask
    down_quote = (
        Quote(down_price, down_size)
        if down_size is not None and down_size >= min_size and bid < ask and lo <= down_price <= hi
        else None
    )
    return WindowQuotes(up_quote, down_quote, fair, mid)
