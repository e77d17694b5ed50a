"""`alphatide mm simulate --gamma G [--paths N] [--seed S] [--fill-model linear|poisson] [--json]`
and `alphatide mm calibrate`: the paper's simulation and the nightly fit from the command line.

Registered into the main parser by `pipelines.cli` (`register(sub)`; `run(args, settings)` handles it).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipelines.trading.market_making.config import PaperSimulationConfig
from pipelines.trading.market_making.simulation import PAPER_TABLES, PaperResult, simulate_paper

COMMANDS = ("mm",)
_LABELS = {"journal_2008": "2008", "working_paper_2006": "2006 draft"}


def register(sub: Any) -> None:
    """Add the `mm` subcommand group to the main parser's subparsers."""
    mm = sub.add_parser("mm", help="Avellaneda-Stoikov market making: the paper's simulation, the nightly fit")
    actions = mm.add_subparsers(dest="mm_command", required=True)
    simulate = actions.add_parser("simulate", help="the paper's simulation: inventory vs symmetric strategy")
    defaults = PaperSimulationConfig()
    simulate.add_argument("--gamma", type=float, required=True, help="risk aversion (paper: 0.01, 0.1, 0.5, 1)")
    simulate.add_argument("--paths", type=int, default=defaults.paths, help=f"seeded paths (default {defaults.paths})")
    simulate.add_argument("--seed", type=int, default=defaults.seed, help=f"random seed (default {defaults.seed})")
    simulate.add_argument(
        "--fill-model",
        choices=("linear", "poisson"),
        default=defaults.fill_model,
        help="linear: the paper's probability lambda dt (capped at 1); poisson: 1 - exp(-lambda dt)",
    )
    simulate.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    actions.add_parser("calibrate", help="fit A, k and sigma per symbol from the lake (the nightly task)")


def format_table(result: PaperResult) -> str:
    """The paper's table layout, with its published row beside ours where it has one for this gamma."""
    header = f"{'strategy':<20}{'spread':>8}{'profit':>9}{'std(profit)':>13}{'final q':>9}{'std(final q)':>14}"
    lines = [f"gamma {result.gamma:g}, {result.paths} paths, seed {result.seed}", header]
    for name, stats in (("inventory", result.inventory), ("symmetric", result.symmetric)):
        lines.append(
            f"{name:<20}{stats.spread:>8.2f}{stats.profit_mean:>9.2f}{stats.profit_std:>13.2f}"
            f"{stats.q_mean:>9.2f}{stats.q_std:>14.2f}"
        )
        for source, table in PAPER_TABLES.items():
            row = table.get(result.gamma, {}).get(name)
            if row is not None:
                spread, profit, profit_std, q, q_std = row
                label = f"  paper {_LABELS[source]}"
                lines.append(f"{label:<20}{spread:>8.2f}{profit:>9.2f}{profit_std:>13.2f}{q:>9.2f}{q_std:>14.2f}")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Any) -> int:
    if args.mm_command == "calibrate":
        from pipelines.trading.market_making.calibration import run_mm_calibration

        print(json.dumps(run_mm_calibration(settings), indent=2))
        return 0
    cfg = PaperSimulationConfig(gamma=args.gamma, paths=args.paths, seed=args.seed, fill_model=args.fill_model)
    result = simulate_paper(cfg)
    print(json.dumps(result.as_dict()) if args.json else format_table(result))
    return 0
