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


def list_versions(settings: Settings) -> list[str]:
    lines = []
    for ref, aliases in _registry(settings).versions():
        lines.append(f"{ref.version:>5}  {','.join(aliases) or '-':<20} run {ref.run_id}  h={ref.horizon_bars}")
    return lines


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.models_command == "list":
        lines = list_versions(settings)
        print("\n".join(lines) if lines else f"no versions of {settings.model.name} registered yet")
    else:
        print(move_champion(settings, str(args.version), args.models_command))
    return 0
