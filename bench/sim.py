"""Tick-level simulator side by side with hftbacktest: `python -m bench.sim`.

The same simple quoting strategy (one lot at the best bid and ask, post-only, re-quoted when the touch
moves; `pipelines.sim.quoting.TouchQuoter` here, its numba twin in `bench/hft_runner.py` there), with the
same queue model, constant order latency and maker/taker fees, on the same capture: the shared Binance
USD-M BTCUSDT recording by default. Both replay exactly the same feed rows (alphatide's parse of the
capture: REST snapshot + diffs in update-id order + trades), handed to hftbacktest as its event array.

hftbacktest runs in its own venv (`make hftbacktest-env`, `.venv-hft`; numpy < 2.3 and numba 0.61 cannot
live in the project's environment) as a subprocess; without that venv its half is skipped, saying why.

Goals (DESIGN.md): fills and filled quantity within 2% of hftbacktest's; events_per_s >= 200,000.
`events` counts feed rows (one book-level change or one trade), as hftbacktest counts its rows.
Prints load average and CPU time beside wall time; writes bench/results/sim.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, publish, shared_data_dir
from pipelines.marketdata.binance_capture import binance_symbol
from pipelines.sim.config import SimVenueConfig
from pipelines.sim.feed import Feed, feed_from_binance_capture
from pipelines.sim.latency import OrderLatencyTable
from pipelines.sim.quoting import run_quoter
from pipelines.sim.report import records_from_market, write_report

HFT_PYTHON = Path(os.environ.get("HFTBACKTEST_PYTHON", ROOT / ".venv-hft" / "bin" / "python"))
GOAL_EVENTS_PER_S = 200_000
GOAL_MATCH_PCT = 2.0


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.sim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--market", default="usdm", choices=["usdm", "spot"])
    ap.add_argument("--symbol", default="BTCUSDT", help="exchange id of the capture file (btcusdt_*.gz)")
    ap.add_argument("--queue", default="risk_averse", help="risk_averse | power:N | power2:N | log | log2")
    ap.add_argument("--latency", default="constant", choices=["constant", "feed"],
                    help="constant (--entry-ms/--response-ms) or replayed from the capture's feed latency")
    ap.add_argument("--latency-multiplier", type=float, default=1.0, help="feed latency x this (--latency feed)")
    ap.add_argument("--entry-ms", type=float, default=10.0)
    ap.add_argument("--response-ms", type=float, default=10.0)
    ap.add_argument("--maker-fee", type=float, default=-0.00005, help="fraction; negative = rebate")
    ap.add_argument("--taker-fee", type=float, default=0.0004)
    ap.add_argument("--lots", type=int, default=1)
    ap.add_argument("--report", type=Path, default=None,
                    help="also write alphatide's backtest report (summary.json, fills/orders/equity CSV, PNG) here")
    return ap.parse_args()


def _pct(a: float, b: float) -> float | None:
    return None if b == 0 else round(abs(a - b) / abs(b) * 100, 3)


def venue_config(a: argparse.Namespace) -> SimVenueConfig:
    return SimVenueConfig(queue=a.queue, latency=a.latency, entry_ms=a.entry_ms, response_ms=a.response_ms,
                          feed_latency_multiplier=a.latency_multiplier, maker_fee=a.maker_fee, taker_fee=a.taker_fee)


def run_alphatide(feed: Feed, a: argparse.Namespace) -> dict[str, Any]:
    market = venue_config(a).build(feed)
    t0, c0 = time.perf_counter(), time.process_time()
    quoter = run_quoter(market, a.lots)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if a.report is not None:
        write_report(records_from_market(market), a.report)
    lot = float(feed.lot_size)
    return {
        "wall_s": round(wall, 4),
        "cpu_s": round(cpu, 4),
        "fills": len(market.fills),
        "filled_qty": round(sum(f.qty for f in market.fills) * lot, 10),
        "pnl": round(market.equity(), 6),
        "fees": round(market.fees_paid, 6),
        "position": round(market.position * lot, 10),
        "orders": quoter.next_oid - 1,
    }


def run_hftbacktest(feed: Feed, a: argparse.Namespace) -> dict[str, Any]:
    if not HFT_PYTHON.exists():
        return {"skipped": f"{HFT_PYTHON} not found: run `make hftbacktest-env` to create the hftbacktest venv"}
    params = {
        "tick": float(feed.tick_size),
        "lot": float(feed.lot_size),
        "entry_ns": int(a.entry_ms * 1e6),
        "response_ns": int(a.response_ms * 1e6),
        "maker": a.maker_fee,
        "taker": a.taker_fee,
        "queue": a.queue,
        "lots": a.lots,
    }
    with tempfile.TemporaryDirectory() as tmp:
        feed_path, params_path = Path(tmp) / "feed.npz", Path(tmp) / "params.json"
        latency = venue_config(a).latency_model(feed)
        rows = latency.rows() if isinstance(latency, OrderLatencyTable) else np.zeros((0, 3), np.int64)
        np.savez(feed_path, kind=feed.kind, exch_ts=feed.exch_ts, local_ts=feed.local_ts, px=feed.px, qty=feed.qty,
                 latency=rows)
        params_path.write_text(json.dumps(params))
        proc = subprocess.run(
            [str(HFT_PYTHON), str(ROOT / "bench" / "hft_runner.py"), str(feed_path), str(params_path)],
            capture_output=True, text=True, timeout=1800, check=False,
        )
    if proc.returncode != 0:
        return {"skipped": f"hftbacktest run failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    a = _args()
    folder = shared_data_dir() / "binance_ticks" / a.market
    files = sorted(folder.glob(f"{a.symbol.lower()}_*.gz"))
    if not files:
        raise SystemExit(f"no capture files {a.symbol.lower()}_*.gz under {folder}")
    t0 = time.perf_counter()
    feed = feed_from_binance_capture(files, binance_symbol(a.symbol, a.market))  # type: ignore[arg-type]
    load_s = time.perf_counter() - t0
    ours = run_alphatide(feed, a)
    ref = run_hftbacktest(feed, a)
    events = len(feed)
    out: dict[str, Any] = {
        "capture": f"{a.market}/{a.symbol.lower()}",
        "queue": a.queue,
        "latency": a.latency if a.latency == "constant" else f"feed x{a.latency_multiplier:g}",
        "entry_ms": a.entry_ms if a.latency == "constant" else None,
        "response_ms": a.response_ms if a.latency == "constant" else None,
        "maker_fee": a.maker_fee,
        "taker_fee": a.taker_fee,
        "events": events,
        "events_per_s": round(events / ours["wall_s"]),
        "events_per_cpu_s": round(events / max(ours["cpu_s"], 1e-9)),
        "wall_s": ours["wall_s"],
        "cpu_s": ours["cpu_s"],
        "feed_load_s": round(load_s, 3),
        "fills": ours["fills"],
        "filled_qty": ours["filled_qty"],
        "pnl": ours["pnl"],
        "fees": ours["fees"],
        "orders": ours["orders"],
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if "skipped" in ref:
        out.update({"hftbacktest_skipped": ref["skipped"], "hftbacktest_events_per_s": None,
                    "hftbacktest_fills": None, "hftbacktest_filled_qty": None, "hftbacktest_pnl": None})
    else:
        out.update({
            "hftbacktest_events_per_s": round(ref["events"] / max(ref["wall_s"], 1e-9)),
            "hftbacktest_wall_s": round(ref["wall_s"], 4),
            "hftbacktest_cpu_s": round(ref["cpu_s"], 4),
            "hftbacktest_fills": ref["fills"],
            "hftbacktest_filled_qty": round(ref["filled_qty"], 10),
            "hftbacktest_pnl": round(ref["pnl"], 6),
            "hftbacktest_fees": round(ref["fees"], 6),
            "hftbacktest_orders": ref["orders"],
            "fills_diff_pct": _pct(ours["fills"], ref["fills"]),
            "filled_qty_diff_pct": _pct(ours["filled_qty"], ref["filled_qty"]),
            "wall_ratio_vs_hftbacktest": round(ours["wall_s"] / max(ref["wall_s"], 1e-9), 2),
            "cpu_ratio_vs_hftbacktest": round(ours["cpu_s"] / max(ref["cpu_s"], 1e-9), 2),
        })
        match = out["fills_diff_pct"] is not None and out["fills_diff_pct"] <= GOAL_MATCH_PCT
        out["goal_fills_within_2pct"] = bool(match and (out["filled_qty_diff_pct"] or 0) <= GOAL_MATCH_PCT)
    out["goal_events_per_s"] = out["events_per_s"] >= GOAL_EVENTS_PER_S
    out["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    publish("sim", out)


if __name__ == "__main__":
    main()
