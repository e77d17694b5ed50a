"""`python -m bench.mm`: the Avellaneda-Stoikov paper's simulation for gamma 0.01, 0.1, 0.5 and 1.

Per gamma: the inventory and the symmetric strategy's mean/std profit and std of the final inventory
(1000 seeded paths, the paper's parameters), wall and CPU seconds, and the machine's load average
(the machines are shared: wall time alone moves with load). The capture backtest (PnL and fills of
the strategy on the recorded Binance books through the tick-level simulator) runs the `alphatide
backtest` path (`serving.backtest.runner`: the real engine on `SimulatedVenue`s) once per gamma on the
shared USD-M BTCUSDT capture (deployment phase 3, 60 s rolling horizon): `capture_pnl` (quote, from the
report) and `capture_fills`; null with the reason when ../shared/data is absent.

Writes `bench/results/mm.json` and prints the same JSON as its last line.
"""

from __future__ import annotations

import argparse
import os
import time

from bench.common import publish
from pipelines.trading.market_making.config import PaperSimulationConfig
from pipelines.trading.market_making.simulation import simulate_paper

GAMMAS = (0.01, 0.1, 0.5, 1.0)


def capture_backtest(gamma: float) -> tuple[float | None, int | None, str]:
    """PnL and fills of the strategy at `gamma` on the shared capture, through `alphatide backtest`'s path."""
    import tempfile
    from pathlib import Path

    from bench.common import shared_data_dir
    from pipelines.config import load_settings
    from serving.backtest.runner import BacktestSpec, run_backtest

    folder = shared_data_dir() / "binance_ticks" / "usdm"
    if not folder.is_dir():
        return None, None, f"no capture at {folder}"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ALPHATIDE_HOME", str(Path(tmp) / "home"))
        spec = BacktestSpec("market_making", folder, out=Path(tmp) / "out", progress=False, phase=3,
                            params={"gamma": gamma, "horizon_seconds": 60})
        total = run_backtest(load_settings(), spec).summary["total"]
    return round(total["pnl"], 6), int(total["fills"]), "usdm/btcusdt capture, engine + SimulatedVenue"


def run(paths: int, seed: int) -> dict[str, object]:
    per_gamma: dict[str, object] = {}
    for gamma in GAMMAS:
        start, start_cpu = time.perf_counter(), time.process_time()
        result = simulate_paper(PaperSimulationConfig(gamma=gamma, paths=paths, seed=seed))
        seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        inv, sym = result.inventory, result.symmetric
        capture_start, capture_cpu0 = time.perf_counter(), time.process_time()
        capture_pnl, capture_fills, capture_reason = capture_backtest(gamma)
        capture_s, capture_cpu = time.perf_counter() - capture_start, time.process_time() - capture_cpu0
        per_gamma[f"{gamma:g}"] = {
            "spread": round(inv.spread, 4),
            "inventory_profit_mean": round(inv.profit_mean, 3),
            "inventory_profit_std": round(inv.profit_std, 3),
            "inventory_q_mean": round(inv.q_mean, 3),
            "inventory_q_std": round(inv.q_std, 3),
            "symmetric_profit_mean": round(sym.profit_mean, 3),
            "symmetric_profit_std": round(sym.profit_std, 3),
            "symmetric_q_mean": round(sym.q_mean, 3),
            "symmetric_q_std": round(sym.q_std, 3),
            "capture_pnl": capture_pnl,
            "capture_fills": capture_fills,
            "capture_reason": capture_reason,
            "capture_seconds": round(capture_s, 2),
            "capture_cpu_seconds": round(capture_cpu, 2),
            "seconds": round(seconds, 4),
            "cpu_seconds": round(cpu, 4),
        }
    return {
        "benchmark": "mm",
        "paths": paths,
        "seed": seed,
        "gammas": per_gamma,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = PaperSimulationConfig()
    parser.add_argument("--paths", type=int, default=defaults.paths)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args()
    publish("mm", run(args.paths, args.seed))


if __name__ == "__main__":
    main()
