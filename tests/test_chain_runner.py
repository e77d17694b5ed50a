"""`make chain` as its users see it, through Airflow (`dag.test()` per DAG, SQLite metadata) in a
temporary home: states streamed as they happen, a failed task's error (file, rule, row) printed and kept
in its task log, operator errors not retried, the universe published only by a chain that succeeded,
and the `alphatide.model` asset event (with the decision) only when the champion changes."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.airflow_runner import run_chain
from pipelines.chain_console import ChainConsole, summary_lines
from pipelines.chain_events import EVENT_KEY
from pipelines.config import Settings, load_settings
from pipelines.errors import OperatorError
from pipelines.lake import Lake
from pipelines.sources.synthetic import SyntheticSource

pytestmark = [pytest.mark.integration]


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for key, value in {**env, "ALPHATIDE_HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(key, value)
    return load_settings()


def _asset_events(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    with sqlite3.connect(settings.airflow_home / "airflow.db") as db:
        rows = db.execute(
            "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY e.id"
        ).fetchall()
    return [(name, json.loads(extra or "{}")) for name, extra in rows]


def test_a_failing_task_is_named_with_its_rule_and_row_not_retried_and_nothing_is_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_of = datetime(2026, 5, 20, tzinfo=UTC)
    dup = as_of - timedelta(days=1, hours=3)
    source = SyntheticSource(as_of=as_of, days=70, n_symbols=4)
    bars = source.fetch_candles(source.list_symbols("USDT"), "5m", as_of - timedelta(days=70), as_of)
    twin = bars.filter((pl.col("symbol") == "ETH/USDT") & (pl.col("ts") == dup)).with_columns(pl.col("close") * 1.01)
    (tmp_path / "replay").mkdir()
    pl.concat([bars, twin]).rename({"ts": "open_time"}).write_parquet(tmp_path / "replay" / "rec_5m_x.parquet")
    settings = _settings(tmp_path, monkeypatch, {
        "ALPHATIDE_SOURCE": "replay", "ALPHATIDE_REPLAY_DIR": str(tmp_path / "replay"),
        "ALPHATIDE_DATA__HISTORY_DAYS": "3", "ALPHATIDE_UNIVERSE__SIZE": "1",
    })
    events: list[dict[str, Any]] = []
    printed = io.StringIO()
    console = ChainConsole(out=printed, bars=False)

    def hear(event: dict[str, Any]) -> None:
        events.append(event)
        console(event)

    with pytest.raises(OperatorError) as stopped:
        run_chain(settings, on_event=hear)

    message = str(stopped.value)
    assert "DAG alphatide_validate ended failed: task validate failed" in message
    assert "expect_column_values_to_be_unique (ts)" in message and f"ts={dup.isoformat()}" in message
    assert "report.json" in message  # the file that names every offending row
    log_path = Path(message.rsplit("task log: ", 1)[1].strip())
    assert log_path.is_file() and log_path.is_relative_to(settings.airflow_home / "logs")
    assert f"ts={dup.isoformat()}" in log_path.read_text()  # kept in the task log too
    started = [e for e in events if e[EVENT_KEY] == "task_started" and e["task_id"] == "validate"]
    failed = [e for e in events if e[EVENT_KEY] == "task_failed"]
    assert len(started) == 1 and len(failed) == 1 and failed[0]["retryable"] is False  # no retry
    assert [e["dag_id"] for e in events if e[EVENT_KEY] == "dag_finished"] == [
        "alphatide_universe", "alphatide_backfill", "alphatide_validate"
    ]
    shown = printed.getvalue()
    assert "validate               FAILED" in shown and "not retried" in shown and str(log_path) in shown
    lake = Lake(settings.lake_dir)
    assert lake.read_universe() is None  # a failed chain publishes no universe
    assert lake.read_candles(settings.venue, "5m").is_empty()


@pytest.mark.slow
def test_states_stream_then_a_summary_and_the_model_event_only_on_a_champion_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, monkeypatch, {
        "ALPHATIDE_SOURCE": "synthetic", "ALPHATIDE_DATA__SYNTHETIC_SYMBOLS": "4",
        "ALPHATIDE_DATA__HISTORY_DAYS": "8", "ALPHATIDE_MODEL__ITERATIONS": "40",
        "ALPHATIDE_MODEL__SEQUENCE_TOWER": "false", "ALPHATIDE_UNIVERSE__SIZE": "1",
    })
    events: list[dict[str, Any]] = []

    results = run_chain(settings, on_event=events.append)

    assert [r["state"] for r in results] == ["success"] * 6
    kinds = [(e[EVENT_KEY], e.get("dag_id"), e.get("task_id")) for e in events if e[EVENT_KEY] != "progress"]
    assert kinds[:5] == [
        ("chain_started", None, None),
        ("dag_started", "alphatide_universe", None),
        ("task_started", "alphatide_universe", "universe"),
        ("task_succeeded", "alphatide_universe", "universe"),
        ("dag_finished", "alphatide_universe", None),
    ]
    progress = [e for e in events if e[EVENT_KEY] == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"]  # the backfill's counted chunks
    train_log = next(Path(e["log"]) for e in events if e.get("task_id") == "train" and e[EVENT_KEY] == "task_succeeded")
    assert "promotion decision: model version 1 PROMOTED to champion" in train_log.read_text()
    lake = Lake(settings.lake_dir)
    states = {name: lake.read_state(name) for name in ("universe", "validated", "training", "online")}
    summary = "\n".join(summary_lines(settings, states))
    assert "as-of          " in summary and "universe       4 symbols, published" in summary
    assert "model          version 1 PROMOTED" in summary and "reason       no champion in service" in summary
    assert f"runs/{states['training']['run_id']}" in summary  # type: ignore[index]
    model_events = [extra for name, extra in _asset_events(settings) if name == "alphatide.model"]
    assert len(model_events) == 1 and model_events[0]["promoted"] is True and model_events[0]["version"] == "1"
    assert set(model_events[0]["challenger"]) >= {"brier", "ece", "sharpe"}
    assert lake.read_universe() is not None

    # The same data again, judged by a stricter ECE bound: the challenger cannot beat the champion. (An
    # equal challenger would pass the SPEC's ">=" and "<=" rules, and on 8 synthetic days there are too
    # few trades for a Sharpe estimate, so it is the ECE bound that rejects it here.)
    monkeypatch.setenv("ALPHATIDE_PROMOTION__MAX_ECE", "0.000000001")
    run_chain(load_settings())

    training = lake.read_state("training") or {}
    assert not training["promoted"] and training["champion"] == "1"
    events_after = _asset_events(settings)
    assert [n for n, _ in events_after].count("alphatide.retrain") == 2
    assert [n for n, _ in events_after].count("alphatide.model") == 1  # no event: the champion did not change
