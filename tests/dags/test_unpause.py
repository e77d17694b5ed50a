"""`make airflow` leaves no consumer of the chain paused, even in a home made when DAGs started paused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipelines.airflow_runner import unpause_chain
from pipelines.config import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _paused(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT dag_id, is_paused FROM dag").fetchall())


def test_the_asset_triggered_dags_are_unpaused_and_the_daily_clock_keeps_its_state(tmp_path: Path) -> None:
    settings = load_settings({}, home=tmp_path)
    db = settings.airflow_home / "airflow.db"
    unpause_chain(settings)
    with sqlite3.connect(db) as con:  # an older home: every DAG was created paused
        con.execute("UPDATE dag SET is_paused = 1")

    unpaused = unpause_chain(settings)

    paused = _paused(db)
    assert set(unpaused) == set(paused) - {"alphatide_universe"}
    assert all(paused[d] == 0 for d in unpaused) and paused["alphatide_universe"] == 1
