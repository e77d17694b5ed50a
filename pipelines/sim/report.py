"""The backtest report from the simulator's records (pure: records in, numbers and files out).

`records_from_market(market)` collects what one `SimMarket` kept (fills, every order we sent, the mid
after each replayed row); `summarize(records)` computes:

- PnL (quote currency) = cash flows + inventory at the last mid - fees, decomposed exactly into
  * spread capture: for each fill, the signed distance between its price and the mid at that instant
    (a buy below the mid or a sell above it earns it);
  * inventory PnL: the position carried through mid moves (total - spread capture - fees);
  * fees and rebates: minus the fees paid (a rebate is a negative fee, so this part is positive);
- an equity curve sampled every ``bar_s`` seconds; Sharpe of its increments (per bar and annualized
  with ``bars_per_year``), maximum drawdown (quote currency, from the running peak);
- fill rate (orders with at least one fill / orders sent), fills, volume, maker share;
- inventory: final, mean, mean absolute, maximum absolute, std and the 5/25/50/75/95th percentiles (base
  units, time-weighted on the bar grid);
- quote uptime (`pipelines.sim.uptime`): the share of the replayed time (first to last two-sided book) with
  both a bid and an ask of ours resting at the exchange (``quote_uptime``), and per side (``bid_uptime``,
  ``ask_uptime``).

`write_report(records, out_dir)` writes ``summary.json``, ``fills.csv``, ``orders.csv``, ``equity.csv``
and ``equity.png`` (equity and its decomposition over time, inventory below; matplotlib, Agg backend).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.sim.market import BUY, SimMarket
from pipelines.sim.orders import Fill, LocalOrder
from pipelines.sim.uptime import quote_uptime

_QUANTILES = (5, 25, 50, 75, 95)  # inventory distribution, time-weighted on the bar grid
STATUS_NAMES = {0: "sent", 1: "open", 2: "partially_filled", 3: "filled", 4: "cancelled", 5: "expired"}


@dataclass(frozen=True)
class SimRecords:
    venue: str
    symbol: str
    tick: float
    lot: float
    fills: list[Fill]
    orders: list[LocalOrder]
    mark_ts: np.ndarray  # exchange ns
    mark_mid: np.ndarray  # quote per base
    rest_log: tuple[tuple[int, int, int], ...] = ()  # exchange-side (ns, side, +1/-1) of our resting orders


def records_from_market(market: SimMarket) -> SimRecords:
    ts, mid = market.marks()
    return SimRecords(market.venue, market.symbol, market.tick, market.lot, list(market.fills),
                      list(market.order_history), ts, mid, tuple(market.rest_log))


def _mid_at(rec: SimRecords, ts: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(rec.mark_ts, ts, side="right") - 1
    return rec.mark_mid[np.clip(idx, 0, len(rec.mark_mid) - 1)]


def _fill_arrays(rec: SimRecords) -> dict[str, np.ndarray]:
    fills = sorted(rec.fills, key=lambda f: f.exch_ts)
    return {
        "ts": np.array([f.exch_ts for f in fills], dtype=np.int64),
        "signed": np.array([(f.qty if f.side == BUY else -f.qty) * rec.lot for f in fills], dtype=np.float64),
        "price": np.array([f.px * rec.tick for f in fills], dtype=np.float64),
        "fee": np.array([f.fee for f in fills], dtype=np.float64),
        "maker": np.array([f.maker for f in fills], dtype=bool),
    }


def equity_curve(rec: SimRecords, bar_s: float = 1.0) -> dict[str, np.ndarray]:
    """Equity, its parts and the position on a grid of ``bar_s`` seconds over the marks' span."""
    if len(rec.mark_ts) == 0:
        raise ValueError("no marks: the replay produced no two-sided book")
    step = int(bar_s * 1e9)
    grid = np.arange(int(rec.mark_ts[0]), int(rec.mark_ts[-1]) + step, step, dtype=np.int64)
    f = _fill_arrays(rec)
    n = np.searchsorted(f["ts"], grid, side="right")  # fills done by each grid time
    zero = np.zeros(1)
    cum_pos = np.concatenate([zero, np.cumsum(f["signed"])])[n]
    cum_cash = np.concatenate([zero, np.cumsum(-f["signed"] * f["price"])])[n]
    cum_fee = np.concatenate([zero, np.cumsum(f["fee"])])[n]
    edge = (_mid_at(rec, f["ts"]) - f["price"]) * f["signed"] if len(f["ts"]) else np.zeros(0)
    cum_spread = np.concatenate([zero, np.cumsum(edge)])[n]
    mid = _mid_at(rec, grid)
    equity = cum_cash + cum_pos * mid - cum_fee
    return {
        "ts": grid,
        "mid": mid,
        "position": cum_pos,
        "equity": equity,
        "spread_capture": cum_spread,
        "fees_and_rebates": -cum_fee,
        "inventory_pnl": equity - cum_spread + cum_fee,
    }


def _max_drawdown(equity: np.ndarray) -> float:
    return float(np.max(np.maximum.accumulate(equity) - equity)) if len(equity) else 0.0


def summarize(rec: SimRecords, bar_s: float = 1.0, bars_per_year: float | None = None) -> dict[str, Any]:
    curve = equity_curve(rec, bar_s)
    per_year = bars_per_year if bars_per_year is not None else 365 * 24 * 3600 / bar_s
    inc = np.diff(curve["equity"])
    sd = float(inc.std(ddof=1)) if len(inc) > 1 else 0.0
    sharpe = float(inc.mean() / sd) if sd > 0 else 0.0
    f = _fill_arrays(rec)
    orders = len(rec.orders)
    filled_orders = sum(1 for o in rec.orders if o.filled > 0)
    pos = curve["position"]
    return {
        "venue": rec.venue,
        "symbol": rec.symbol,
        "start_ns": int(curve["ts"][0]),
        "end_ns": int(curve["ts"][-1]),
        "pnl": float(curve["equity"][-1]),
        "spread_capture": float(curve["spread_capture"][-1]),
        "inventory_pnl": float(curve["inventory_pnl"][-1]),
        "fees_and_rebates": float(curve["fees_and_rebates"][-1]),
        "sharpe_per_bar": sharpe,
        "sharpe_annualized": sharpe * math.sqrt(per_year),
        "bar_s": bar_s,
        "max_drawdown": _max_drawdown(curve["equity"]),
        "orders": orders,
        "fills": len(rec.fills),
        "fill_rate": filled_orders / orders if orders else 0.0,
        "volume": float(np.abs(f["signed"]).sum()),
        "maker_share": float(f["maker"].mean()) if len(f["maker"]) else 0.0,
        "inventory_final": float(pos[-1]),
        "inventory_mean": float(pos.mean()),
        "inventory_mean_abs": float(np.abs(pos).mean()),
        "inventory_max_abs": float(np.abs(pos).max()),
        "inventory_std": float(pos.std()),
        "inventory_quantiles": {f"p{q}": float(v) for q, v in zip(_QUANTILES, np.percentile(pos, _QUANTILES),
                                                                   strict=True)},
        **quote_uptime(rec.rest_log, int(rec.mark_ts[0]), int(rec.mark_ts[-1])),
    }


def write_report(rec: SimRecords, out_dir: Path, bar_s: float = 1.0) -> dict[str, Any]:
    """Write the report files (see the module docstring) and return the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(rec, bar_s)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (out_dir / "fills.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["exch_ts_ns", "local_ts_ns", "order_id", "side", "price", "size", "liquidity", "fee"])
        for x in sorted(rec.fills, key=lambda f: f.exch_ts):
            w.writerow([x.exch_ts, x.local_ts, x.oid, "buy" if x.side == BUY else "sell", x.px * rec.tick,
                        x.qty * rec.lot, "maker" if x.maker else "taker", x.fee])
    with (out_dir / "orders.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "sent_ts_ns", "closed_ts_ns", "side", "price", "size", "filled", "status", "reason"])
        for o in rec.orders:
            w.writerow([o.oid, o.sent_ts, o.closed_ts or "", "buy" if o.side == BUY else "sell", o.px * rec.tick,
                        o.qty * rec.lot, o.filled * rec.lot, STATUS_NAMES.get(o.status, str(o.status)), o.reason])
    curve = equity_curve(rec, bar_s)
    with (out_dir / "equity.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        keys = list(curve)
        w.writerow(keys)
        for row in zip(*(curve[k].tolist() for k in keys), strict=True):
            w.writerow(row)
    _plot(curve, summary, out_dir / "equity.png")
    return summary


def _plot(curve: dict[str, np.ndarray], summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = (curve["ts"] - curve["ts"][0]) / 1e9
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=[2, 1])
    top.plot(t, curve["equity"], label="equity (PnL)", color="black")
    top.plot(t, curve["spread_capture"], label="spread capture")
    top.plot(t, curve["inventory_pnl"], label="inventory PnL")
    top.plot(t, curve["fees_and_rebates"], label="fees and rebates")
    top.set_ylabel("quote currency")
    top.legend(loc="best", fontsize=8)
    top.set_title(f"{summary['venue']} {summary['symbol']}: PnL {summary['pnl']:.4f}, "
                  f"max drawdown {summary['max_drawdown']:.4f}, fills {summary['fills']}")
    bottom.plot(t, curve["position"], color="tab:purple")
    bottom.set_ylabel("inventory (base)")
    bottom.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
