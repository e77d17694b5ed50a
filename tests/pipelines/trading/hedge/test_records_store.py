"""Cycle records: built from real strategy runs, stored in SQLite and PostgreSQL, aggregated."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.trading.hedge.records import CycleRecord, summarize
from pipelines.trading.hedge.store import HedgeStore, RecordWriter
from pipelines.trading.orders import OrderState
from tests.serving.engine.pg_database import throwaway_database
from tests.serving.strategies.hedge_harness import Harness


def three_cycles() -> list[CycleRecord]:
    """A clean cycle, an unwound one (next day) and an unfilled one, from the strategy itself."""
    h = Harness({"cooldown_seconds": 0, "max_hedge_attempts": 1}).start()
    h.set_books()
    maker = h.orders("maker")[-1]
    h.fill(maker.order_id, maker.intent.size)
    h.fill_ioc(h.orders("hedge")[-1].order_id)
    h.ctx.clock += timedelta(days=1)
    h.advance(1)
    maker = h.orders("maker")[-1]
    h.fill(maker.order_id, maker.intent.size)
    h.update(h.orders("hedge")[-1].order_id, OrderState.REJECTED)
    h.fill_ioc(h.orders("unwind")[-1].order_id)
    h.advance(1)
    h.update(h.orders("maker")[-1].order_id, OrderState.CANCELLED)
    return list(h.strategy.records)


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A unique database on the local PostgreSQL, dropped afterwards; skips when the server is absent."""
    with throwaway_database("alphatide_hedge_test") as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HedgeStore]:
    dsn = f"sqlite:///{tmp_path / 'hedge.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_dsn")
    s = HedgeStore(dsn)
    yield s
    s.close()


def test_records_round_trip_through_the_store_and_upserts_are_idempotent(store: HedgeStore) -> None:
    records = three_cycles()
    assert [r.outcome for r in records] == ["clean", "unwound", "no_fill"]
    assert store.write(records) == 3
    assert store.write(records[:1]) == 1  # written again: still one row
    back = store.cycles(newest_first=False)
    assert back == records
    assert store.cycles(since=records[1].ended_at, newest_first=False) == records[1:]
    assert store.cycles(strategy_id="someone-else") == []
    assert [r.cycle_id for r in store.cycles(limit=1)] == [records[-1].cycle_id]


def test_the_writer_thread_persists_without_blocking(tmp_path: Path) -> None:
    store = HedgeStore(f"sqlite:///{tmp_path / 'w.db'}")
    writer = RecordWriter(store)
    for record in three_cycles():
        writer.submit(record)
    writer.close()
    assert len(store.cycles()) == 3 and writer.errors == 0


def test_summary_volume_per_venue_per_day_and_month_fees_rebates_fill_rate() -> None:
    clean, unwound, no_fill = three_cycles()
    summary = summarize([clean, unwound, no_fill])
    assert summary["cycles"] == 3 and summary["fill_rate"] == pytest.approx(2 / 3)
    assert summary["outcomes"] == {"clean": 1, "unwound": 1, "no_fill": 1}
    day1, day2 = clean.ended_at.date().isoformat(), unwound.ended_at.date().isoformat()
    assert Decimal(summary["volume_by_day"][day1]["hedge"]) == clean.hedge_size * clean.hedge_price  # type: ignore[operator]
    assert "hedge" not in summary["volume_by_day"][day2] or Decimal(summary["volume_by_day"][day2]["hedge"]) == 0
    primary_total = clean.primary.notional + unwound.primary.notional
    assert Decimal(summary["volume_by_month"][clean.ended_at.strftime("%Y-%m")]["primary"]) == primary_total
    assert summary["trade_count"] == 1 + 1 + 2  # clean: maker + hedge; unwound: maker + unwind
    assert Decimal(summary["rebates"]) == clean.primary.rebates + unwound.primary.rebates > 0
    assert Decimal(summary["max_abs_imbalance"]) == 0 and summary["imbalanced_cycles"] == 0
