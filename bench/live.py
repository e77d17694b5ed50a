"""Benchmark: the replayed Binance capture through the whole real-time path, as fast as it goes.

    python -m bench.live [--capture ../shared/data/binance_ticks/spot]

ReplayServer (own process, 127.0.0.1, ephemeral port, speed 0 = as fast as the client reads) -> ccxt.pro binance
(`serving.stream.feed`) -> incremental features -> latest-features cache + Feast push per closed bar ->
champion scoring (`serving.stream.pipeline`) -> paper trading engine (`serving.engine`, fed trades,
quotes and signals; its clock follows the replay's exchange time). Everything but the replay server runs
in this one process (the engine on its own worker thread).

Writes `bench/results/live.json` and prints it as the last line: `events_per_s` (market events handled
per wall second, goal >= 50k in DESIGN for features+scoring alone) and `event_to_signal_p99_ms` (from the
moment ccxt hands an event to the pipeline to the published signal, for the events that produce one; goal
<= 5), plus counts.
"""

from __future__ import annotations

import argparse
import asyncio
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


class ReplayClock:
    """The newest exchange time the stream has seen (the paper engine's 'now' during a replay)."""

    def __init__(self) -> None:
        self.ts_us = 0

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.ts_us / 1e6, UTC) if self.ts_us else datetime.now(UTC)


async def run(settings: Settings, capture: Path) -> dict[str, object]:
    from pipelines.online_store import open_online_store
    from pipelines.registry import serving_registry
    from serving.engine import build_engine
    from serving.feature_cache import LatestFeatures
    from serving.scorer import ChampionScorer
    from serving.stream.feed import MarketEvent, MarketFeed
    from serving.stream.pipeline import StreamPipeline
    from serving.stream.service import replay_symbols

    sys.setswitchinterval(settings.serving.gil_switch_interval_s)  # as the serving process does
    # What the serving process uses: the registry and the online store without their SDKs.
    registry = serving_registry(settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", settings.model.name)
    scorer = ChampionScorer(registry, check_every_s=3600)
    assert scorer.current() is not None, "no champion in the benchmark home"
    store = open_online_store(settings)
    cache = LatestFeatures(store, refresh_s=3600)
    clock = ReplayClock()
    replay = subprocess.Popen(
        [sys.executable, "-m", "serving.stream.replay", str(capture), "--speed", "0", "--linger", "60"],
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
            ts_us = event.ts_us
            if ts_us is not None and ts_us > clock.ts_us:
                clock.ts_us = ts_us
            pipeline.on_event(event, received)

        symbols = replay_symbols(
            settings.model_copy(
                update={
                    "stream": settings.stream.model_copy(update={"source": "replay", "replay_capture_dir": capture})
                }
            )
        )
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
    status = engine.status()
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
    args = parser.parse_args()
    if not args.capture.is_dir():
        raise SystemExit(f"capture folder {args.capture} not found (pass --capture)")

    from bench.serving_home import build_ready_home

    with tempfile.TemporaryDirectory(prefix="alphatide-bench-live-") as tmp:
        settings = build_ready_home(Path(tmp), universe=("BTC/USDT", "ETH/USDT"))
        result = asyncio.run(run(settings, args.capture))
    publish("live", result)


if __name__ == "__main__":
    main()
