"""The promotion decision (SPEC section 8) as a pure function: no registry, no clock."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.config import PromotionConfig


@dataclass(frozen=True)
class ModelScore:
    """Out-of-sample figures of one model on one test period.

    `trades` (backtest trades; None = not known, the Sharpe is then taken as estimated) and `total_return`
    (net backtest return) feed the few-trades rule.
    """

    brier: float
    ece: float
    accuracy: float
    sharpe: float
    trades: int | None = None
    total_return: float = 0.0

    def sharpe_estimated(self, min_trades: int) -> bool:
        return self.trades is None or self.trades >= min_trades


@dataclass(frozen=True)
class PromotionDecision:
    """`promote`: the challenger becomes the champion. `tradeable`: it passed the full gate (a bootstrap
    promotion serves signals but is not traded until a model passes every criterion)."""

    promote: bool
    reasons: tuple[str, ...]
    tradeable: bool = False

    @property
    def summary(self) -> str:
        verdict = "promote" if self.promote else "keep champion"
        if self.promote:
            verdict += " (tradeable)" if self.tradeable else " (signals only, not tradeable)"
        return f"{verdict}: " + "; ".join(self.reasons)


MIN_SHARPE = 0.5
DEFAULT_MIN_TRADES = 30


def _trading_criterion(
    challenger: ModelScore, champion: ModelScore | None, min_trades: int, reasons: list[str]
) -> bool:
    """Sharpe >= max(0.5, champion's) when it can be estimated; else the trading check. True = passes.

    Too few trades (< `min_trades`) for a Sharpe estimate: the challenger's net backtest return must be
    >= max(0, the champion's on the same period), i.e. it lost nothing and did no worse than the model in
    service. A champion with too few trades of its own gives no Sharpe bar beyond 0.5, only its return.
    """
    champion_sharpe = (
        champion.sharpe if champion is not None and champion.sharpe_estimated(min_trades) else MIN_SHARPE
    )
    if not challenger.sharpe_estimated(min_trades):
        floor = max(0.0, champion.total_return) if champion is not None else 0.0
        reasons.append(
            f"sharpe not estimated: {challenger.trades} backtest trades < {min_trades}; "
            f"trading check: net return {challenger.total_return:+.4%} vs required >= {floor:+.4%}"
        )
        return challenger.total_return >= floor
    bar = max(MIN_SHARPE, champion_sharpe)
    ok = challenger.sharpe >= bar
    if not ok:
        reasons.append(f"sharpe {challenger.sharpe:.2f} < required {bar:.2f}")
    if (
        champion is not None
        and not champion.sharpe_estimated(min_trades)
        and challenger.total_return < champion.total_return
    ):
        reasons.append(
            f"net return {challenger.total_return:+.4%} < champion {champion.total_return:+.4%} "
            f"(champion's {champion.trades} trades give no Sharpe)"
        )
        return False
    return ok


def promote_if_better(
    challenger: ModelScore,
    champion: ModelScore | None,
    *,
    validation_passed: bool,
    config: PromotionConfig,
    min_trades: int = DEFAULT_MIN_TRADES,
) -> PromotionDecision:
    """Decide whether the challenger replaces the champion; both scored on the same test period.

    Blocking rules (all must hold): data validation passed; no leakage flag (accuracy above
    `leakage_accuracy` on 5-minute direction is treated as future leakage); ECE <= `max_ece`;
    Brier <= champion's (+ tolerance); the trading criterion (`_trading_criterion`: Sharpe >=
    max(0.5, champion's), or with fewer than `min_trades` trades the net-return check). With no champion
    and `bootstrap_without_champion`, only validation and leakage block, so a fresh install serves a
    model; it is tradeable only when it also passes every other criterion with an estimated Sharpe.
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
    full: list[str] = []
    passes = challenger.ece <= config.max_ece
    if not passes:
        full.append(f"ece {challenger.ece:.4f} > {config.max_ece}")
    passes = _trading_criterion(challenger, champion, min_trades, full) and passes
    if champion is not None and not challenger.brier <= champion.brier + config.max_brier_worsening:
        passes = False
        full.append(f"brier {challenger.brier:.5f} > champion {champion.brier:.5f}")

    if champion is None and config.bootstrap_without_champion:
        tradeable = not blocked and passes and challenger.sharpe_estimated(min_trades)
        if not blocked:
            reasons.append("no champion in service: bootstrap promotion")
            reasons.extend(full)
            if not tradeable:
                reasons.append("not tradeable until a model passes the full gate")
            reasons.append(
                f"for the record: ece {challenger.ece:.4f}, sharpe {challenger.sharpe:.2f}, "
                f"brier {challenger.brier:.4f}, trades {challenger.trades}"
            )
        return PromotionDecision(not blocked, tuple(reasons), tradeable=tradeable)

    reasons.extend(full)
    blocked = blocked or not passes
    if not blocked:
        reasons.append(
            f"beats champion: sharpe {challenger.sharpe:.2f}, trades {challenger.trades}, brier {challenger.brier:.5f}"
            + (f" <= {champion.brier:.5f}" if champion else "")
            + f", ece {challenger.ece:.4f} <= {config.max_ece}"
        )
    return PromotionDecision(not blocked, tuple(reasons), tradeable=not blocked)
