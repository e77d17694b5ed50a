"""Price-band tick tables: venue rules ccxt's flat `precision` cannot express (Upbit KRW).

Part of `pipelines.trading.instruments`, which re-exports every name here (`MarketInfo.tick_table`
takes a `TickTable`). Prices and ticks are `Decimal`.

Upbit KRW tick table
--------------------
Source: Upbit developer center, "원화(KRW) 마켓 주문 가격 단위 / 최소 주문 가능 금액"
(https://docs.upbit.com/kr/docs/krw-market-info), as changed on 2025-07-31 ("원화마켓 호가 정책 전반
변경"). Bands are [lower, next lower); the tick applies to the order price:

    price (KRW)                tick (KRW)
    >= 2,000,000               1,000
    1,000,000 - 2,000,000      1,000
    500,000 - 1,000,000        500
    100,000 - 500,000          100
    50,000 - 100,000           50
    10,000 - 50,000            10
    5,000 - 10,000             5
    1,000 - 5,000              1
    100 - 1,000                1
    10 - 100                   0.1
    1 - 10                     0.01
    0.1 - 1                    0.001
    0.01 - 0.1                 0.0001
    0.001 - 0.01               0.00001
    0.0001 - 0.001             0.000001
    0.00001 - 0.0001           0.0000001
    < 0.00001                  0.00000001

The rows from 2,000,000 down to 100 are as read from the official page; the rows below 100 KRW are
from third-party transcriptions of the same page and are less certain. The previous table (in force
from 2024-01-29 until 2025-07-31: 1,000,000-2,000,000 -> 500, 500,000-1,000,000 -> 100,
100,000-500,000 -> 50, 10,000-100,000 -> 10, 1,000-10,000 -> 1, 100-1,000 -> 0.1 (1 for 16 listed
assets from 2024-10), 10-100 -> 0.01, ...) is kept as `UPBIT_KRW_TICKS_2024_01_29` for replaying
history. Known exceptions not encoded: USDT/KRW and USDC/KRW use 0.5 in the 1,000-10,000 band since
2025-03-21. Upbit now publishes per-pair tick sizes (`GET /v1/orderbook/instruments`); when an adapter
has that figure for the current price it should win over this table. Minimum order: 5,000 KRW.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class TickBand:
    """Prices at or above `lower` (up to the next band) use `tick`."""

    lower: Decimal
    tick: Decimal


@dataclass(frozen=True)
class TickTable:
    """A price-band tick table (a venue rule), checked so that rounding up never leaves the grid.

    Every band's lower bound must itself be on that band's tick, so a price rounded up across a band
    boundary lands on a valid price of the higher band.
    """

    source: str
    bands: tuple[TickBand, ...]

    def __post_init__(self) -> None:
        if not self.bands:
            raise ValueError("a tick table needs at least one band")
        ordered = tuple(sorted(self.bands, key=lambda band: band.lower, reverse=True))
        if ordered[-1].lower != 0:
            raise ValueError("the lowest band must start at 0")
        for band in ordered:
            if band.tick <= 0:
                raise ValueError(f"tick must be positive in band {band}")
            if band.lower % band.tick != 0:
                raise ValueError(f"band lower bound {band.lower} is not on its own tick {band.tick}")
        object.__setattr__(self, "bands", ordered)

    def tick_for(self, price: Decimal) -> Decimal:
        """The tick of the band `price` falls in (bands are [lower, next lower))."""
        if price < 0:
            raise ValueError(f"price must not be negative, got {price}")
        for band in self.bands:
            if price >= band.lower:
                return band.tick
        raise AssertionError("unreachable: the lowest band starts at 0")


def _table(source: str, rows: Sequence[tuple[str, str]]) -> TickTable:
    return TickTable(source=source, bands=tuple(TickBand(Decimal(lo), Decimal(t)) for lo, t in rows))


UPBIT_KRW_TICKS_2025_07_31 = _table(
    "Upbit KRW market tick table, in force from 2025-07-31 (docs.upbit.com/kr/docs/krw-market-info)",
    [
        ("2000000", "1000"),
        ("1000000", "1000"),
        ("500000", "500"),
        ("100000", "100"),
        ("50000", "50"),
        ("10000", "10"),
        ("5000", "5"),
        ("1000", "1"),
        ("100", "1"),
        ("10", "0.1"),
        ("1", "0.01"),
        ("0.1", "0.001"),
        ("0.01", "0.0001"),
        ("0.001", "0.00001"),
        ("0.0001", "0.000001"),
        ("0.00001", "0.0000001"),
        ("0", "0.00000001"),
    ],
)

UPBIT_KRW_TICKS_2024_01_29 = _table(
    "Upbit KRW market tick table, 2024-01-29 to 2025-07-31 "
    "(general rows; the 16-asset 100-1,000 exception is not encoded)",
    [
        ("2000000", "1000"),
        ("1000000", "500"),
        ("500000", "100"),
        ("100000", "50"),
        ("10000", "10"),
        ("1000", "1"),
        ("100", "0.1"),
        ("10", "0.01"),
        ("1", "0.001"),
        ("0.1", "0.0001"),
        ("0.01", "0.00001"),
        ("0.001", "0.000001"),
        ("0.0001", "0.0000001"),
        ("0", "0.00000001"),
    ],
)

UPBIT_KRW_MIN_ORDER = Decimal(5000)
"""Upbit KRW market minimum order total (price x size), in KRW."""
