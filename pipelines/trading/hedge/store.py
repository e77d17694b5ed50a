"""Cycle records in SQLite (default) or PostgreSQL, through SQLAlchemy Core.

One table, `hedge_cycles`: the key and the columns the endpoints filter on (strategy, end time,
outcome) plus the whole record as JSON text (Decimals as strings, so nothing is rounded through a
float). Writes are idempotent upserts by (strategy_id, cycle_id): a cycle recorded twice (a restart
replaying its end) stays one row.

Strategies must not block their event thread: `RecordWriter` takes records on a queue and writes them
from its own thread (`submit` never waits on the database); `close()` flushes.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Column, DateTime, Engine, Index, MetaData, String, Table, Text, create_engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pipelines.trading.hedge.records import CycleRecord

log = logging.getLogger(__name__)

metadata = MetaData()
hedge_cycles = Table(
    "hedge_cycles",
    metadata,
    Column("strategy_id", String(128), primary_key=True),
    Column("cycle_id", String(64), primary_key=True),
    Column("ended_at", DateTime(timezone=True), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("record", Text, nullable=False),
    Index("ix_hedge_cycles_ended", "strategy_id", "ended_at"),
)


class HedgeStore:
    """Read and write cycle records. `dsn` is any SQLAlchemy URL (`sqlite:///...`, `postgresql+psycopg://...`)."""

    def __init__(self, dsn: str) -> None:
        for prefix in ("postgresql://", "postgres://"):
            if dsn.startswith(prefix):  # the engine's DSN form: use the installed psycopg 3 driver
                dsn = "postgresql+psycopg://" + dsn[len(prefix) :]
        self.engine: Engine = create_engine(dsn, future=True)
        metadata.create_all(self.engine)

    def write(self, records: Iterable[CycleRecord]) -> int:
        rows = [
            {
                "strategy_id": r.strategy_id,
                "cycle_id": r.cycle_id,
                "ended_at": r.ended_at,
                "outcome": r.outcome,
                "record": json.dumps(r.to_json(), sort_keys=True),
            }
            for r in records
        ]
        if not rows:
            return 0
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(hedge_cycles).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["strategy_id", "cycle_id"],
            set_={"ended_at": stmt.excluded.ended_at, "outcome": stmt.excluded.outcome, "record": stmt.excluded.record},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
        return len(rows)

    def cycles(
        self,
        strategy_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[CycleRecord]:
        query = select(hedge_cycles.c.record)
        if strategy_id is not None:
            query = query.where(hedge_cycles.c.strategy_id == strategy_id)
        if since is not None:
            query = query.where(hedge_cycles.c.ended_at >= since)
        if until is not None:
            query = query.where(hedge_cycles.c.ended_at < until)
        order = hedge_cycles.c.ended_at.desc() if newest_first else hedge_cycles.c.ended_at.asc()
        query = query.order_by(order, hedge_cycles.c.cycle_id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [CycleRecord.from_json(json.loads(row[0])) for row in conn.execute(query)]

    def close(self) -> None:
        self.engine.dispose()


class RecordWriter:
    """A background writer: `submit` enqueues and returns at once; failed writes are retried next time."""

    def __init__(self, store: HedgeStore) -> None:
        self.store = store
        self._queue: queue.Queue[CycleRecord | None] = queue.Queue()
        self._pending: list[CycleRecord] = []
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="hedge-record-writer", daemon=True)
        self._thread.start()

    def submit(self, record: CycleRecord) -> None:
        self._queue.put(record)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is not None:
                self._pending.append(item)
            try:
                self.store.write(self._pending)
                self._pending.clear()
            except Exception:  # a database hiccup must not kill the writer; the rows stay pending
                self.errors += 1
                log.exception("hedge: writing %d cycle records failed", len(self._pending))
            if item is None:
                return

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)
