"""Whether to open a new cycle now, and its maker order. Pure: a decision from a `Snapshot`.

A cycle opens only when (each refusal is a readable reason, never an exception):
- both venues have a book no older than `max_book_age_seconds` and the primary's is not crossed;
- the phase's target notional gives a maker size both venues accept (`pricing.maker_size`);
- the expected edge (maker rebate minus the spread cost against the hedge venue's touch, see
  `pricing.expected_edge_bps`) is at least `min_edge_bps`;
- the hedge venue's available balance covers hedging the WHOLE maker size at once (several fills can
  arrive together, and a hedge that cannot be paid for is how legs end up unequal).
The maker is post-only at the primary's best price: the bid for a buy, the ask for a sell.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pipelines.trading.hedge.config import HedgeConfig, MakerSide
from pipelines.trading.hedge.cycle import Cycle, Role, Status
from pipelines.trading.hedge.machine import PRIMARY, Place, Snapshot, Top
from pipelines.trading.hedge.phases import PhaseState
from pipelines.trading.hedge.pricing import expected_edge_bps, hedge_margin_needed, maker_size
from pipelines.trading.instruments import Side


@dataclass(frozen=True)
class QuoteDecision:
    cycle: Cycle | None
    action: Place | None
    reason: str


def _fresh(top: Top | None, now: datetime, max_age: float) -> bool:
    return top is not None and 0 <= (now - top.ts).total_seconds() <= max_age


def choose_side(cfg: HedgeConfig, snap: Snapshot, size_at_bid: Decimal) -> Side:
    if cfg.maker_side is MakerSide.BUY:
        return Side.BUY
    if cfg.maker_side is MakerSide.SELL:
        return Side.SELL
    return Side.SELL if size_at_bid > 0 and snap.primary_position >= size_at_bid else Side.BUY


def plan_quote(
    cfg: HedgeConfig,
    cycle_id: str,
    phase: PhaseState,
    snap: Snapshot,
    hedge_available: Decimal | None,
    now: datetime,
) -> QuoteDecision:
    top, hedge_top = snap.primary_top, snap.hedge_top
    if top is None or hedge_top is None or not _fresh(top, now, cfg.max_book_age_seconds):
        return QuoteDecision(None, None, "no fresh primary book")
    if not _fresh(hedge_top, now, cfg.max_book_age_seconds):
        return QuoteDecision(None, None, "no fresh hedge book")
    if top.bid >= top.ask or hedge_top.bid >= hedge_top.ask:
        return QuoteDecision(None, None, "crossed book")
    notional = phase.notional(cfg)
    side = choose_side(cfg, snap, maker_size(notional, top.bid, snap.primary, snap.hedge).size)
    price = top.bid if side is Side.BUY else top.ask
    sizing = maker_size(notional, price, snap.primary, snap.hedge)
    if not sizing.ok:
        return QuoteDecision(None, None, f"size: {sizing.reason}")
    hedge_touch = hedge_top.bid if side is Side.BUY else hedge_top.ask
    edge, spread = expected_edge_bps(cfg, side, price, hedge_touch, snap.primary, snap.hedge)
    if edge < cfg.min_edge_bps:
        return QuoteDecision(None, None, f"edge {edge:.2f} bps below {cfg.min_edge_bps} (spread cost {spread:.2f} bps)")
    needed = hedge_margin_needed(cfg, snap.hedge, sizing.size, hedge_touch)
    if hedge_available is None:
        return QuoteDecision(None, None, "hedge venue balance unknown")
    if hedge_available < needed:
        return QuoteDecision(None, None, f"hedge venue balance {hedge_available} below the {needed} a full hedge needs")
    cycle = Cycle(
        cycle_id=cycle_id,
        started_at=now,
        phase_index=phase.index,
        target_notional=notional,
        maker_side=side,
        maker_price=price,
        maker_size=sizing.size,
        baseline_primary=snap.primary_position,
        baseline_hedge=snap.hedge_position,
        hedge_reference=hedge_touch,
        expected_edge_bps=edge,
        expected_spread_bps=spread,
    )
    return QuoteDecision(cycle, Place(Role.MAKER, PRIMARY, side, price, sizing.size, True, 1), "quote")


def drift_cycle(
    cycle_id: str, phase: PhaseState, cfg: HedgeConfig, snap: Snapshot, drift: Decimal, now: datetime
) -> Cycle:
    """A cycle with no maker whose only job is to correct a net drift found between cycles."""
    reference = (snap.hedge_top.bid + snap.hedge_top.ask) / 2 if snap.hedge_top else Decimal(1)
    primary_ref = (snap.primary_top.bid + snap.primary_top.ask) / 2 if snap.primary_top else reference
    return Cycle(
        cycle_id=cycle_id,
        started_at=now,
        phase_index=phase.index,
        target_notional=phase.notional(cfg),
        maker_side=Side.BUY,
        maker_price=primary_ref,
        maker_size=Decimal(0),
        baseline_primary=snap.primary_position - drift,
        baseline_hedge=snap.hedge_position,
        hedge_reference=reference,
        expected_edge_bps=0.0,
        expected_spread_bps=0.0,
        status=Status.VERIFYING,
        verify_started_at=now,
        reason=f"net drift {drift} found between cycles",
    )
