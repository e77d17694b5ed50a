"""What `make chain` prints for each event of the runner, and its closing summary."""

from __future__ import annotations

import io
from pathlib import Path

from pipelines.chain_console import ChainConsole, run_link, summary_lines
from pipelines.chain_events import EVENT_KEY
from pipelines.config import load_settings


def _event(kind: str, **fields: object) -> dict[str, object]:
    return {EVENT_KEY: kind, **fields}


def test_each_state_change_is_one_line_and_counted_work_gets_a_bar() -> None:
    out = io.StringIO()
    console = ChainConsole(out=out, bars=True)

    console(_event("dag_started", dag_id="alphatide_backfill", tasks=["backfill"]))
    console(_event("task_started", dag_id="alphatide_backfill", task_id="backfill", try_number=1, log="x.log"))
    for done in (1, 2, 3):
        console(_event("progress", task="backfill", done=done, total=3, detail=f"candles_5m BTC/USDT day {done}"))
    console(_event("task_succeeded", dag_id="alphatide_backfill", task_id="backfill", log="x.log", seconds=2.04))
    console(_event("task_failed", dag_id="alphatide_validate", task_id="validate", try_number=1, log="v.log",
                   error="DataValidationError: batch b quarantined", retryable=False, seconds=1.0))

    text = out.getvalue()
    assert "alphatide_backfill       running  (backfill)" in text
    assert "3/3" in text and "chunk" in text  # the tqdm bar
    assert "backfill               success in 2.0 s" in text
    assert "validate               FAILED after 1.0 s, not retried:" in text
    assert "DataValidationError: batch b quarantined" in text and "task log: v.log" in text


def test_the_summary_has_the_as_of_date_universe_model_decision_and_run_link(tmp_path: Path) -> None:
    settings = load_settings({}, home=tmp_path)
    states = {
        "universe": {"as_of": "2024-07-01T00:00:00+00:00", "date": "2024-07-01", "source": "replay",
                     "symbols": ["BTC/USDT", "ETH/USDT"]},
        "validated": {"batch_id": "b1", "validated_rows": 100, "new_rows": 10},
        "training": {"version": "3", "promoted": False, "champion": "2", "champion_before": "2",
                     "reasons": ["sharpe 0.10 < required 0.50"], "run_id": "abc", "experiment_id": "1",
                     "decision": {"challenger": {"sharpe": 0.1, "brier": 0.2491},
                                  "champion_version": "2", "champion": {"sharpe": 0.7, "brier": 0.2489}}},
        "online": {"universe_published": "/x/universe.parquet"},
    }

    text = "\n".join(summary_lines(settings, states))

    assert "as-of          2024-07-01T00:00:00+00:00" in text
    assert "universe       2 symbols, published: BTC/USDT, ETH/USDT" in text
    assert "model          version 3 not promoted; champion now 2 (before: 2)" in text
    assert "reason       sharpe 0.10 < required 0.50" in text
    assert "challenger   sharpe 0.1000, brier 0.2491" in text and "champion v2 sharpe 0.7000" in text
    assert "#/experiments/1/runs/abc" in text


def test_a_tracking_server_link_is_masked() -> None:
    settings = load_settings({"ALPHATIDE_MLFLOW_URI": "https://ml:pw@mlflow.example"})
    assert run_link(settings, "4", "r1") == "https://ml:***@mlflow.example/#/experiments/4/runs/r1"
