"""Benchmark: the incremental feature engine over the recorded Binance tick capture.

    python -m bench.stream [--data-dir DIR] [--timeframe 5m] [--markets spot,usdm]

Parses every message of the capture (trades, depth diffs, snapshots and book tickers; spot and USD-M,
BTC and ETH) into memory first, then feeds them in arrival order through one `FeatureEngine`, timing
each `on_event` call (bars close along the way and are part of the cost; the replay buffer itself is
frozen out of the garbage collector, see below). Writes
``bench/results/stream.json`` and prints the same JSON as its last line. Goal (DESIGN.md): >= 50,000
events/s per process (this measures features only; scoring is a separate cost).
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from pathlib import Path

import numpy as np

from bench.common import publish, shared_data_dir
from pipelines.domain.marketdata import BookDiff, BookSnapshot, BookTicker, MarketEvent, Trade
from pipelines.features.incremental import FeatureEngine
from pipelines.marketdata.binance_capture import iter_binance_capture

KINDS = {Trade: "trade", BookDiff: "depth_diff", BookTicker: "book_ticker", BookSnapshot: "snapshot"}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument("--timeframe", default="5m", help="bar length of the engine")
    parser.add_argument("--markets", default="spot,usdm", help="capture folders to replay, in order")
    args = parser.parse_args(argv)

    root = (args.data_dir or shared_data_dir()) / "binance_ticks"
    events: list[MarketEvent] = []
    for market in args.markets.split(","):
        files = sorted((root / market).glob("*.gz"))
        if not files:
            raise SystemExit(f"no capture files under {root / market} (pass --data-dir or set SHARED_DATA_DIR)")
        events.extend(ce.event for ce in iter_binance_capture(files))

    # A live process holds a few events at a time, not 350k: keep the replay buffer out of the cyclic
    # garbage collector's sweeps so its pauses reflect the engine's own allocations.
    gc.collect()
    gc.freeze()
    engine = FeatureEngine(args.timeframe)
    durations = np.empty(len(events), dtype=np.int64)
    kinds = np.array([KINDS[type(ev)] for ev in events])
    rows = 0
    clock = time.perf_counter_ns
    on_event = engine.on_event
    start, start_cpu = clock(), time.process_time()
    for i, ev in enumerate(events):
        t0 = clock()
        rows += len(on_event(ev))
        durations[i] = clock() - t0
    total_s = (clock() - start) / 1e9
    total_cpu = time.process_time() - start_cpu

    # Second pass without the book tickers (~70% of the messages, ignored by the engine at ~0.3 µs):
    # the rate over trades, diffs and snapshots alone is the harder figure.
    costly_events = [ev for ev in events if not isinstance(ev, BookTicker)]
    second = FeatureEngine(args.timeframe)
    start, start_cpu = clock(), time.process_time()
    second.on_events(costly_events)
    costly_s = (clock() - start) / 1e9
    costly_cpu = time.process_time() - start_cpu

    us = durations / 1e3
    by_kind = {
        kind: {
            "events": int((kinds == kind).sum()),
            "mean_us": round(float(us[kinds == kind].mean()), 2),
            "p99_us": round(float(np.percentile(us[kinds == kind], 99)), 2),
        }
        for kind in sorted(set(kinds.tolist()))
    }
    result: dict[str, object] = {
        "events": len(events),
        "events_per_s": round(len(events) / total_s),
        # The machine is shared: CPU-time rates show what one uncontended core does.
        "events_per_s_cpu": round(len(events) / total_cpu),
        "events_without_book_tickers": len(costly_events),
        "events_per_s_without_book_tickers": round(len(costly_events) / costly_s),
        "events_per_s_without_book_tickers_cpu": round(len(costly_events) / costly_cpu),
        "p99_us_per_event": round(float(np.percentile(us, 99)), 2),
        "p50_us_per_event": round(float(np.percentile(us, 50)), 2),
        "max_us_per_event": round(float(us.max()), 1),
        "seconds": round(total_s, 3),
        "timeframe": args.timeframe,
        "symbols": len(engine.symbols()),
        "bars_closed": rows,
        "by_kind": by_kind,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    publish("stream", result)
    return result


if __name__ == "__main__":
    main()
