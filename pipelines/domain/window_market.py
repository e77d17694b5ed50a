"""Binary 5-minute window markets (Polymarket BTC up/down, SPEC 13b): venue-independent types.

A window market opens every `window_s` seconds (300 by default) at a Unix time that is a multiple of
the window length; its slug is `btc-updown-5m-<unix start>`. It resolves Up when the reference BTC
price at the end is >= the price at the start (ties resolve Up), Down otherwise. Each market has two
outcome tokens (Up, Down) that trade between 0.01 and 0.99 and pay 1 USDC (winner) or 0 at resolution.

Conventions:
- Times are aware UTC datetimes; window starts are also given as Unix seconds (`start_s`).
- Prices and sizes that reach a venue are `Decimal` (prices in USDC per token, sizes in tokens).
- `handle` is the ccxt outcome handle ("BTC_UPDOWN_5M_1700000100:UP"), the symbol strategies trade;
  `token_id` is the venue's CLOB token id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

DEFAULT_WINDOW_S = 300
SLUG_PREFIX = "btc-updown-5m-"


class Outcome(StrEnum):
    UP = "Up"
    DOWN = "Down"

    @property
    def other(self) -> Outcome:
        return Outcome.DOWN if self is Outcome.UP else Outcome.UP


def window_start_s(now: datetime, window_s: int = DEFAULT_WINDOW_S) -> int:
    """Unix start (seconds) of the window containing `now` (a window is [start, start + window_s))."""
    seconds = int(now.timestamp())
    return seconds - seconds % window_s


def window_slug(start_s: int, prefix: str = SLUG_PREFIX) -> str:
    return f"{prefix}{start_s}"


def start_from_slug(slug: str, prefix: str = SLUG_PREFIX) -> int:
    """The Unix start encoded in a window slug; ValueError for any other slug."""
    if not slug.startswith(prefix) or not slug[len(prefix) :].isdigit():
        raise ValueError(f"not a window-market slug: {slug!r} (expected {prefix}<unix start>)")
    return int(slug[len(prefix) :])


def outcome_handle(start_s: int, outcome: Outcome, prefix: str = SLUG_PREFIX) -> str:
    """The ccxt outcome handle of a window's token (what ccxt's `shorten_slug` makes of the slug)."""
    market = window_slug(start_s, prefix).replace("-", "_").upper()
    return f"{market}:{outcome.value.upper()}"


def seconds_left(now: datetime, start_s: int, window_s: int = DEFAULT_WINDOW_S) -> float:
    """Seconds until the window resolves (negative once it has ended)."""
    return start_s + window_s - now.timestamp()


@dataclass(frozen=True)
class OutcomeToken:
    outcome: Outcome
    handle: str
    token_id: str


@dataclass(frozen=True)
class WindowMarket:
    """One window as the venue lists it. `tick_size`/`min_size` as read when it was discovered."""

    slug: str
    condition_id: str
    start: datetime
    end: datetime
    up: OutcomeToken
    down: OutcomeToken
    tick_size: Decimal
    min_size: Decimal
    active: bool
    resolved: bool = False
    winner: Outcome | None = None

    @property
    def start_s(self) -> int:
        return int(self.start.timestamp())

    def token(self, outcome: Outcome) -> OutcomeToken:
        return self.up if outcome is Outcome.UP else self.down

    def outcome_of(self, token_id_or_handle: str) -> Outcome:
        for token in (self.up, self.down):
            if token_id_or_handle in (token.token_id, token.handle):
                return token.outcome
        raise KeyError(f"{token_id_or_handle} is not a token of {self.slug}")


def window_bounds(start_s: int, window_s: int = DEFAULT_WINDOW_S) -> tuple[datetime, datetime]:
    start = datetime.fromtimestamp(start_s, UTC)
    return start, start + timedelta(seconds=window_s)


@dataclass(frozen=True)
class BookSide:
    price: Decimal
    size: Decimal


@dataclass(frozen=True)
class OutcomeBook:
    """An outcome token's order book, best level first on each side, with the tick it was read with."""

    token_id: str
    bids: tuple[BookSide, ...]
    asks: tuple[BookSide, ...]
    tick_size: Decimal
    ts: datetime

    @property
    def best_bid(self) -> BookSide | None:
        return self.bids[0] if self.bids else None

    @property
    def best_ask(self) -> BookSide | None:
        return self.asks[0] if self.asks else None


@dataclass(frozen=True)
class OutcomeFee:
    """A market's fee as the venue reports it: `rate` (base fee bps / 10,000) on the price curve."""

    token_id: str
    rate: Decimal
    read_at: datetime


@dataclass(frozen=True)
class OutcomeTrade:
    trade_id: str
    token_id: str
    price: Decimal
    size: Decimal
    side: str  # "buy" | "sell" (the aggressor's side for public trades, ours for fills)
    ts: datetime
    order_id: str | None = None
    fee_rate: Decimal | None = None


@dataclass(frozen=True)
class OutcomeOrder:
    order_id: str
    token_id: str
    side: str
    price: Decimal
    size: Decimal
    filled: Decimal
    status: str  # ccxt unified: open, closed, canceled
