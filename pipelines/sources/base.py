"""The market-data source interface: every source yields frames in the candle schema."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import polars as pl

# Never trade these as directional assets: stablecoins, fiat, wrapped fiat.
STABLE_OR_FIAT = frozenset(
    {
        "USDT",
        "USDC",
        "BUSD",
        "TUSD",
        "FDUSD",
        "DAI",
        "USDP",
        "PYUSD",
        "USDD",
        "UST",
        "USTC",
        "EUR",
        "GBP",
        "TRY",
        "BRL",
        "AUD",
        "RUB",
        "UAH",
        "JPY",
        "KRW",
        "AEUR",
        "EURI",
        "USD1",
        "USDE",
        "PAXG",
        "XUSD",
        "BFUSD",
        "IDRT",
        "BIDR",
        "NGN",
        "ZAR",
        "ARS",
        "PLN",
        "RON",
        "MXN",
        "COP",
        "CZK",
    }
)
LEVERAGED_SUFFIXES = ("UP", "DOWN", "BULL", "BEAR", "3L", "3S", "5L", "5S")


def is_excluded_base(base: str, known_bases: frozenset[str] | set[str] = frozenset()) -> bool:
    """Stablecoins, fiat and leveraged tokens are never candidates (SPEC section 3).

    A leveraged token is recognised as `<listed base><UP|DOWN|BULL|BEAR|3L|...>` ("BTCUP" when "BTC"
    is listed), so real coins that merely end in such letters ("SYRUP") stay candidates.
    """
    if base in STABLE_OR_FIAT:
        return True
    return any(base.endswith(sfx) and base[: -len(sfx)] in known_bases for sfx in LEVERAGED_SUFFIXES)


class CandleSource(Protocol):
    """A venue or recording that can list spot symbols and return candles.

    Times are timezone-aware UTC; `end` is exclusive. Frames follow `pipelines.domain.candles`.
    """

    name: str
    venue: str

    def as_of(self) -> datetime:
        """The newest instant the source has complete data for (UTC)."""
        ...

    def list_symbols(self, quote: str) -> list[str]:
        """Active spot symbols quoted in `quote`, ccxt form ("BTC/USDT")."""
        ...

    def fetch_candles(
        self, symbols: list[str], timeframe: str, start: datetime, end: datetime
    ) -> pl.DataFrame:
        """Closed bars with open time in [start, end) for each symbol."""
        ...
