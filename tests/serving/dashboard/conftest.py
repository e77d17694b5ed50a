"""Fixtures of the dashboard tests: a private serving home with an API key, served by uvicorn."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi import FastAPI

from bench.serving_home import rehome
from pipelines.config import Settings
from serving.app import create_app
from serving.engine.persistence.schema import ClosedTrade
from tests.serving.helpers import serve_in_thread

KEY = "dashboard-test-key"


@dataclass
class Served:
    app: FastAPI
    url: str
    settings: Settings


def private_home(serving_home: Settings, tmp_path: Path) -> Settings:
    """A copy of the session home (the engine writes its store there), with an API key."""
    home = tmp_path / "home"
    shutil.copytree(serving_home.home, home)
    return rehome(serving_home, home, api_key=KEY)


def record_round_trips(app: FastAPI, pnls: list[str]) -> None:
    """Closed round trips in the engine's store (what the equity curve is rebuilt from)."""
    engine = app.state.trading_engine
    start = datetime.now(UTC) - timedelta(minutes=10 * len(pnls) + 5)
    for i, pnl in enumerate(pnls):
        engine.store.record_closed_trade(
            ClosedTrade(
                symbol="BTC/USDT",
                opened_at=start + timedelta(minutes=10 * i),
                closed_at=start + timedelta(minutes=10 * i + 5),
                size=Decimal("0.01"),
                net_pnl=Decimal(pnl),
                net_return=float(pnl) / 100,
                exit_reason="take_profit" if Decimal(pnl) > 0 else "stop_loss",
                strategy_id=engine.status().strategies[0].strategy_id if engine.status().strategies else "default",
            )
        )


@pytest.fixture
def served(serving_home: Settings, tmp_path: Path) -> Iterator[Served]:
    settings = private_home(serving_home, tmp_path)
    app = create_app(settings)
    with serve_in_thread(app) as url:
        yield Served(app, url, settings)
