"""`alphatide models list | promote VERSION | rollback --to VERSION`: the registry from the command line.

Registered into the main parser by `pipelines.cli` (`register(sub)`; `run(args, settings)` handles it).
Promote and rollback move the `champion` alias (the serving tier follows it within its check interval)
and record who/what moved it on the version, so the registry keeps the reason for every change.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from pipelines.config import Settings
from pipelines.errors import OperatorError

COMMANDS = ("models",)


def register(sub: Any) -> None:
    """Add the `models` subcommand group to the main parser's subparsers."""
    models = sub.add_parser("models", help="list registered model versions, promote one, or roll back")
    actions = models.add_subparsers(dest="models_command", required=True)
    actions.add_parser("list", help="every version, newest first, with its aliases and promotion decision")
    promote = actions.add_parser("promote", help="make VERSION the champion (manual override of the gate)")
    promote.add_argument("version", help="registered version number")
    rollback = actions.add_parser("rollback", help="put an earlier version back in service")
    rollback.add_argument("--to", dest="version", required=True, help="registered version number")


def _registry(settings: Settings) -> Any:
    from pipelines.registry import MlflowRegistry

    return MlflowRegistry(settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", settings.model.name)


def move_champion(settings: Settings, version: str, action: str, now: datetime | None = None) -> str:
    """Point `champion` at `version` (which must exist); returns a one-line account of the change."""
    from pipelines.registry import CHAMPION

    registry = _registry(settings)
    target = registry.get(version)  # OperatorError naming the version when it does not exist
    before = registry.champion()
    if action == "rollback" and before is not None and int(target.version) >= int(before.version):
        raise OperatorError(
            f"rollback goes to an earlier version: {target.version} is not older than champion {before.version} "
            "(use `alphatide models promote` to move forward)"
        )
    registry.set_alias(target.version, CHAMPION)
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    account = f"{action} by CLI at {stamp}: champion {before.version if before else 'none'} -> {target.version}"
    registry.client.set_model_version_tag(settings.model.name, target.version, f"manual_{action}", account)
    registry.client.set_tag(target.run_id, "promotion.manual", account)
    return account


# (header, run metric) of the promotion gate's figures (SPEC 8: the last fold's test period)
GATE_COLUMNS = (
    ("sharpe", "promotion_sharpe"),
    ("brier", "promotion_brier"),
    ("ece", "promotion_ece"),
    ("accuracy", "promotion_accuracy"),
    ("auc", "oos_auc"),
    ("trades", "bt_trades"),
)


def _figure(metrics: dict[str, float], key: str) -> str:
    value = metrics.get(key)
    if value is None:
        return "-"
    return f"{value:.0f}" if key.endswith("trades") else f"{value:.4f}"


def _decision(run_tags: dict[str, str], version_tags: dict[str, str]) -> str:
    manual = [k.removeprefix("manual_") for k in version_tags if k.startswith("manual_")]
    verdict = run_tags.get("promotion.decision", "-")
    return verdict + (f" (then manual {', '.join(sorted(manual))})" if manual else "")


def version_rows(settings: Settings) -> list[dict[str, str]]:
    """One row per registered version, newest first: version, alias, gate figures, decision, reason."""
    registry = _registry(settings)
    rows = []
    for ref, aliases in registry.versions():
        run = registry.client.get_run(ref.run_id)
        version_tags = registry.client.get_model_version(settings.model.name, ref.version).tags or {}
        metrics = dict(run.data.metrics)
        row = {"version": ref.version, "alias": ",".join(aliases) or "-"}
        row |= {header: _figure(metrics, key) for header, key in GATE_COLUMNS}
        row["decision"] = _decision(dict(run.data.tags), version_tags)
        row["run"] = run.info.run_name or ref.run_id
        row["reason"] = run.data.tags.get("promotion.reason", "-")
        rows.append(row)
    return rows


def list_versions(settings: Settings) -> list[str]:
    """The `models list` table: a header line, then one line per version (the reason last, untruncated)."""
    rows = version_rows(settings)
    if not rows:
        return []
    columns = ["version", "alias", *(h for h, _ in GATE_COLUMNS), "decision", "run", "reason"]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns[:-1]}
    def line(values: dict[str, str]) -> str:
        return "  ".join(values[c].ljust(widths[c]) for c in columns[:-1]) + "  " + values["reason"]
    return [line({c: c for c in columns}), *(line(r) for r in rows)]


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.models_command == "list":
        lines = list_versions(settings)
        print("\n".join(lines) if lines else f"no versions of {settings.model.name} registered yet")
    else:
        print(move_champion(settings, str(args.version), args.models_command))
    return 0
