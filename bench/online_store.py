"""Benchmark: one-symbol `get_online_features` latency through Feast, SQLite vs Redis online store.

    python -m bench.online_store [--reads N]

Builds features for a few synthetic symbols in a temporary home, applies and materializes them into each
online store, then times N single-symbol reads of the `signal_v1` FeatureService (after a warm-up), and
the same reads through `pipelines.online_store` (the serving tier's SDK-free path: `<backend>_direct_*`).
Writes bench/results/online_store.json and prints the same JSON as its last line.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench.common import publish
from pipelines.config import load_settings
from pipelines.feature_store import FeastStore
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.lake import Lake
from pipelines.online_store import OnlineStore, open_online_store
from pipelines.sources.synthetic import SyntheticSource

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


def _percentiles(samples: np.ndarray) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(samples, 50) * 1e3), "p99_ms": float(np.percentile(samples, 99) * 1e3)}


def _time_direct_reads(store: OnlineStore, symbols: list[str], reads: int) -> dict[str, float]:
    """The serving tier's path: `pipelines.online_store` on the same storage, no Feast SDK."""
    for symbol in symbols * 20:
        store.latest(symbol, FEATURE_COLUMNS)
    samples = np.empty(reads)
    for i in range(reads):
        start = time.perf_counter()
        store.latest(symbols[i % len(symbols)], FEATURE_COLUMNS)
        samples[i] = time.perf_counter() - start
    return _percentiles(samples)


def _time_reads(store: FeastStore, symbols: list[str], reads: int) -> dict[str, float]:
    service = store.store.get_feature_service(store.service_name)
    for symbol in symbols * 20:  # warm-up: registry cache, connections
        store.store.get_online_features(features=service, entity_rows=[{"symbol": symbol}]).to_dict()
    samples = np.empty(reads)
    for i in range(reads):
        symbol = symbols[i % len(symbols)]
        start = time.perf_counter()
        store.store.get_online_features(features=service, entity_rows=[{"symbol": symbol}]).to_dict()
        samples[i] = time.perf_counter() - start
    return _percentiles(samples)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)

    source = SyntheticSource(as_of=AS_OF, days=3, n_symbols=8)
    symbols = source.list_symbols("USDT")
    features = build_features(source.fetch_candles(symbols, "5m", AS_OF - timedelta(days=3), AS_OF))
    result: dict[str, object] = {"reads": args.reads, "features": len(FEATURE_COLUMNS)}
    for backend in ("sqlite", "redis"):
        with tempfile.TemporaryDirectory() as home:
            env = {"ALPHATIDE_FEAST_PROJECT": f"bench_{uuid.uuid4().hex[:8]}"}
            if backend == "redis":
                env |= {"ALPHATIDE_ONLINE_STORE": "redis", "ALPHATIDE_REDIS_URL": args.redis_url}
            settings = load_settings(env, home=Path(home))
            store = FeastStore(settings)
            store.apply(Lake(settings.lake_dir).write_features(features, "5m"), FEATURE_COLUMNS)
            store.materialize(AS_OF - timedelta(days=1), AS_OF + timedelta(seconds=1))
            direct = open_online_store(settings)
            try:
                timings = _time_reads(store, symbols, args.reads)
                direct_timings = _time_direct_reads(direct, symbols, args.reads)
            finally:
                direct.close()
                store.store.teardown()
            result |= {f"{backend}_{k}": round(v, 4) for k, v in timings.items()}
            result |= {f"{backend}_direct_{k}": round(v, 4) for k, v in direct_timings.items()}
    publish("online_store", result)
    return result


if __name__ == "__main__":
    main()
