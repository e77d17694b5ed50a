"""The trading store's tables (SQLAlchemy Core, the same on SQLite and PostgreSQL) and its records.

Money is exact decimal TEXT (never a float column); timestamps ISO-8601 UTC text. Every order, position
and closed trade carries the `strategy_id` that made it and the `venue` it is on ("" = the default one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.errors import RetryableError
from pipelines.trading.instruments import Side
from pipelines.trading.orders import Order

DEFAULT_STRATEGY = "directional"  # rows written before strategies had ids belong to the directional one

metadata = sa.MetaData()

orders_table = sa.Table(
    "engine_orders",
    metadata,
    sa.Column("client_order_id", sa.String(64), primary_key=True),
    sa.Column("strategy_id", sa.String(64), nullable=False, server_default=DEFAULT_STRATEGY),
    sa.Column("venue", sa.String(40), nullable=False, server_default=""),
    sa.Column("tag", sa.Text, nullable=False, server_default=""),
    sa.Column("work_id", sa.String(64), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("symbol", sa.String(40), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("price", sa.Text, nullable=False),
    sa.Column("size", sa.Text, nullable=False),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("venue_order_id", sa.String(64)),
    sa.Column("filled", sa.Text, nullable=False),
    sa.Column("filled_notional", sa.Text, nullable=False),
    sa.Column("fees", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.Column("cancel_requested_at", sa.String(40)),
    sa.Column("closed_at", sa.String(40)),
    sa.Column("reject_reason", sa.Text),
    sa.Column("late_fill", sa.Boolean, nullable=False, default=False),
)
sa.Index("engine_orders_state", orders_table.c.state)

fills_table = sa.Table(
    "engine_fills",
    metadata,
    sa.Column("client_order_id", sa.String(64), primary_key=True),
    sa.Column("fill_id", sa.String(64), primary_key=True),
    sa.Column("size", sa.Text, nullable=False),
    sa.Column("price", sa.Text, nullable=False),
    sa.Column("fee", sa.Text, nullable=False),
    sa.Column("liquidity", sa.String(8), nullable=False),
    sa.Column("ts", sa.String(40), nullable=False),
)

positions_table = sa.Table(
    "engine_positions",
    metadata,
    sa.Column("strategy_id", sa.String(64), primary_key=True),
    sa.Column("venue", sa.String(40), primary_key=True),
    sa.Column("symbol", sa.String(40), primary_key=True),
    sa.Column("side", sa.String(8), nullable=False, server_default="buy"),
    sa.Column("size", sa.Text, nullable=False),
    sa.Column("entry_price", sa.Text, nullable=False),
    sa.Column("entry_notional", sa.Text, nullable=False),
    sa.Column("entry_fees", sa.Text, nullable=False),
    sa.Column("exit_proceeds", sa.Text, nullable=False),
    sa.Column("exit_fees", sa.Text, nullable=False),
    sa.Column("exited_size", sa.Text, nullable=False),
    sa.Column("opened_at", sa.String(40), nullable=False),
    sa.Column("is_major", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

trades_table = sa.Table(
    "engine_closed_trades",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("strategy_id", sa.String(64), nullable=False, server_default=DEFAULT_STRATEGY),
    sa.Column("venue", sa.String(40), nullable=False, server_default=""),
    sa.Column("symbol", sa.String(40), nullable=False),
    sa.Column("opened_at", sa.String(40), nullable=False),
    sa.Column("closed_at", sa.String(40), nullable=False),
    sa.Column("size", sa.Text, nullable=False),
    sa.Column("net_pnl", sa.Text, nullable=False),
    sa.Column("net_return", sa.Float, nullable=False),
    sa.Column("exit_reason", sa.Text, nullable=False),
)

state_table = sa.Table(
    "engine_state",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

alerts_table = sa.Table(
    "engine_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)


class StoreError(RetryableError):
    """The trading store could not read or write (counted by the store-errors kill switch)."""


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass
class PositionRecord:
    """An open position of one strategy on one venue: sizes in base units, money in quote currency.

    `side` is the entry side (BUY = long, SELL = short on a derivatives venue); `size` is the magnitude
    still held; `exited_size`/`exit_proceeds`/`exit_fees` accumulate partial exits so the closed trade's
    PnL covers the whole round trip.
    """

    symbol: str
    size: Decimal
    entry_price: Decimal
    entry_notional: Decimal
    entry_fees: Decimal
    exit_proceeds: Decimal
    exit_fees: Decimal
    exited_size: Decimal
    opened_at: datetime
    is_major: bool
    strategy_id: str = DEFAULT_STRATEGY
    venue: str = ""
    side: Side = Side.BUY

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.strategy_id, self.venue, self.symbol)

    @property
    def signed_size(self) -> Decimal:
        return self.size if self.side is Side.BUY else -self.size


@dataclass(frozen=True)
class StoredOrder:
    order: Order
    work_id: str
    purpose: str
    strategy_id: str = DEFAULT_STRATEGY
    venue: str = ""
    tag: str = ""


@dataclass(frozen=True)
class AlertRecord:
    ts: datetime
    kind: str
    message: str


@dataclass(frozen=True)
class ClosedTrade:
    symbol: str
    opened_at: datetime
    closed_at: datetime
    size: Decimal
    net_pnl: Decimal
    net_return: float
    exit_reason: str
    strategy_id: str = DEFAULT_STRATEGY
    venue: str = ""


def sqlalchemy_url(dsn: str) -> str:
    """`postgresql://...` -> the psycopg 3 driver URL SQLAlchemy needs; `sqlite:///...` unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    return dsn


def migrate(engine: Engine) -> None:
    """Bring a store written before strategy attribution to this schema (its rows are directional's).

    Orders and closed trades gain their attribution columns in place; positions, whose key changes to
    (strategy_id, venue, symbol), are copied into the new table.
    """
    inspector = sa.inspect(engine)
    tables = set(inspector.get_table_names())
    with engine.begin() as conn:
        for table in ("engine_orders", "engine_closed_trades"):
            if table not in tables:
                continue
            have = {c["name"] for c in inspector.get_columns(table)}
            wanted = [("strategy_id", f"'{DEFAULT_STRATEGY}'"), ("venue", "''")]
            if table == "engine_orders":
                wanted.append(("tag", "''"))
            for name, default in wanted:
                if name not in have:
                    conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} TEXT NOT NULL DEFAULT {default}")
        if "engine_positions" in tables:
            have = {c["name"] for c in inspector.get_columns("engine_positions")}
            if "strategy_id" not in have:
                conn.exec_driver_sql("ALTER TABLE engine_positions RENAME TO engine_positions_unattributed")
                positions_table.create(conn)
                cols = [c.name for c in positions_table.columns if c.name not in ("strategy_id", "venue", "side")]
                listed = ", ".join(cols)
                conn.exec_driver_sql(
                    f"INSERT INTO engine_positions (strategy_id, venue, side, {listed}) "
                    f"SELECT '{DEFAULT_STRATEGY}', '', 'buy', {listed} FROM engine_positions_unattributed"
                )
                conn.exec_driver_sql("DROP TABLE engine_positions_unattributed")
