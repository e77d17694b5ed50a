"""Per-window PnL rows of the window strategies survive a store reopen (SQLite and the real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from serving.engine.store import TradingStore, WindowSettlement
from tests.serving.engine.test_store import pg_dsn

__all__ = ["pg_dsn"]

W = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _row(strategy: str, slug: str, pnl: str) -> WindowSettlement:
    return WindowSettlement(strategy, slug, W, "Up", Decimal("9.996"), Decimal("0.156062575"),
                            Decimal("19.29399495"), Decimal(pnl), W.replace(minute=5), "polymarket")


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_window_pnl_rows_survive_a_reopen_exactly(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    opener: Callable[[], TradingStore] = (
        (lambda: TradingStore.sqlite_file(tmp_path / "engine.db"))
        if backend == "sqlite"
        else (lambda dsn=request.getfixturevalue("pg_dsn"): TradingStore(dsn))
    )
    first = opener()
    first.record_window_pnl(_row("window", "btc-updown-5m-1772445600", "9.29799495"))
    first.record_window_pnl(_row("window-mm", "btc-updown-5m-1772445600", "-1.5"))
    first.record_window_pnl(_row("window", "btc-updown-5m-1772445600", "9.29799495"))  # a replayed settlement
    first.close()

    reopened = opener()
    rows = reopened.window_pnls("window")
    both = reopened.window_pnls()
    reopened.close()

    assert rows == [_row("window", "btc-updown-5m-1772445600", "9.29799495")]  # exact decimals, no duplicate
    assert sorted(r.strategy_id for r in both) == ["window", "window-mm"]
