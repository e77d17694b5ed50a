"""Persistence of the trading runtime: orders, fills, positions, closed trades, counters and alerts.

SQLite by default (one file, WAL journal, `synchronous=FULL`), PostgreSQL when a DSN is configured; the
same SQLAlchemy Core statements run on both. Money is stored as exact decimal TEXT (never a float
column); timestamps as ISO-8601 UTC text.

Contract: every method commits before it returns (or, inside `with store.batch():`, when the batch
ends), so the runtime can write an intent *before* acting on a venue. A crash then loses no order: the
row exists (state `new`) even if the process died before the venue answered, and recovery asks the venue
about it. Failures raise `StoreError` (the runtime counts them for the store-errors kill switch).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from pipelines.errors import RetryableError
from pipelines.trading.instruments import Side
from pipelines.trading.orders import Fill, Liquidity, Order, OrderKind, OrderState

metadata = sa.MetaData()

orders_table = sa.Table(
    "engine_orders",
    metadata,
    sa.Column("client_order_id", sa.String(64), primary_key=True),
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
    sa.Column("symbol", sa.String(40), primary_key=True),
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
    """An open long position (spot) as stored: sizes in base units, money in quote currency (Decimal).

    `size` is what is still held; `exited_size`/`exit_proceeds`/`exit_fees` accumulate partial exits so
    the closed trade's PnL covers the whole round trip.
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


@dataclass(frozen=True)
class StoredOrder:
    order: Order
    work_id: str
    purpose: str


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


def sqlalchemy_url(dsn: str) -> str:
    """`postgresql://...` -> the psycopg 3 driver URL SQLAlchemy needs; `sqlite:///...` unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    return dsn


class TradingStore:
    """See the module docstring. Thread-safe: one lock serializes writers (the runtime is one writer)."""

    def __init__(self, url: str) -> None:
        self.url = sqlalchemy_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        try:
            if self.is_sqlite:
                self._engine: Engine = sa.create_engine(self.url, connect_args={"check_same_thread": False})
                sa.event.listen(self._engine, "connect", _sqlite_pragmas)
            else:
                self._engine = sa.create_engine(self.url, pool_pre_ping=True)
            metadata.create_all(self._engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the trading store {self.describe()}: {exc}") from exc
        self._lock = threading.RLock()
        self._conn: Connection | None = None

    @classmethod
    def sqlite_file(cls, path: Path) -> TradingStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{path}")

    def describe(self) -> str:
        """The store's URL without a password (for logs and errors)."""
        return sa.make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        self._engine.dispose()

    # ---- transactions ---------------------------------------------------------------------------
    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group several writes into one transaction (committed when the block ends)."""
        with self._lock:
            if self._conn is not None:
                yield
                return
            try:
                with self._engine.begin() as conn:
                    self._conn = conn
                    try:
                        yield
                    finally:
                        self._conn = None
            except SQLAlchemyError as exc:
                raise StoreError(f"trading store write failed: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._lock:
            if self._conn is not None:
                yield self._conn
                return
            try:
                with self._engine.begin() as conn:
                    yield conn
            except SQLAlchemyError as exc:
                raise StoreError(f"trading store failed: {exc}") from exc

    def _upsert(self, conn: Connection, table: sa.Table, row: dict[str, Any], keys: list[str]) -> None:
        dialect = postgresql if not self.is_sqlite else sqlite
        stmt = dialect.insert(table).values(**row)
        update = {k: stmt.excluded[k] for k in row if k not in keys}
        conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))

    def _insert_ignore(self, conn: Connection, table: sa.Table, row: dict[str, Any], keys: list[str]) -> None:
        dialect = postgresql if not self.is_sqlite else sqlite
        conn.execute(dialect.insert(table).values(**row).on_conflict_do_nothing(index_elements=keys))

    # ---- orders and fills -----------------------------------------------------------------------
    def save_order(self, order: Order, work_id: str, purpose: str, now: datetime) -> None:
        """Upsert `order` and insert its fills not stored yet (fills are immutable)."""
        row = {
            "client_order_id": order.client_order_id,
            "work_id": work_id,
            "purpose": purpose,
            "symbol": order.symbol,
            "side": order.side.value,
            "kind": order.kind.value,
            "price": str(order.price),
            "size": str(order.size),
            "state": order.state.value,
            "venue_order_id": order.venue_order_id,
            "filled": str(order.filled),
            "filled_notional": str(order.filled_notional),
            "fees": str(order.fees),
            "created_at": iso(order.created_at),
            "updated_at": iso(now),
            "cancel_requested_at": iso(order.cancel_requested_at) if order.cancel_requested_at else None,
            "closed_at": iso(order.closed_at) if order.closed_at else None,
            "reject_reason": order.reject_reason,
            "late_fill": order.late_fill,
        }
        with self._tx() as conn:
            self._upsert(conn, orders_table, row, ["client_order_id"])
            for fill in order.fills:
                self._insert_ignore(
                    conn,
                    fills_table,
                    {
                        "client_order_id": order.client_order_id,
                        "fill_id": fill.fill_id,
                        "size": str(fill.size),
                        "price": str(fill.price),
                        "fee": str(fill.fee),
                        "liquidity": fill.liquidity.value,
                        "ts": iso(fill.ts),
                    },
                    ["client_order_id", "fill_id"],
                )

    def load_orders(self, *, live_only: bool = False, limit: int | None = None) -> list[StoredOrder]:
        """Orders with their fills, newest first; `live_only` keeps the non-terminal ones."""
        query = sa.select(orders_table).order_by(orders_table.c.created_at.desc())
        if live_only:
            live = [
                s.value
                for s in OrderState
                if s not in (OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.EXPIRED)
            ]
            query = query.where(orders_table.c.state.in_(live))
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
            ids = [r["client_order_id"] for r in rows]
            fills: dict[str, list[Fill]] = {}
            if ids:
                fill_rows = conn.execute(
                    sa.select(fills_table).where(fills_table.c.client_order_id.in_(ids)).order_by(fills_table.c.ts)
                ).mappings()
                for f in fill_rows:
                    fills.setdefault(f["client_order_id"], []).append(
                        Fill(
                            f["fill_id"],
                            Decimal(f["size"]),
                            Decimal(f["price"]),
                            Decimal(f["fee"]),
                            Liquidity(f["liquidity"]),
                            parse_ts(f["ts"]),
                        )
                    )
        return [self._order_from_row(r, fills.get(r["client_order_id"], [])) for r in rows]

    @staticmethod
    def _order_from_row(r: Any, fills: list[Fill]) -> StoredOrder:
        order = Order(
            client_order_id=r["client_order_id"],
            symbol=r["symbol"],
            side=Side(r["side"]),
            kind=OrderKind(r["kind"]),
            price=Decimal(r["price"]),
            size=Decimal(r["size"]),
            created_at=parse_ts(r["created_at"]),
            state=OrderState(r["state"]),
            venue_order_id=r["venue_order_id"],
            filled=Decimal(r["filled"]),
            filled_notional=Decimal(r["filled_notional"]),
            fees=Decimal(r["fees"]),
            fills=fills,
            cancel_requested_at=parse_ts(r["cancel_requested_at"]) if r["cancel_requested_at"] else None,
            closed_at=parse_ts(r["closed_at"]) if r["closed_at"] else None,
            reject_reason=r["reject_reason"],
            late_fill=bool(r["late_fill"]),
        )
        return StoredOrder(order, r["work_id"], r["purpose"])

    def known_client_ids(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(orders_table.c.client_order_id).where(orders_table.c.client_order_id.in_(ids))
            )
            return {r[0] for r in rows}

    # ---- positions and trades ---------------------------------------------------------------------
    def save_position(self, pos: PositionRecord, now: datetime) -> None:
        row = {
            "symbol": pos.symbol,
            "size": str(pos.size),
            "entry_price": str(pos.entry_price),
            "entry_notional": str(pos.entry_notional),
            "entry_fees": str(pos.entry_fees),
            "exit_proceeds": str(pos.exit_proceeds),
            "exit_fees": str(pos.exit_fees),
            "exited_size": str(pos.exited_size),
            "opened_at": iso(pos.opened_at),
            "is_major": pos.is_major,
            "updated_at": iso(now),
        }
        with self._tx() as conn:
            self._upsert(conn, positions_table, row, ["symbol"])

    def delete_position(self, symbol: str) -> None:
        with self._tx() as conn:
            conn.execute(sa.delete(positions_table).where(positions_table.c.symbol == symbol))

    def load_positions(self) -> dict[str, PositionRecord]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(positions_table)).mappings().all()
        return {
            r["symbol"]: PositionRecord(
                symbol=r["symbol"],
                size=Decimal(r["size"]),
                entry_price=Decimal(r["entry_price"]),
                entry_notional=Decimal(r["entry_notional"]),
                entry_fees=Decimal(r["entry_fees"]),
                exit_proceeds=Decimal(r["exit_proceeds"]),
                exit_fees=Decimal(r["exit_fees"]),
                exited_size=Decimal(r["exited_size"]),
                opened_at=parse_ts(r["opened_at"]),
                is_major=bool(r["is_major"]),
            )
            for r in rows
        }

    def record_closed_trade(self, trade: ClosedTrade) -> None:
        with self._tx() as conn:
            conn.execute(
                sa.insert(trades_table).values(
                    symbol=trade.symbol,
                    opened_at=iso(trade.opened_at),
                    closed_at=iso(trade.closed_at),
                    size=str(trade.size),
                    net_pnl=str(trade.net_pnl),
                    net_return=trade.net_return,
                    exit_reason=trade.exit_reason,
                )
            )

    def closed_trades(self, limit: int = 200) -> list[ClosedTrade]:
        with self._tx() as conn:
            rows = (
                conn.execute(sa.select(trades_table).order_by(trades_table.c.id.desc()).limit(limit)).mappings().all()
            )
        return [
            ClosedTrade(
                r["symbol"],
                parse_ts(r["opened_at"]),
                parse_ts(r["closed_at"]),
                Decimal(r["size"]),
                Decimal(r["net_pnl"]),
                float(r["net_return"]),
                r["exit_reason"],
            )
            for r in reversed(rows)
        ]

    # ---- counters and alerts ------------------------------------------------------------------------
    def put_state(self, key: str, value: Any, now: datetime) -> None:
        """Store a JSON-serializable value (Decimals must be passed as strings)."""
        with self._tx() as conn:
            self._upsert(conn, state_table, {"key": key, "value": json.dumps(value), "updated_at": iso(now)}, ["key"])

    def get_state(self, key: str, default: Any = None) -> Any:
        with self._tx() as conn:
            row = conn.execute(sa.select(state_table.c.value).where(state_table.c.key == key)).first()
        return json.loads(row[0]) if row is not None else default

    def add_alert(self, ts: datetime, kind: str, message: str) -> None:
        with self._tx() as conn:
            conn.execute(sa.insert(alerts_table).values(ts=iso(ts), kind=kind, message=message))

    def alerts(self, limit: int = 100) -> list[AlertRecord]:
        with self._tx() as conn:
            rows = (
                conn.execute(sa.select(alerts_table).order_by(alerts_table.c.id.desc()).limit(limit)).mappings().all()
            )
        return [AlertRecord(parse_ts(r["ts"]), r["kind"], r["message"]) for r in rows]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the API read while the engine writes; FULL makes a commit durable before we act on it.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
