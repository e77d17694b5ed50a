"""The backtest report: the PnL decomposition adds up to the simulator's own equity; files are written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pipelines.sim.fees import FeeSchedule
from pipelines.sim.latency import ConstantLatency
from pipelines.sim.market import SimMarket
from pipelines.sim.queue import PowerProb
from pipelines.sim.quoting import run_quoter
from pipelines.sim.report import records_from_market, summarize, write_report
from tests.pipelines.sim.test_determinism_and_loop import MS, random_walk_feed


@pytest.fixture(scope="module")
def market() -> SimMarket:
    m = SimMarket(random_walk_feed(3), PowerProb(2), ConstantLatency(2 * MS, 2 * MS), FeeSchedule(-0.0002, 0.0005))
    run_quoter(m)
    return m


def test_the_decomposition_adds_up_to_the_simulators_equity(market: SimMarket) -> None:
    s = summarize(records_from_market(market), bar_s=0.5)
    assert s["fills"] == len(market.fills) > 20
    assert s["pnl"] == pytest.approx(market.equity(), abs=1e-9)
    assert s["spread_capture"] + s["inventory_pnl"] + s["fees_and_rebates"] == pytest.approx(s["pnl"])
    assert s["fees_and_rebates"] == pytest.approx(-market.fees_paid) and s["fees_and_rebates"] > 0  # rebates
    assert s["spread_capture"] > 0  # quoting at the touch earns half the spread on every maker fill
    assert 0 < s["fill_rate"] <= 1 and s["maker_share"] == 1.0
    assert s["max_drawdown"] >= 0 and s["inventory_max_abs"] >= abs(s["inventory_final"])


def test_the_report_files_are_written(market: SimMarket, tmp_path: Path) -> None:
    summary = write_report(records_from_market(market), tmp_path, bar_s=0.5)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    with (tmp_path / "fills.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == summary["fills"]
    with (tmp_path / "orders.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == summary["orders"]
    png = (tmp_path / "equity.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
