"""Per-window PnL of the window-market strategies (SPEC 13b): one row per (strategy, window market).

A row is written when a strategy settles a window at its resolution (`StrategyContext.window_settled`):
the market (slug `btc-updown-5m-<unix start>`), the strategy, the settled side, what was paid, the
fees, the payout and the PnL (exact decimal TEXT, like the rest of the store). Keyed by (strategy,
market): settling the same window twice (a replay, a restart) overwrites, never duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from serving.engine.persistence.schema import iso, metadata, parse_ts

window_pnl_table = sa.Table(
    "engine_window_pnl",
    metadata,
    sa.Column("strategy_id", sa.String(64), primary_key=True),
    sa.Column("market", sa.String(64), primary_key=True),
    sa.Column("window_start", sa.String(40), nullable=False),
    sa.Column("venue", sa.String(40), nullable=False, server_default=""),
    sa.Column("settled_side", sa.String(8), nullable=False),
    sa.Column("cost", sa.Text, nullable=False),
    sa.Column("fees", sa.Text, nullable=False),
    sa.Column("payout", sa.Text, nullable=False),
    sa.Column("pnl", sa.Text, nullable=False),
    sa.Column("settled_at", sa.String(40), nullable=False),
)


@dataclass(frozen=True)
class WindowSettlement:
    """One window's result for one strategy. `fees` (USDC) are already inside `cost`/`payout`."""

    strategy_id: str
    market: str  # the window's slug
    window_start: datetime
    settled_side: str  # "Up" | "Down"
    cost: Decimal
    fees: Decimal
    payout: Decimal
    pnl: Decimal
    settled_at: datetime
    venue: str = ""

    def row(self) -> dict[str, str]:
        return {
            "strategy_id": self.strategy_id,
            "market": self.market,
            "window_start": iso(self.window_start),
            "venue": self.venue,
            "settled_side": self.settled_side,
            "cost": str(self.cost),
            "fees": str(self.fees),
            "payout": str(self.payout),
            "pnl": str(self.pnl),
            "settled_at": iso(self.settled_at),
        }


def from_row(r: sa.RowMapping) -> WindowSettlement:
    return WindowSettlement(
        r["strategy_id"],
        r["market"],
        parse_ts(r["window_start"]),
        r["settled_side"],
        Decimal(r["cost"]),
        Decimal(r["fees"]),
        Decimal(r["payout"]),
        Decimal(r["pnl"]),
        parse_ts(r["settled_at"]),
        r["venue"],
    )


def query(strategy_id: str | None, limit: int) -> sa.Select[tuple[object, ...]]:
    q = sa.select(window_pnl_table).order_by(window_pnl_table.c.window_start.desc()).limit(limit)
    return q.where(window_pnl_table.c.strategy_id == strategy_id) if strategy_id is not None else q
