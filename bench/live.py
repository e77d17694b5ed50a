"""Benchmark: the replayed Binance capture through the whole real-time path, as fast as it goes.

    python -m bench.live [--capture ../shared/data/binance_ticks/spot]

ReplayServer (own process, 127.0.0.1, ephemeral port, speed 0 = as fast as the client reads) -> ccxt.pro binance
(`serving.stream.feed`) -> incremental features -> latest-features cache + Feast push per closed bar ->
champion scoring (`serving.stream.pipeline`) -> paper trading engine (`serving.engine`, fed trades,
quotes and signals; on `serving.engine.ReplayClock`, the replay's exchange time). Before the feed starts
the pipeline is warmed with the recorded 5m candles of the captured symbols (written into the temporary
home's lake, as the nightly backfill would). Everything but the replay server runs in this one process
(the engine on its own worker thread).

Writes `bench/results/live.json` and prints it as the last line: `events_per_s` (market events handled
per wall second, goal >= 50k in DESIGN for features+scoring alone) and `event_to_signal_p99_ms` (from the
moment ccxt hands an event to the pipeline to the published signal, for the events that produce one; goal
<= 5), plus counts, and `paper_orders` / `paper_fills` (orders the paper engine placed and their fills
over the replay) with the entry decisions' reasons. `--demo-exits` applies the README demo's exits
(take-profit 2%, time stop 120 s) with which the bootstrap champion trades within the 11-minute capture;
without it the SPEC defaults apply.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import publish, shared_data_dir
from pipelines.config import Settings

DEFAULT_CAPTURE = shared_data_dir() / "binance_ticks" / "spot"


def write_recorded_candles(
    settings: Settings, symbols: list[str], since: datetime = datetime(2024, 6, 1, tzinfo=UTC)
) -> int:
    """The recorded 5m candles of `symbols` (from `since`) into the home's lake, for the warm-up."""
    import polars as pl

    from pipelines.domain.candles import normalize_candles
    from pipelines.lake import Lake

    path = shared_data_dir() / "binance_spot_candles" / "binance_spot_5m_2024H1.parquet"
    if not path.is_file():
        return 0
    frame = pl.scan_parquet(path).filter(pl.col("symbol").is_in(symbols) & (pl.col("open_time") >= since))
    return Lake(settings.lake_dir).write_candles(normalize_candles(frame.collect(), "open_time"), "binance", "5m")


def _paper_summary(engine: object) -> dict[str, object]:
    from collections import Counter

    orders = engine.store.load_orders()  # type: ignore[attr-defined]
    decisions = Counter(d.action + ": " + d.reason.split(" (")[0][:80] for d in engine.decisions)  # type: ignore[attr-defined]
    return {
        "paper_orders": len(orders),
        "paper_fills": sum(len(o.order.fills) for o in orders),
        "paper_orders_by_purpose": dict(Counter(f"{o.purpose}:{o.order.state.value}" for o in orders)),
        "closed_trades": len(engine.store.closed_trades(limit=10_000)),  # type: ignore[attr-defined]
        "engine_decisions_last_200": dict(decisions.most_common(8)),
    }


async def run(settings: Settings, capture: Path, speed: float = 0.0) -> dict[str, object]:
    from pipelines.online_store import open_online_store
    from pipelines.registry import serving_registry
    from serving.engine import ReplayClock, build_engine
    from serving.feature_cache import LatestFeatures
    from serving.scorer import ChampionScorer
    from serving.stream.feed import MarketEvent, MarketFeed
    from serving.stream.pipeline import StreamPipeline
    from serving.stream.replay import capture_start
    from serving.stream.service import replay_symbols

    sys.setswitchinterval(settings.serving.gil_switch_interval_s)  # as the serving process does
    # What the serving process uses: the registry and the online store without their SDKs.
    registry = serving_registry(settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", settings.model.name)
    scorer = ChampionScorer(registry, check_every_s=3600)
    assert scorer.current() is not None, "no champion in the benchmark home"
    store = open_online_store(settings)
    cache = LatestFeatures(store, refresh_s=3600)
    start = capture_start(capture)
    clock = ReplayClock(start)
    replay = subprocess.Popen(
        [sys.executable, "-m", "serving.stream.replay", str(capture), "--speed", str(speed), "--linger", "60"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert replay.stdout is not None
        line = replay.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"replay server did not start: {line!r}")
        port = int(line.split()[1])
        rest = f"http://127.0.0.1:{port}/api/v3"
        urls = {"public": rest, "private": rest, "ws": {"spot": f"ws://127.0.0.1:{port}/stream"}}
        sent_line = asyncio.get_running_loop().run_in_executor(None, replay.stdout.readline)
        engine_settings = settings.model_copy(
            update={"engine": settings.engine.model_copy(update={"api_url": f"http://127.0.0.1:{port}"})}
        )
        engine = build_engine(engine_settings, clock=clock)
        engine.start()
        pipeline = StreamPipeline(settings, scorer=scorer, cache=cache, pusher=store, engine=engine)
        first: list[float] = []

        def sink(event: MarketEvent, received: float) -> None:
            if not first:
                first.append(received)
            pipeline.on_event(event, received)

        symbols = replay_symbols(
            settings.model_copy(
                update={
                    "stream": settings.stream.model_copy(update={"source": "replay", "replay_capture_dir": capture})
                }
            )
        )
        warm = pipeline.warm(symbols, start)
        feed = MarketFeed("binance", symbols, sink, settings.stream, urls=urls, quote=pipeline.on_quote)
        await feed.start()
        sent = int((await sent_line).split()[1])  # "SENT n": the server has sent the whole capture
        # The client lags the server: done when no event arrived for a second.
        last_count, last_change = -1, time.perf_counter()
        while time.perf_counter() - last_change < 1.0:
            await asyncio.sleep(0.1)
            if pipeline.events != last_count:
                last_count, last_change = pipeline.events, time.perf_counter()
        elapsed = last_change - first[0]
        reconnects, resyncs = feed.reconnects, feed.resyncs
        await feed.stop()
    finally:
        replay.terminate()
        replay.wait(timeout=20)
    await asyncio.to_thread(pipeline.close)
    await asyncio.sleep(1.0)  # let the engine's worker drain its queue
    status = engine.status()
    paper = _paper_summary(engine)
    engine.shutdown()
    cache.close()
    latencies_ms = np.asarray(pipeline.latencies_s) * 1000
    return {
        "benchmark": "live",
        "events": pipeline.events,
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(pipeline.events / elapsed, 1),
        "signals": pipeline.signals,
        "bars_closed": pipeline.bars_closed,
        "event_to_signal_p50_ms": round(float(np.percentile(latencies_ms, 50)), 3),
        "event_to_signal_p99_ms": round(float(np.percentile(latencies_ms, 99)), 3),
        "event_to_signal_max_ms": round(float(latencies_ms.max()), 3),
        "server_messages_sent": sent,
        "reconnects": reconnects,
        "book_resyncs": resyncs,
        "engine_dropped_events": status.dropped_events,
        "engine_decisions": len(status.recent_decisions),
        "engine_open_positions": status.open_positions,
        **paper,
        "warm_lake_bars": warm.lake_bars,
        "symbols": symbols,
        "signal_interval_s": settings.stream.signal_interval_s,
        "goals": {"event_to_signal_p99_ms": 5.0},
        "note": (
            "replay server in its own process; ccxt.pro client, features, push, scoring and paper engine "
            "in this one; events = trades + applied book diffs + snapshots (diffs a later snapshot "
            "supersedes are dropped by the Binance sync rule); 2 shared cores"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE, help="folder of Binance capture files")
    parser.add_argument(
        "--speed", type=float, default=0.0,
        help="replay pace (0 = as fast as the client reads; the trades and book connections then drift "
        "apart in exchange time and the engine sees old books: use e.g. 5 for the paper figures)",
    )
    parser.add_argument("--demo-exits", action="store_true", help="take-profit 2%%, time stop 120 s (README demo)")
    args = parser.parse_args()
    if not args.capture.is_dir():
        raise SystemExit(f"capture folder {args.capture} not found (pass --capture)")

    from bench.serving_home import build_ready_home

    with tempfile.TemporaryDirectory(prefix="alphatide-bench-live-") as tmp:
        settings = build_ready_home(Path(tmp), universe=("BTC/USDT", "ETH/USDT"))
        write_recorded_candles(settings, ["BTC/USDT", "ETH/USDT"])
        if args.demo_exits:
            trading = settings.engine.trading
            exits = trading.exits.model_copy(update={"take_profit": 0.02, "time_stop_seconds": 120.0})
            engine_cfg = settings.engine.model_copy(update={"trading": trading.model_copy(update={"exits": exits})})
            settings = settings.model_copy(update={"engine": engine_cfg})
        result = asyncio.run(run(settings, args.capture, args.speed))
        result["replay_speed"] = args.speed
        result["demo_exits"] = args.demo_exits
        result["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    publish("live", result)


if __name__ == "__main__":
    main()
