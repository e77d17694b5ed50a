"""What `make run`/`make chain` print: each DAG's and task's state as it happens, a progress bar where
work is counted (the backfill's chunks), and at the end a summary read from the stages' manifests:
as-of date, universe, model version, the promotion decision with its reasons, the MLflow run."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from pipelines.chain_events import EVENT_KEY
from pipelines.config import Settings, mask_uri


class ChainConsole:
    """Called with every event of `run_chain`; prints one line per state change."""

    def __init__(self, out: TextIO | None = None, bars: bool | None = None):
        self.out = out or sys.stdout
        self._bars = bars  # None: a bar only on a terminal
        self._bar: Any = None
        self._bar_task: str | None = None

    def _print(self, text: str) -> None:
        if self._bar is not None:
            self._bar.clear()
        print(text, file=self.out, flush=True)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event[EVENT_KEY]
        if kind == "chain_started":
            self._print(f"  chain: {' -> '.join(event['dags'])}")
        elif kind == "dag_started":
            self._print(f"  {event['dag_id']:<24} running  ({', '.join(event['tasks'])})")
        elif kind == "dag_finished":
            self._close_bar()
            self._print(f"  {event['dag_id']:<24} {event['state']}")
        elif kind == "task_started":
            attempt = f" (attempt {event['try_number']})" if event.get("try_number", 1) > 1 else ""
            self._print(f"    {event['task_id']:<22} running{attempt}")
        elif kind == "task_succeeded":
            self._close_bar()
            self._print(f"    {event['task_id']:<22} success in {event['seconds']:.1f} s")
        elif kind == "task_failed":
            self._close_bar()
            then = "retried later (transient error)" if event.get("retryable") else "not retried"
            self._print(f"    {event['task_id']:<22} FAILED after {event['seconds']:.1f} s, {then}:")
            self._print(f"      {event['error']}")
            self._print(f"      task log: {event['log']}")
        elif kind == "progress":
            self._progress(event)

    def _progress(self, event: dict[str, Any]) -> None:
        from tqdm import tqdm

        if self._bar is None or self._bar_task != event["task"]:
            self._close_bar()
            disable = None if self._bars is None else not self._bars
            self._bar = tqdm(total=event["total"], desc=f"    {event['task']}", unit="chunk", file=self.out,
                             disable=disable, mininterval=0.5, leave=False)
            self._bar_task = event["task"]
        self._bar.total = event["total"]
        self._bar.n = event["done"]
        self._bar.set_postfix_str(event["detail"], refresh=False)
        self._bar.refresh()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._bar_task = None


def run_link(settings: Settings, experiment_id: str | None, run_id: str | None) -> str:
    """Where to see a run: the tracking server's page, or how to open the embedded store's UI."""
    if not run_id:
        return "-"
    uri = settings.mlflow_tracking_uri
    path = f"#/experiments/{experiment_id or '0'}/runs/{run_id}"
    if uri.startswith(("http://", "https://")):
        return f"{mask_uri(uri).rstrip('/')}/{path}"
    return f"http://127.0.0.1:5000/{path} (after `.venv/bin/mlflow ui --backend-store-uri {mask_uri(uri)}`)"


def summary_lines(settings: Settings, states: dict[str, dict[str, Any] | None]) -> list[str]:
    """The end-of-chain summary from the manifests (`universe`, `validated`, `training`, `online`)."""
    universe = states.get("universe") or {}
    training = states.get("training") or {}
    online = states.get("online") or {}
    lines = ["", "alphatide nightly chain summary:"]
    if universe:
        symbols = universe.get("symbols", [])
        published = "published" if online.get("universe_published") else "NOT published (chain incomplete)"
        lines.append(f"  as-of          {universe.get('as_of')} (universe date {universe.get('date')}, "
                     f"source {universe.get('source')})")
        lines.append(f"  universe       {len(symbols)} symbols, {published}: {', '.join(symbols)}")
    validated = states.get("validated") or {}
    if validated:
        lines.append(f"  batch          {validated.get('batch_id')}: {validated.get('validated_rows')} rows validated, "
                     f"{validated.get('new_rows')} new")
    if training:
        decision = training.get("decision") or {}
        verdict = "PROMOTED to champion" if training.get("promoted") else "not promoted"
        lines.append(f"  model          version {training.get('version')} {verdict}; champion now "
                     f"{training.get('champion')} (before: {training.get('champion_before')})")
        for reason in training.get("reasons", []):
            lines.append(f"    reason       {reason}")
        challenger = decision.get("challenger") or {}
        if challenger:
            lines.append("    challenger   " + _figures(challenger))
        champion = decision.get("champion")
        if champion:
            lines.append(f"    champion v{decision.get('champion_version')} " + _figures(champion))
        lines.append(f"  MLflow run     {run_link(settings, training.get('experiment_id'), training.get('run_id'))}")
    return lines


def _figures(score: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in score.items())
