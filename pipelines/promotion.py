"""The promotion decision (SPEC section 8) as a pure function: no registry, no clock."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.config import PromotionConfig


@dataclass(frozen=True)
class ModelScore:
    """Out-of-sample figures of one model on one test period."""

    brier: float
    ece: float
    accuracy: float
    sharpe: float


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reasons: tuple[str, ...]

    @property
    def summary(self) -> str:
        verdict = "promote" if self.promote else "keep champion"
        return f"{verdict}: " + "; ".join(self.reasons)


MIN_SHARPE = 0.5


def promote_if_better(
    challenger: ModelScore,
    champion: ModelScore | None,
    *,
    validation_passed: bool,
    config: PromotionConfig,
) -> PromotionDecision:
    """Decide whether the challenger replaces the champion; both scored on the same test period.

    Blocking rules (all must hold): data validation passed; no leakage flag (accuracy above
    `leakage_accuracy` on 5-minute direction is treated as future leakage); ECE <= `max_ece`;
    Brier <= champion's (+ tolerance); Sharpe >= max(0.5, champion's). With no champion and
    `bootstrap_without_champion`, only validation and leakage block, so a fresh install serves a model.
    """
    reasons: list[str] = []
    blocked = False
    if not validation_passed:
        blocked = True
        reasons.append("data validation failed")
    if challenger.accuracy > config.leakage_accuracy:
        blocked = True
        reasons.append(
            f"leakage flag: accuracy {challenger.accuracy:.3f} > {config.leakage_accuracy:.2f} out of sample"
        )
    if champion is None and config.bootstrap_without_champion:
        if not blocked:
            reasons.append("no champion in service: bootstrap promotion")
            reasons.append(
                f"for the record: ece {challenger.ece:.4f}, sharpe {challenger.sharpe:.2f}, "
                f"brier {challenger.brier:.4f}"
            )
        return PromotionDecision(not blocked, tuple(reasons))

    if challenger.ece > config.max_ece:
        blocked = True
        reasons.append(f"ece {challenger.ece:.4f} > {config.max_ece}")
    sharpe_bar = max(MIN_SHARPE, champion.sharpe) if champion is not None else MIN_SHARPE
    if not challenger.sharpe >= sharpe_bar:
        blocked = True
        reasons.append(f"sharpe {challenger.sharpe:.2f} < required {sharpe_bar:.2f}")
    if champion is not None and not challenger.brier <= champion.brier + config.max_brier_worsening:
        blocked = True
        reasons.append(f"brier {challenger.brier:.5f} > champion {champion.brier:.5f}")
    if not blocked:
        reasons.append(
            f"beats champion: sharpe {challenger.sharpe:.2f} >= {sharpe_bar:.2f}, brier {challenger.brier:.5f}"
            + (f" <= {champion.brier:.5f}" if champion else "")
            + f", ece {challenger.ece:.4f} <= {config.max_ece}"
        )
    return PromotionDecision(not blocked, tuple(reasons))
