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
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from pipelines.trading.instruments import Side
from pipelines.trading.orders import Fill, Liquidity, Order, OrderKind, OrderState
from serving.engine.persistence.schema import (
    DEFAULT_STRATEGY,
    AlertRecord,
    ClosedTrade,
    PositionRecord,
    StoredOrder,
    StoreError,
    alerts_table,
    fills_table,
    iso,
    metadata,
    orders_table,
    parse_ts,
    positions_table,
    sqlalchemy_url,
    state_table,
    trades_table,
)
from serving.engine.persistence.schema import migrate as _migrate
from serving.engine.persistence.window_pnl import WindowSettlement, window_pnl_table
from serving.engine.persistence.window_pnl import from_row as _window_from_row
from serving.engine.persistence.window_pnl import query as _window_query

__all__ = [
    "DEFAULT_STRATEGY",
    "AlertRecord",
    "ClosedTrade",
    "PositionRecord",
    "StoreError",
    "StoredOrder",
    "TradingStore",
    "WindowSettlement",
    "iso",
    "parse_ts",
    "sqlalchemy_url",
]


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
            _migrate(self._engine)
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
    def save_order(
        self,
        order: Order,
        work_id: str,
        purpose: str,
        now: datetime,
        *,
        strategy_id: str = DEFAULT_STRATEGY,
        venue: str = "",
        tag: str = "",
    ) -> None:
        """Upsert `order` (attributed to `strategy_id`) and insert its fills not stored yet."""
        row = {
            "client_order_id": order.client_order_id,
            "strategy_id": strategy_id,
            "venue": venue,
            "tag": tag,
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

    def load_orders(
        self, *, live_only: bool = False, limit: int | None = None, strategy_id: str | None = None
    ) -> list[StoredOrder]:
        """Orders with their fills, newest first; `live_only` keeps the non-terminal ones."""
        query = sa.select(orders_table).order_by(orders_table.c.created_at.desc())
        if strategy_id is not None:
            query = query.where(orders_table.c.strategy_id == strategy_id)
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
        return StoredOrder(order, r["work_id"], r["purpose"], r["strategy_id"], r["venue"], r["tag"])

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
            "strategy_id": pos.strategy_id,
            "venue": pos.venue,
            "symbol": pos.symbol,
            "side": pos.side.value,
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
            self._upsert(conn, positions_table, row, ["strategy_id", "venue", "symbol"])

    def delete_position(self, symbol: str, strategy_id: str = DEFAULT_STRATEGY, venue: str = "") -> None:
        t = positions_table.c
        with self._tx() as conn:
            conn.execute(
                sa.delete(positions_table).where(t.symbol == symbol, t.strategy_id == strategy_id, t.venue == venue)
            )

    def load_positions(self, strategy_id: str = DEFAULT_STRATEGY) -> dict[str, PositionRecord]:
        """One strategy's open positions by symbol (all venues; a symbol on two venues: the last one)."""
        return {p.symbol: p for p in self.load_all_positions().values() if p.strategy_id == strategy_id}

    def load_all_positions(self) -> dict[tuple[str, str, str], PositionRecord]:
        """Every strategy's open positions by (strategy_id, venue, symbol)."""
        with self._tx() as conn:
            rows = conn.execute(sa.select(positions_table)).mappings().all()
        return {
            (r["strategy_id"], r["venue"], r["symbol"]): PositionRecord(
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
                strategy_id=r["strategy_id"],
                venue=r["venue"],
                side=Side(r["side"]),
            )
            for r in rows
        }

    def record_closed_trade(self, trade: ClosedTrade) -> None:
        with self._tx() as conn:
            conn.execute(
                sa.insert(trades_table).values(
                    strategy_id=trade.strategy_id,
                    venue=trade.venue,
                    symbol=trade.symbol,
                    opened_at=iso(trade.opened_at),
                    closed_at=iso(trade.closed_at),
                    size=str(trade.size),
                    net_pnl=str(trade.net_pnl),
                    net_return=trade.net_return,
                    exit_reason=trade.exit_reason,
                )
            )

    def closed_trades(self, limit: int = 200, strategy_id: str | None = None) -> list[ClosedTrade]:
        query = sa.select(trades_table).order_by(trades_table.c.id.desc()).limit(limit)
        if strategy_id is not None:
            query = query.where(trades_table.c.strategy_id == strategy_id)
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            ClosedTrade(
                r["symbol"],
                parse_ts(r["opened_at"]),
                parse_ts(r["closed_at"]),
                Decimal(r["size"]),
                Decimal(r["net_pnl"]),
                float(r["net_return"]),
                r["exit_reason"],
                r["strategy_id"],
                r["venue"],
            )
            for r in reversed(rows)
        ]

    # ---- window markets ---------------------------------------------------------------------------
    def record_window_pnl(self, result: WindowSettlement) -> None:
        """One settled window of a strategy (upsert by strategy and market)."""
        with self._tx() as conn:
            self._upsert(conn, window_pnl_table, result.row(), ["strategy_id", "market"])

    def window_pnls(self, strategy_id: str | None = None, limit: int = 1000) -> list[WindowSettlement]:
        """Settled windows, oldest first (the newest `limit`)."""
        with self._tx() as conn:
            rows = conn.execute(_window_query(strategy_id, limit)).mappings().all()
        return [_window_from_row(r) for r in reversed(rows)]

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
