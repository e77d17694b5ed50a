"""Every number of SPEC 12 (Avellaneda-Stoikov market making) as validated, frozen configuration.

Units (the model's formulas are only right when these agree):
- Time is in seconds: `horizon_seconds` is T (finite mode: the length of one trading cycle; rolling
  mode: the constant T - t), sigma is in price units per sqrt(second), A is market orders per second.
- Prices are in quote currency per base unit, so k is per price unit (1 / quote currency) and
  gamma is per price unit too. Fitting in ticks gives k per tick: divide by the tick size
  (`estimators.k_per_price`) before it reaches the formulas.
- q, the inventory in the formulas, is counted in quote clips (`(held - target) / quote size`), the
  paper's "one share per order", so gamma keeps the paper's meaning whatever the lot size. It is
  measured against a target base holding: a spot market maker holds base so that it can sell from the
  first second (spot cannot short); the target defaults to half the strategy's capital in base on spot
  (`allow_short` False) and to 0 on a perpetual.
- Fractions are fractions (0.0002 is 2 bps).

The defaults are SPEC 12's (refresh every 30 s, rebalance above 60% of the cap) and the paper's
(gamma 0.1, k 1.5, A 140, sigma 2 for its simulation, see `PaperSimulationConfig`). gamma is per price
unit: 0.1 suits a price of about 100 (the paper's); a BTC-priced market wants a much smaller one.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


HorizonMode = Literal["finite", "rolling"]


class EstimatorConfig(_Frozen):
    """Online sigma and (A, k) estimation (SPEC 12 pitfalls: sigma must not stall, lambda is a rate)."""

    sigma_window_seconds: float = Field(300.0, gt=0, description="rolling window of mid changes for sigma")
    sigma_min_changes: int = Field(20, ge=2, description="mid changes needed before the data speaks at all")
    sigma_prior: float = Field(
        0.0, ge=0, description="prior sigma (price units / sqrt(s)); 0 = none, use the nightly table or data"
    )
    sigma_prior_seconds: float = Field(
        60.0, gt=0, description="weight of the prior, in seconds of data: it fades as the window fills"
    )
    sigma_floor_fraction: float = Field(
        1e-6, ge=0, description="sigma never goes below this fraction of the mid per sqrt(s)"
    )
    intensity_window_seconds: float = Field(900.0, gt=0, description="recent market orders the (A, k) fit uses")
    intensity_min_orders: int = Field(50, ge=5, description="orders needed before (A, k) is fitted")
    intensity_levels: int = Field(12, ge=3, description="depth grid points of the log-lambda regression")
    intensity_min_level_orders: int = Field(
        5, ge=1, description="a depth level needs this many orders reaching it to enter the regression"
    )
    refit_seconds: float = Field(60.0, gt=0, description="how often (A, k) is refitted while running")
    prior_a: float = Field(140.0, gt=0, description="A before the first fit (orders per second)")
    prior_k: float = Field(1.5, gt=0, description="k before the first fit (per price unit)")


class MarketMakingConfig(_Frozen):
    """The Avellaneda-Stoikov strategy (SPEC 12)."""

    symbol: str = Field("BTC/USDT", min_length=3)
    venue: str = Field("", description='broker name ("" = the engine default)')
    gamma: float = Field(0.1, gt=0, description="risk aversion, per price unit")
    horizon_mode: HorizonMode = Field("rolling", description="finite: cycles of T ending at T - t = 0")
    horizon_seconds: float = Field(3600.0, gt=0, description="T (finite) or the constant T - t (rolling)")
    min_spread: float = Field(0.0002, ge=0, lt=0.5, description="total spread floor, fraction of mid")
    max_spread: float = Field(0.02, gt=0, lt=1, description="total spread ceiling, fraction of mid")
    order_notional: Decimal = Field(Decimal("20"), gt=0, description="quote size of one clip, quote currency")
    min_notional_margin: float = Field(
        0.10, ge=0, le=1, description="a clip raised to the venue minimum gets this margin on top"
    )
    max_inventory_clips: int = Field(5, ge=1, description="inventory cap, in clips (both directions)")
    allow_short: bool = Field(True, description="False (spot): never sell more base than is held")
    inventory_target: Decimal | None = Field(
        None, ge=0, description="target base holding q is measured from, base units (None: see the notional)"
    )
    inventory_target_notional: Decimal | None = Field(
        None, ge=0, description="target as quote currency, fixed in base at the first mid; both None: "
        "spot half the strategy's capital (its allocation, else its equity), perpetual 0",
    )
    balance_refresh_seconds: float = Field(
        30.0, gt=0, description="spot: re-read the venue's base balance this often (own fills count in between)"
    )
    rebalance_fraction: float = Field(0.6, gt=0, le=1, description="above this share of the cap, rebalance")
    refresh_seconds: float = Field(30.0, gt=0, description="re-quote at least this often")
    refresh_mid_move: float = Field(0.0005, gt=0, description="re-quote when the mid moves this fraction")
    max_book_age_seconds: float = Field(3.0, gt=0, description="an older book pulls the quotes")
    calibration_window_hours: float = Field(24.0, gt=0, description="nightly fit: trailing hours of trades")
    calibration_venue: str = Field("binance", description="the lake venue whose nightly fit seeds this symbol")
    params_path: Path | None = Field(None, description="the nightly table (mm_params.json) read at start")
    estimator: EstimatorConfig = EstimatorConfig()

    @model_validator(mode="after")
    def _spreads(self) -> Self:
        if self.min_spread >= self.max_spread:
            raise ValueError(f"min_spread {self.min_spread} must be below max_spread {self.max_spread}")
        if self.inventory_target is not None and self.inventory_target_notional is not None:
            raise ValueError("set inventory_target (base) or inventory_target_notional (quote), not both")
        return self


FillModel = Literal["linear", "poisson"]
Increments = Literal["binomial", "gaussian"]


class PaperSimulationConfig(_Frozen):
    """Avellaneda & Stoikov (2008) section 3.3: their parameters are the defaults.

    fill_model "linear" is the paper's literal "with probability lambda dt" (capped at 1; A dt = 0.7
    here, so it is not small); "poisson" is 1 - exp(-lambda dt). increments "binomial" is the paper's
    "random increment +- sigma sqrt(dt)"; "gaussian" draws N(0, sigma^2 dt).
    """

    s0: float = Field(100.0, gt=0)
    T: float = Field(1.0, gt=0)
    sigma: float = Field(2.0, gt=0)
    dt: float = Field(0.005, gt=0)
    A: float = Field(140.0, gt=0)
    k: float = Field(1.5, gt=0)
    gamma: float = Field(0.1, gt=0)
    paths: int = Field(1000, ge=2)
    seed: int = 2008
    fill_model: FillModel = "linear"
    increments: Increments = "binomial"

    @model_validator(mode="after")
    def _steps(self) -> Self:
        if self.dt >= self.T:
            raise ValueError(f"dt {self.dt} must be below T {self.T}")
        return self
