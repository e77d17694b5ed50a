"""`python -m bench.mm`: the Avellaneda-Stoikov paper's simulation for gamma 0.01, 0.1, 0.5 and 1.

Per gamma: the inventory and the symmetric strategy's mean/std profit and std of the final inventory
(1000 seeded paths, the paper's parameters), wall and CPU seconds, and the machine's load average
(the machines are shared: wall time alone moves with load). The capture backtest (PnL and fills of
the strategy on the recorded Binance books through the tick-level simulator) runs the `alphatide
backtest` path (`serving.backtest.runner`: the real engine on `SimulatedVenue`s) once per gamma on each
shared BTCUSDT capture, spot and USD-M separately (deployment phase 3, 60 s rolling horizon, Binance's
tick/lot/min notional and published default maker/taker fees of each market, passed as explicit flags;
spot starts holding half its 10 000 USDT in BTC, its target inventory, so it quotes both sides):
`capture_pnl`, `capture_fills` and `capture_quote_uptime` map the market to its number; `capture` holds
the details (PnL parts, fill rate, bid/ask uptime, fees, starting balances, seconds), or the reason when
../shared/data is absent.

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


# Binance's rules for BTCUSDT as `exchangeInfo` reports them (spot /api/v3: PRICE_FILTER tickSize,
# LOT_SIZE stepSize/minQty, NOTIONAL minNotional; USD-M /fapi/v1: PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL
# notional = 100 USDT for BTCUSDT), unchanged over the capture (2024-08). The bench has no lake with a
# cached `load_markets` row for the capture's date, so it passes them as `alphatide backtest --tick-size ...`.
CAPTURE_INSTRUMENTS = {
    "spot": {"tick_size": "0.01", "lot_size": "0.00001", "min_notional": "5", "min_size": "0.00001"},
    "usdm": {"tick_size": "0.1", "lot_size": "0.001", "min_notional": "100", "min_size": "0.001"},
}
# Binance's published default (VIP 0, no BNB discount) fee rates, https://www.binance.com/en/fee/schedule:
# spot 0.1% maker and taker; USD-M futures 0.02% maker, 0.05% taker. Passed explicitly (`alphatide backtest
# --maker-fee/--taker-fee`), since the bench has no lake row for them; an account's own tier may be lower.
CAPTURE_FEES = {
    "spot": {"maker_fee": 0.001, "taker_fee": 0.001},
    "usdm": {"maker_fee": 0.0002, "taker_fee": 0.0005},
}
CAPTURE_KEYS = ("pnl", "fills", "spread_capture", "inventory_pnl", "fill_rate", "quote_uptime", "bid_uptime",
                "ask_uptime")


def capture_backtest(gamma: float, market: str) -> dict[str, object]:
    """The strategy at `gamma` on the shared BTCUSDT capture of `market` (spot | usdm), through
    `alphatide backtest`'s path: PnL and its parts, fills, fill rate and quote uptime (or the reason why not)."""
    import tempfile
    from pathlib import Path

    from bench.common import shared_data_dir
    from pipelines.config import load_settings
    from pipelines.sim.config import SimVenueConfig
    from serving.backtest.runner import BacktestSpec, run_backtest

    folder = shared_data_dir() / "binance_ticks" / market
    if not folder.is_dir():
        return {"reason": f"no capture at {folder}"}
    start, cpu0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ALPHATIDE_HOME", str(Path(tmp) / "home"))
        sim = SimVenueConfig.model_validate({**CAPTURE_INSTRUMENTS[market], **CAPTURE_FEES[market]})
        spec = BacktestSpec("market_making", folder, out=Path(tmp) / "out", progress=False, phase=3, sim=sim,
                            params={"gamma": gamma, "horizon_seconds": 60})
        summary = run_backtest(load_settings(), spec).summary
    total = summary["total"]
    out: dict[str, object] = {k: round(float(total[k]), 6) for k in CAPTURE_KEYS}
    out["fills"] = int(total["fills"])
    out["fees"] = CAPTURE_FEES[market]
    out["starting_balances"] = summary["starting_balances"]
    out["seconds"] = round(time.perf_counter() - start, 2)
    out["cpu_seconds"] = round(time.process_time() - cpu0, 2)
    return out


def run(paths: int, seed: int) -> dict[str, object]:
    per_gamma: dict[str, object] = {}
    for gamma in GAMMAS:
        start, start_cpu = time.perf_counter(), time.process_time()
        result = simulate_paper(PaperSimulationConfig(gamma=gamma, paths=paths, seed=seed))
        seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        inv, sym = result.inventory, result.symmetric
        capture = {market: capture_backtest(gamma, market) for market in ("spot", "usdm")}
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
            # per market (spot, usdm): BTCUSDT capture backtest
            "capture_pnl": {m: c.get("pnl") for m, c in capture.items()},
            "capture_fills": {m: c.get("fills") for m, c in capture.items()},
            "capture_quote_uptime": {m: c.get("quote_uptime") for m, c in capture.items()},
            "capture": capture,
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
