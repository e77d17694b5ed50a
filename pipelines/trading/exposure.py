"""Exposure per underlying asset, netted across venues and instrument types (spot, perpetuals).

The concentration kill switch (SPEC 10: one symbol > 30% of exposure: stop adding) reads the *net*
notional of an underlying against the account's *gross* notional: a delta-neutral pair (long spot
BTC on one venue, short BTC perpetual on another: `BTC/USDT` and `BTC/USDT:USDT`) is a net BTC
exposure of about 0, not two 50% concentrations. Gross (the sum of every leg's absolute notional)
still feeds the leverage switch, so hedged books cannot grow past the leverage cap.

Underlying of a unified ccxt symbol: its base (`BTC/USDT`, `BTC/USDC:USDC`, `BTC/USDT:USDT-261225`
are all `BTC`); a symbol without a slash is its own underlying.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal


def underlying(symbol: str) -> str:
    """`BTC` for `BTC/USDT`, `BTC/USDT:USDT`, `BTC/USDC:USDC`; the symbol itself without a `/`."""
    base, sep, _ = symbol.partition("/")
    return base.upper() if sep and base else symbol


@dataclass
class AssetExposure:
    """One underlying: `net` is the signed notional summed over its legs, `gross` their absolute sum."""

    asset: str
    net: Decimal = Decimal(0)
    gross: Decimal = Decimal(0)
    symbols: set[str] = field(default_factory=set)


def by_underlying(legs: Iterable[tuple[str, Decimal]]) -> dict[str, AssetExposure]:
    """(symbol, signed notional) legs -> exposure per underlying (every symbol listed, even at 0)."""
    out: dict[str, AssetExposure] = {}
    for symbol, notional in legs:
        asset = underlying(symbol)
        agg = out.setdefault(asset, AssetExposure(asset))
        agg.net += notional
        agg.gross += abs(notional)
        agg.symbols.add(symbol)
    return out
