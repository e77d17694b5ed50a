"""The hftbacktest half of `python -m bench.sim`; runs ONLY in the separate venv (`make hftbacktest-env`).

Usage: .venv-hft/bin/python bench/hft_runner.py FEED.npz PARAMS.json
FEED.npz holds the simulator's own feed rows (kind, exch_ts, local_ts, px ticks, qty lots), so both
simulators replay exactly the same events; PARAMS.json holds tick, lot, latencies, fees, queue model
and order size. Prints one JSON line: events, fills, filled_qty, pnl, wall/cpu seconds (after a warm-up
call that compiles the numba strategy on a short prefix, so compile time is not counted).

Exchange model: hftbacktest's `no_partial_fill_exchange`. Its `partial_fill_exchange` stops with error
code 14 (InvalidOrderStatus) on this run: an order filled at its price by exactly its remaining size is
not removed from the exchange's book and is filled again later. With one-lot orders no partial fill can
happen, so both exchange models mean the same rules here.

Imports nothing from the project: this interpreter has hftbacktest's numpy/numba, not the project's.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from hftbacktest import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    EXCH_EVENT,
    GTX,
    LIMIT,
    LOCAL_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
    BacktestAsset,
    HashMapMarketDepthBacktest,
    event_dtype,
)
from numba import njit

# the simulator's row kinds (pipelines/sim/feed.py)
BID, ASK, BUY_TRADE, SELL_TRADE, BID_CLEAR, ASK_CLEAR = 1, 2, 3, 4, 5, 6
NONE, NEW, PARTIALLY_FILLED = 0, 1, 5
BUY = 1
INVALID_MIN = np.iinfo(np.int64).min
INVALID_MAX = np.iinfo(np.int64).max


def to_events(z: np.lib.npyio.NpzFile, tick: float, lot: float) -> np.ndarray:
    kind = z["kind"]
    ev = np.zeros(len(kind), dtype=event_dtype)
    flags = np.zeros(len(kind), dtype=np.uint64)
    both = EXCH_EVENT | LOCAL_EVENT
    flags[kind == BID] = both | DEPTH_EVENT | BUY_EVENT
    flags[kind == ASK] = both | DEPTH_EVENT | SELL_EVENT
    flags[kind == BUY_TRADE] = both | TRADE_EVENT | BUY_EVENT
    flags[kind == SELL_TRADE] = both | TRADE_EVENT | SELL_EVENT
    flags[kind == BID_CLEAR] = both | DEPTH_CLEAR_EVENT | BUY_EVENT
    flags[kind == ASK_CLEAR] = both | DEPTH_CLEAR_EVENT | SELL_EVENT
    ev["ev"] = flags
    ev["exch_ts"] = z["exch_ts"]
    ev["local_ts"] = z["local_ts"]
    ev["px"] = z["px"] * tick
    ev["qty"] = z["qty"] * lot
    return ev


@njit
def quote(hbt, lots_qty):  # type: ignore[no-untyped-def]
    """One order at the best bid and one at the best ask (post-only), re-quoted when the touch moves:
    the same rules as pipelines/sim/quoting.py TouchQuoter."""
    oid = 1
    steps = 0
    tick = hbt.depth(0).tick_size
    code = 0
    while True:
        code = hbt.wait_next_feed(True, 60_000_000_000)
        if code != 0 and code != 2 and code != 3:
            break  # 1: end of data; anything else: an error (reported by the caller)
        steps += 1
        depth = hbt.depth(0)
        bb = depth.best_bid_tick
        ba = depth.best_ask_tick
        if bb == INVALID_MIN or ba == INVALID_MAX:
            continue
        hbt.clear_inactive_orders(0)
        has_buy = False
        has_sell = False
        values = hbt.orders(0).values()
        while values.has_next():
            o = values.get()
            if o.side == BUY:
                has_buy = True
                target = bb
            else:
                has_sell = True
                target = ba
            if o.req == NONE and (o.status == NEW or o.status == PARTIALLY_FILLED) and o.price_tick != target:
                hbt.cancel(0, o.order_id, False)
        if not has_buy:
            hbt.submit_buy_order(0, oid, bb * tick, lots_qty, GTX, LIMIT, False)
            oid += 1
        if not has_sell:
            hbt.submit_sell_order(0, oid, ba * tick, lots_qty, GTX, LIMIT, False)
            oid += 1
    return oid, steps, code


ORDER_LATENCY_DTYPE = np.dtype(
    [("req_ts", "i8"), ("exch_ts", "i8"), ("resp_ts", "i8"), ("_padding", "i8")], align=True
)


def build(data: np.ndarray, p: dict, latency: np.ndarray) -> object:  # type: ignore[type-arg]
    asset = BacktestAsset().data([data]).linear_asset(1.0)
    if len(latency):
        asset = asset.intp_order_latency(latency)
    else:
        asset = asset.constant_order_latency(int(p["entry_ns"]), int(p["response_ns"]))
    asset = (
        asset.tick_size(p["tick"])
        .lot_size(p["lot"])
        .trading_value_fee_model(p["maker"], p["taker"])
        .no_partial_fill_exchange()  # see the module docstring
        .last_trades_capacity(0)
    )
    spec = str(p["queue"])
    name, _, arg = spec.partition(":")
    if name == "risk_averse":
        asset = asset.risk_adverse_queue_model()
    elif name == "power":
        asset = asset.power_prob_queue_model(float(arg or 2))
    elif name == "power2":
        asset = asset.power_prob_queue_model2(float(arg or 2))
    elif name == "log":
        asset = asset.log_prob_queue_model()
    elif name == "log2":
        asset = asset.log_prob_queue_model2()
    else:
        raise SystemExit(f"unknown queue model {spec}")
    return HashMapMarketDepthBacktest([asset])


def main() -> None:
    feed_path, params_path = sys.argv[1], sys.argv[2]
    with open(params_path) as fh:
        p = json.load(fh)
    with np.load(feed_path) as z:
        data = to_events(z, p["tick"], p["lot"])
        rows = z["latency"]
    latency = np.zeros(len(rows), dtype=ORDER_LATENCY_DTYPE)  # kept alive: read in place, like the data
    if len(rows):
        latency["req_ts"], latency["exch_ts"], latency["resp_ts"] = rows[:, 0], rows[:, 1], rows[:, 2]
    lots_qty = p["lots"] * p["lot"]
    prefix = data[: min(len(data), 20_000)].copy()  # kept alive: hftbacktest reads the buffer in place
    warm = build(prefix, p, latency)
    quote(warm, lots_qty)
    hbt = build(data, p, latency)
    t0, c0 = time.perf_counter(), time.process_time()
    orders, steps, code = quote(hbt, lots_qty)
    if code != 1:
        raise SystemExit(f"hftbacktest stopped with code {code} after {steps} steps")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    sv = hbt.state_values(0)
    depth = hbt.depth(0)
    mid = (depth.best_bid + depth.best_ask) / 2.0
    pnl = sv.balance + sv.position * mid - sv.fee
    out = {
        "events": len(data),
        "wall_s": wall,
        "cpu_s": cpu,
        "fills": int(sv.num_trades),
        "filled_qty": float(sv.trading_volume),
        "position": float(sv.position),
        "fees": float(sv.fee),
        "pnl": float(pnl),
        "orders": int(orders - 1),
        "steps": int(steps),
    }
    hbt.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
