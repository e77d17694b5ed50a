"""The trading store on SQLite (default) and on the real PostgreSQL at 127.0.0.1:5432 (a throwaway database)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.config import EngineConfig, load_settings
from pipelines.trading.instruments import Side
from pipelines.trading.orders import Fill, Liquidity, Order, OrderKind, OrderState
from serving.engine import open_store
from serving.engine.store import ClosedTrade, PositionRecord, TradingStore
from tests.serving.engine.conftest import Harness
from tests.serving.engine.pg_database import throwaway_database

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A unique database on the local PostgreSQL, dropped afterwards; skips when the server is absent."""
    with throwaway_database("alphatide_engine_test") as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TradingStore]:
    if request.param == "sqlite":
        s = TradingStore.sqlite_file(tmp_path / "engine.db")
    else:
        s = TradingStore(request.getfixturevalue("pg_dsn"))
    yield s
    s.close()


def _order() -> Order:
    order = Order("at" + "1" * 32, "BTC/USDT", Side.BUY, OrderKind.POST_ONLY, Decimal("100.01"), Decimal("0.08"), T0)
    order.acknowledge(T0, "v1")
    order.apply_fill(Fill("f1", Decimal("0.03"), Decimal("100.01"), Decimal("0.0030003"), Liquidity.MAKER, T0))
    return order


@pytest.mark.integration
def test_orders_fills_positions_state_and_alerts_round_trip_exactly(store: TradingStore) -> None:
    order = _order()
    store.save_order(order, "w1", "entry", T0)
    order.apply_fill(Fill("f2", Decimal("0.05"), Decimal("100.01"), Decimal("0.0050005"), Liquidity.MAKER, T0))
    store.save_order(order, "w1", "entry", T0 + timedelta(seconds=1))  # upsert, fill f1 not duplicated
    pos = PositionRecord(
        "BTC/USDT",
        Decimal("0.08"),
        Decimal("100.01"),
        Decimal("8.0008"),
        Decimal("0.0080008"),
        Decimal(0),
        Decimal(0),
        Decimal(0),
        T0,
        True,
    )
    with store.batch():
        store.save_position(pos, T0)
        store.put_state("kelly", {"fraction": 0.05}, T0)
    store.record_closed_trade(ClosedTrade("ETH/USDT", T0, T0, Decimal("1"), Decimal("-0.5"), -0.01, "hard_stop"))
    store.add_alert(T0, "reconcile_mismatch", "x")

    [loaded] = store.load_orders()
    assert loaded.order.state is OrderState.FILLED and loaded.purpose == "entry"
    assert [f.fill_id for f in loaded.order.fills] == ["f1", "f2"]
    assert loaded.order.fees == Decimal("0.0080008") and loaded.order.venue_order_id == "v1"
    assert store.load_orders(live_only=True) == []
    assert store.load_positions()["BTC/USDT"] == pos
    assert store.get_state("kelly") == {"fraction": 0.05} and store.get_state("missing", 7) == 7
    assert store.closed_trades()[0].net_pnl == Decimal("-0.5")
    assert store.alerts()[0].kind == "reconcile_mismatch"
    assert store.known_client_ids([order.client_order_id, "nope"]) == {order.client_order_id}


def test_sqlite_store_uses_wal(tmp_path: Path) -> None:
    store = TradingStore.sqlite_file(tmp_path / "engine.db")
    store.put_state("x", 1, T0)
    with store._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


@pytest.mark.integration
def test_engine_persists_to_postgresql_when_a_dsn_is_configured(
    pg_dsn: str, tmp_path: Path, paper: Callable[..., Harness]
) -> None:
    settings = load_settings({}, home=tmp_path, engine=EngineConfig(dsn=pg_dsn))  # type: ignore[arg-type]
    store = open_store(settings)
    assert store.url.startswith("postgresql+psycopg://") and not store.is_sqlite
    # The engine on that store: an entry is written to PostgreSQL.
    h = paper()
    h.engine.store.close()
    h.engine.store = store
    h.open_long("BTC/USDT")
    reread = TradingStore(pg_dsn)
    assert reread.load_positions()["BTC/USDT"].size == h.engine.positions["BTC/USDT"].size
    assert [s.order.state for s in reread.load_orders()] == [OrderState.FILLED]
    reread.close()
    store.close()


def test_a_store_written_before_strategy_attribution_is_migrated(tmp_path: Path) -> None:
    import sqlalchemy as sa

    path = tmp_path / "old.db"
    old = sa.create_engine(f"sqlite:///{path}")
    with old.begin() as conn:  # the schema of the previous release, with one open position and one order
        conn.exec_driver_sql(
            "CREATE TABLE engine_positions (symbol VARCHAR(40) PRIMARY KEY, size TEXT NOT NULL, entry_price TEXT"
            " NOT NULL, entry_notional TEXT NOT NULL, entry_fees TEXT NOT NULL, exit_proceeds TEXT NOT NULL,"
            " exit_fees TEXT NOT NULL, exited_size TEXT NOT NULL, opened_at VARCHAR(40) NOT NULL,"
            " is_major BOOLEAN NOT NULL, updated_at VARCHAR(40) NOT NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO engine_positions VALUES ('BTC/USDT', '0.08', '100', '8', '0.008', '0', '0', '0',"
            f" '{T0.isoformat()}', 1, '{T0.isoformat()}')"
        )
        conn.exec_driver_sql(
            "CREATE TABLE engine_closed_trades (id INTEGER PRIMARY KEY AUTOINCREMENT, symbol VARCHAR(40) NOT NULL,"
            " opened_at VARCHAR(40) NOT NULL, closed_at VARCHAR(40) NOT NULL, size TEXT NOT NULL,"
            " net_pnl TEXT NOT NULL, net_return FLOAT NOT NULL, exit_reason TEXT NOT NULL)"
        )
        conn.exec_driver_sql(
            f"INSERT INTO engine_closed_trades (symbol, opened_at, closed_at, size, net_pnl, net_return, exit_reason)"
            f" VALUES ('ETH/USDT', '{T0.isoformat()}', '{T0.isoformat()}', '1', '-0.5', -0.01, 'hard_stop')"
        )
    old.dispose()

    store = TradingStore.sqlite_file(path)

    assert store.load_positions()["BTC/USDT"].size == Decimal("0.08")
    assert store.load_all_positions()[("directional", "", "BTC/USDT")].strategy_id == "directional"
    [trade] = store.closed_trades()
    assert trade.strategy_id == "directional" and trade.net_pnl == Decimal("-0.5")
    store.close()
