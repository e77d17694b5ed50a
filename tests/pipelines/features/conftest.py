"""Fixtures of the feature tests: the parsed Binance tick capture (parsed once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.features.flow import AnyEvent


@pytest.fixture(scope="session")
def capture_events(shared_data: Path) -> dict[str, list[AnyEvent]]:
    """The spot and USD-M captures' trades, depth diffs and snapshots in arrival order, by market.

    Book tickers are left out (both implementations ignore them) because they are ~70% of the lines.
    """
    parser = pytest.importorskip("pipelines.marketdata.binance_capture", reason="capture parser not available")
    out: dict[str, list[AnyEvent]] = {}
    for market in ("spot", "usdm"):
        files = sorted((shared_data / "binance_ticks" / market).glob("*.gz"))
        if not files:
            pytest.skip(f"no {market} capture under {shared_data / 'binance_ticks'}")
        out[market] = [ce.event for ce in parser.iter_binance_capture(files, kinds=("trade", "depth", "snapshot"))]
    return out
