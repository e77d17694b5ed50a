"""Every number of SPEC section 13 (the two-venue hedge) as validated, frozen configuration.

Contracts (as in `pipelines.trading.config`): fractions are fractions (0.002 is 0.2%), basis points are
named `*_bps`, durations are seconds named `*_seconds`, money amounts are `Decimal` in the quote currency.
The model is frozen and rejects unknown keys, so a typo fails at load. The settings layer (prefix
`ALPHATIDE_`, e.g. `ALPHATIDE_HEDGE__HEDGE_TIMEOUT_SECONDS`) owns where the mapping comes from; build one
with `HedgeConfig.model_validate(mapping)`.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MakerSide(StrEnum):
    """Which side the primary venue's maker order takes.

    AUTO: buy while the strategy's primary position is below one maker size, else sell it back: a spot
    primary then alternates buy/sell and never needs inventory it does not have.
    """

    AUTO = "auto"
    BUY = "buy"
    SELL = "sell"


def _default_phases() -> tuple[Decimal, ...]:
    return tuple(Decimal(v) for v in ("10", "20", "50", "100", "200", "500"))


class HedgeConfig(BaseModel):
    """One hedge strategy: a post-only maker on `primary_venue`, an IOC taker hedge on `hedge_venue`.

    Symbols are unified ccxt symbols of each venue (`BTC/USDC` on Backpack, `BTC/USDC:USDC` on
    Hyperliquid); tick, lot, minimums and fees always come from each venue's own `MarketInfo`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    primary_venue: str = Field(default="primary", min_length=1, description="engine broker name of the maker leg")
    hedge_venue: str = Field(default="hedge", min_length=1, description="engine broker name of the taker leg")
    primary_symbol: str = Field(default="BTC/USDT", min_length=1)
    hedge_symbol: str = Field(default="BTC/USDT:USDT", min_length=1)
    maker_side: MakerSide = MakerSide.AUTO

    # Progressive sizing (SPEC 13): target notional per cycle, up after N clean, down after M failures.
    phases: tuple[Decimal, ...] = Field(default_factory=_default_phases, min_length=1)
    clean_cycles_to_advance: int = Field(default=3, ge=1)
    failures_to_step_down: int = Field(default=2, ge=1)

    # Timing. The hedge's fill timeout is SPEC 13's 5-15 s band.
    hedge_timeout_seconds: float = Field(default=5.0, ge=5.0, le=15.0)
    maker_ttl_seconds: float = Field(default=30.0, gt=0, description="a resting maker order is cancelled after this")
    verify_timeout_seconds: float = Field(default=3.0, gt=0, description="net must read zero within this")
    max_book_age_seconds: float = Field(default=3.0, gt=0, description="an older book is not quoted from")
    recovery_wait_seconds: float = Field(
        default=10.0, ge=0, description="after a restart, wait this long for fresh books before finishing a cycle"
    )
    cooldown_seconds: float = Field(default=0.5, ge=0, description="pause between a cycle's end and the next")

    # Hedge pricing: a marketable limit IOC within a band of the hedge venue's touch.
    slippage_band: Decimal = Field(default=Decimal("0.002"), gt=0, le=Decimal("0.05"))
    max_hedge_attempts: int = Field(default=3, ge=1, description="hedge orders per cycle before unwinding")
    unwind_slippage_band: Decimal = Field(default=Decimal("0.005"), gt=0, le=Decimal("0.05"))
    max_unwind_attempts: int = Field(default=3, ge=1)
    requote_ticks: int = Field(default=1, ge=1, description="cancel an unfilled maker this many ticks off the touch")

    # Economics: run only while the expected maker rebate covers the spread cost (SPEC 13).
    # edge_bps = maker rebate - spread cost (primary vs hedge price) [- hedge taker fee]; quote when
    # edge_bps >= min_edge_bps. Fees as fractions (negative maker fee = rebate); None = the venue's.
    min_edge_bps: float = Field(default=0.0, ge=-100.0, le=100.0)
    include_hedge_taker_fee: bool = False
    primary_maker_fee: Decimal | None = Field(default=None, gt=Decimal("-0.05"), lt=Decimal("0.05"))
    hedge_taker_fee: Decimal | None = Field(default=None, gt=Decimal("-0.05"), lt=Decimal("0.05"))

    # Hedge venue balance: margin needed per unit of hedge notional (1 = fully funded, 0.2 = 5x).
    hedge_margin_per_notional: Decimal = Field(default=Decimal(1), gt=0, le=Decimal(1))
    hedge_balance_asset: str = Field(default="USDC", min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if any(p <= 0 for p in self.phases):
            raise ValueError("every phase notional must be positive")
        if list(self.phases) != sorted(self.phases):
            raise ValueError("phases must be in increasing order")
        if self.primary_venue == self.hedge_venue:
            raise ValueError("primary_venue and hedge_venue must be two different venues")
        return self
