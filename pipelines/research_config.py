"""Settings of the research side (labels, the random baseline, the served tower, the few-trades gate).

They live here, not in `pipelines.config`, until the lead adds them to `Settings` as
`research: ResearchConfig = ResearchConfig()` (environment `ALPHATIDE_RESEARCH__...`, e.g.
`ALPHATIDE_RESEARCH__LABEL__MODE=cost_aware`). `research_settings(settings)` returns the configured
object when `Settings` has it and the defaults otherwise, so every caller reads them one way.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

LabelMode = Literal["exclude_ties", "cost_aware"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabelConfig(_Frozen):
    """The directional label (SPEC 6).

    `exclude_ties`: 1 if close[t+h] > close[t], 0 if lower, null (dropped from training and metrics, counted)
    when unchanged. `cost_aware`: 1 when the return over the horizon clears the round-trip cost, else 0.
    The default is the one that evaluated better out of sample on the shared 5m sample (README).
    """

    mode: LabelMode = "exclude_ties"
    round_trip_cost: float | None = Field(
        None, ge=0, lt=0.2, description="cost_aware threshold; None = 2 x (fee + slippage) + spread of the backtest."
    )


class BaselineConfig(_Frozen):
    """The random-entry baseline (SPEC 8): the strategy's constraints, many seeds."""

    seeds: int = Field(10, ge=10, le=1000, description="Seeds of the random baseline (at least 10).")
    first_seed: int = Field(7, description="Seeds are first_seed, first_seed + 1, ...")
    long_only: bool = Field(True, description="Spot: no shorts, for the model's backtest and the baseline.")
    maker_fee_per_side: float = Field(
        0.0002, ge=0, lt=0.05, description="Maker fee for the maker-entry cost variant (post-only entry, taker exit)."
    )


class ServingTowerConfig(_Frozen):
    """Which tower the registry holds: the fused two-tower model when it wins on the last fold."""

    serve_fused: bool = Field(True, description="Register the fused model when it beats the tabular tower.")


class GateConfig(_Frozen):
    """Promotion when a backtest has too few trades for a Sharpe estimate (issue 16)."""

    min_trades_for_sharpe: int = Field(
        30, ge=2, le=100_000, description="Fewer backtest trades: Sharpe is not estimated, the trading check applies."
    )


class ResearchConfig(_Frozen):
    label: LabelConfig = LabelConfig()
    baseline: BaselineConfig = BaselineConfig()
    tower: ServingTowerConfig = ServingTowerConfig()
    gate: GateConfig = GateConfig()


def research_settings(settings: Any) -> ResearchConfig:
    """`settings.research` when `Settings` holds it, else the defaults."""
    found = getattr(settings, "research", None)
    return found if isinstance(found, ResearchConfig) else ResearchConfig()
