"""`alphatide` command line: run the nightly chain through Airflow, serve signals, inspect settings."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pipelines import cli_cluster, cli_marketdata, cli_models, cli_window
from pipelines.config import Settings, check_live_start, load_settings, mask_uri
from pipelines.errors import AlphatideError
from pipelines.trading.market_making import cli as cli_mm
from serving.backtest import cli as cli_backtest

log = logging.getLogger("alphatide")


def _chain(settings: Settings) -> None:
    from pipelines.airflow_runner import run_chain
    from pipelines.chain_console import ChainConsole, summary_lines
    from pipelines.lake import Lake

    print(
        f"alphatide: running the nightly chain through Airflow (home {settings.home}, source {settings.source})",
        flush=True,
    )
    run_chain(settings, on_event=ChainConsole())
    lake = Lake(settings.lake_dir)
    states = {name: lake.read_state(name) for name in ("universe", "validated", "training", "online")}
    used = (states["universe"] or {}).get("source")
    if settings.source == "auto" and used == "synthetic":
        # The fallback is decided inside the Airflow task; say it here too, where the operator looks.
        print(
            f"  WARNING: {settings.venue} did not answer within {settings.data.probe_timeout_s:.0f} s, so this run "
            "used SYNTHETIC candles (set ALPHATIDE_SOURCE=binance|replay|synthetic to choose)",
            flush=True,
        )
    print("\n".join(summary_lines(settings, states)), flush=True)


def serve_banner(settings: Settings, venue_lines: Sequence[str] = ()) -> str:
    """Where to look once the serving tier is up (every URI masked: credentials are never printed);
    `venue_lines`: the engine's extra venues (`serving.engine.venues.banner_lines`, keys masked)."""
    base = f"http://{settings.host}:{settings.port}"
    return (
        "\nalphatide serving tier is up:\n"
        f"  signal   {base}/signal?symbol=BTC/USDT\n"
        f"  health   {base}/health\n"
        f"  API docs {base}/docs\n"
        f"  MLflow   .venv/bin/mlflow ui --backend-store-uri {mask_uri(settings.mlflow_tracking_uri)}\n"
        "  Airflow  make airflow (UI on http://127.0.0.1:8080)\n"
        + "".join(f"{line}\n" for line in venue_lines)
        + "Ctrl-C stops it."
    )


def _serve(settings: Settings) -> None:
    if settings.serving.lean_imports:  # before anything imports catboost or ccxt (serving.lean_imports)
        from serving.lean_imports import install

        install()
    import uvicorn

    from serving.app import create_app
    from serving.engine.venues import banner_lines, check_venues_start

    venues = check_venues_start(settings)  # ALPHATIDE_VENUES: a live venue without its keys fails here
    print(serve_banner(settings, banner_lines(venues)), flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


def _airflow(settings: Settings) -> int:
    from pipelines.airflow_runner import airflow_environment, unpause_chain

    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    env = airflow_environment(settings)
    print(f"airflow: preparing {settings.airflow_home} (migrate, parse {settings.dags_dir}) ...", flush=True)
    unpaused = unpause_chain(settings)
    print(
        f"airflow: unpaused {', '.join(unpaused)} (asset-triggered: each runs when the one before it succeeds).\n"
        "airflow: alphatide_universe keeps its pause state: Trigger it in the UI to run the whole chain (keep the "
        "dialog's 'Unpause on trigger': a paused DAG's runs stay queued; unpaused, its daily clock runs too).\n"
        f"airflow standalone: UI on http://{env['AIRFLOW__API__HOST']}:{env['AIRFLOW__API__PORT']} "
        f"(AIRFLOW__API__HOST/PORT to change); the admin password is printed below and kept in "
        f"{settings.airflow_home}",
        flush=True,
    )
    airflow = Path(sys.executable).with_name("airflow")
    return subprocess.call([str(airflow), "standalone"], env=env)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alphatide", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the nightly chain through Airflow, then serve signals until interrupted")
    sub.add_parser("chain", help="run the nightly chain through Airflow once")
    sub.add_parser("serve", help="serve /signal and /health on ALPHATIDE_HOST:ALPHATIDE_PORT")
    sub.add_parser("airflow", help="start `airflow standalone` on the project's dags/ (the UI)")
    sub.add_parser("settings", help="print the validated settings as JSON (secrets hidden)")
    cli_marketdata.register(sub)
    cli_models.register(sub)
    cli_mm.register(sub)
    cli_window.register(sub)
    cli_backtest.register(sub)
    cli_cluster.register(sub)
    args = parser.parse_args(argv)
    # MLflow's per-file download bars drown the chain's own output; the chain's children inherit this.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        if args.command == "settings":
            from serving.engine.venues import configured_venues

            shown = {**settings.model_dump(mode="json"), "venues": [v.masked() for v in configured_venues(settings)]}
            print(json.dumps(shown, indent=2))
        elif args.command == "chain":
            _chain(settings)
        elif args.command == "serve":
            check_live_start(settings)
            _serve(settings)
        elif args.command == "run":
            check_live_start(settings)  # before the chain: a live start that must fail fails at once
            from serving.engine.venues import check_venues_start

            check_venues_start(settings)
            _chain(settings)
            _serve(settings)
        elif args.command == "airflow":
            return _airflow(settings)
        elif args.command in cli_marketdata.COMMANDS:
            return cli_marketdata.run(args, settings)
        elif args.command in cli_models.COMMANDS:
            return cli_models.run(args, settings)
        elif args.command in cli_mm.COMMANDS:
            return cli_mm.run(args, settings)
        elif args.command in cli_window.COMMANDS:
            return cli_window.run(args, settings)
        elif args.command in cli_backtest.COMMANDS:
            return cli_backtest.run(args, settings)
        elif args.command in cli_cluster.COMMANDS:
            return cli_cluster.run(args, settings)
    except AlphatideError as exc:
        print(f"alphatide: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
