"""Maker and taker fees per venue, as fractions of notional (0.0004 = 4 bp); a negative maker fee is a
rebate the venue pays us. fee = price x size x rate, in the quote currency."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pipelines.trading.instruments import MarketInfo


@dataclass(frozen=True)
class FeeSchedule:
    maker: float = 0.0
    taker: float = 0.0

    def __post_init__(self) -> None:
        if abs(self.maker) >= 0.05 or abs(self.taker) >= 0.05:
            raise ValueError("fees are fractions of notional (0.0004 = 4 bp), not percent")

    def fee(self, notional: float, maker: bool) -> float:
        return notional * (self.maker if maker else self.taker)

    @classmethod
    def from_market(cls, market: MarketInfo) -> FeeSchedule:
        return cls(float(market.maker_fee), float(market.taker_fee))

    def decimal_fee(self, notional: Decimal, maker: bool) -> Decimal:
        return notional * Decimal(repr(self.maker if maker else self.taker))
