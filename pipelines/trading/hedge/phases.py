"""Progressive sizing (SPEC 13): the target notional phase and its counters. Pure, serialisable.

Phases are `HedgeConfig.phases` ($10, $20, $50, $100, $200, $500 by default). After
`clean_cycles_to_advance` (3) consecutive clean cycles the phase goes up one step; after
`failures_to_step_down` (2) consecutive failed cycles it goes down one step. A cycle whose maker order
never filled is neutral: it changes no counter (it says nothing about hedging). Both counters restart at
zero after every phase change, so a step up needs three new clean cycles at the new size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pipelines.trading.hedge.config import HedgeConfig


class Outcome(StrEnum):
    CLEAN = "clean"  # filled, fully hedged on the hedge venue, net verified zero
    NO_FILL = "no_fill"  # the maker order ended without a fill: nothing to hedge
    UNWOUND = "unwound"  # the hedge failed and the primary fill was unwound (net zero, but a failure)
    FAILED = "failed"  # neither hedge nor unwind succeeded: an imbalance is left (alerted, strategy halted)


FAILURE_OUTCOMES = frozenset({Outcome.UNWOUND, Outcome.FAILED})


@dataclass(frozen=True)
class PhaseState:
    index: int = 0
    clean_streak: int = 0
    failure_streak: int = 0

    def notional(self, cfg: HedgeConfig) -> Decimal:
        return cfg.phases[min(self.index, len(cfg.phases) - 1)]

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "clean_streak": self.clean_streak, "failure_streak": self.failure_streak}

    @classmethod
    def from_dict(cls, data: dict[str, Any], cfg: HedgeConfig) -> PhaseState:
        index = max(0, min(int(data.get("index", 0)), len(cfg.phases) - 1))
        return cls(index, int(data.get("clean_streak", 0)), int(data.get("failure_streak", 0)))


@dataclass(frozen=True)
class PhaseChange:
    old_index: int
    new_index: int
    old_notional: Decimal
    new_notional: Decimal

    @property
    def direction(self) -> str:
        return "up" if self.new_index > self.old_index else "down"


def record_outcome(state: PhaseState, outcome: Outcome, cfg: HedgeConfig) -> tuple[PhaseState, PhaseChange | None]:
    """The phase after one cycle's outcome, and the change if the phase moved."""
    if outcome is Outcome.NO_FILL:
        return state, None
    if outcome is Outcome.CLEAN:
        nxt = replace(state, clean_streak=state.clean_streak + 1, failure_streak=0)
        if nxt.clean_streak >= cfg.clean_cycles_to_advance and state.index < len(cfg.phases) - 1:
            return _moved(state, state.index + 1, cfg)
        return nxt, None
    nxt = replace(state, clean_streak=0, failure_streak=state.failure_streak + 1)
    if nxt.failure_streak >= cfg.failures_to_step_down and state.index > 0:
        return _moved(state, state.index - 1, cfg)
    return nxt, None


def _moved(state: PhaseState, index: int, cfg: HedgeConfig) -> tuple[PhaseState, PhaseChange]:
    change = PhaseChange(state.index, index, cfg.phases[state.index], cfg.phases[index])
    return PhaseState(index=index), change
