"""`alphatide cluster up|down|status|trigger`: the distributed layout (see pipelines.cluster)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipelines.config import Settings

COMMANDS = ("cluster",)


def register(sub: Any) -> None:
    cluster = sub.add_parser("cluster", help="Airflow (Celery) + MLflow server + Redis + serving replicas")
    actions = cluster.add_subparsers(dest="cluster_command", required=True)
    actions.add_parser("up", help="start every component of this machine (ALPHATIDE_CLUSTER__COMPONENTS)")
    actions.add_parser("down", help="stop every process the cluster started here")
    actions.add_parser("status", help="where each UI is and which processes run, as JSON")
    trigger = actions.add_parser("trigger", help="trigger the nightly chain through the Airflow REST API")
    trigger.add_argument("--conf", default="{}", help="JSON conf of the alphatide_universe run")
    trigger.add_argument("--no-wait", action="store_true", help="return once triggered")
    trigger.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the chain")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.cluster import runner
    from pipelines.cluster.config import load_cluster_config

    cfg = load_cluster_config()
    if args.cluster_command == "up":
        runner.up(cfg, settings)
    elif args.cluster_command == "down":
        runner.down(cfg, settings)
    elif args.cluster_command == "status":
        print(runner.status_json(cfg, settings))
    elif args.cluster_command == "trigger":
        result = runner.trigger(cfg, settings, conf=json.loads(args.conf), wait=not args.no_wait,
                                timeout_s=args.timeout)
        print(json.dumps(result, indent=2))
    return 0
