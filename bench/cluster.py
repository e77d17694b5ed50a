"""The nightly chain through the Celery layout vs the embedded `dag.test()` path, and the serving takeover.

    python -m bench.cluster [--pairs 51] [--history-days 30] [--iterations 200] [--optuna-trials 0]

Both paths run the same chain on the same replayed candles (the first N pairs of the shared 51-pair 5m
sample, ../shared/data/binance_spot_candles) in their own temporary homes: `embedded_s` is `alphatide chain`
(`pipelines.airflow_runner.run_chain`: SQLite metadata, each DAG's `dag.test()` in one process);
`cluster_s` is `alphatide cluster trigger` on a started cluster (scheduler, Celery worker, PostgreSQL,
Redis broker, MLflow server), from the REST trigger until the last DAG succeeded. `takeover_s`: kill -9 of
the active serving replica until the other reports an active engine (None where the engine has no lease).
The cluster uses its own PostgreSQL databases and Redis dbs, dropped afterwards. CPU seconds are summed
over the processes of each path; the 1-minute load average is printed at start and end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl
import psutil

from bench.common import publish, shared_data_dir


def _replay_dir(pairs: int, where: Path) -> tuple[Path, list[str]]:
    source = shared_data_dir() / "binance_spot_candles"
    names = [p.strip() for p in (source / "pairs.txt").read_text().split() if p.strip()][:pairs]
    symbols = [n if "/" in n else f"{n.removesuffix('USDT')}/USDT" for n in names]
    frame = pl.read_parquet(source / "binance_spot_5m_2024H1.parquet").filter(pl.col("symbol").is_in(symbols))
    where.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(where / "binance_spot_5m_bench.parquet")
    return where, sorted(frame["symbol"].unique().to_list())


def _chain_env(args: argparse.Namespace, home: Path, replay: Path, pairs: int) -> dict[str, str]:
    return {
        "ALPHATIDE_HOME": str(home), "ALPHATIDE_SOURCE": "replay", "ALPHATIDE_REPLAY_DIR": str(replay),
        "ALPHATIDE_DATA__HISTORY_DAYS": str(args.history_days), "ALPHATIDE_MODEL__ITERATIONS": str(args.iterations),
        "ALPHATIDE_MODEL__OPTUNA_TRIALS": str(args.optuna_trials),
        "ALPHATIDE_MODEL__SEQUENCE_TOWER": "true" if args.sequence_tower else "false",
        "ALPHATIDE_UNIVERSE__SIZE": str(max(1, pairs - 4)), "ALPHATIDE_SERVING__MODEL_CHECK_S": "3",
    }


def _with_env(env: dict[str, str]) -> dict[str, str]:
    saved = os.environ.copy()
    os.environ.update(env)
    return saved


def _restore(saved: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(saved)


def _embedded(env: dict[str, str]) -> tuple[float, float]:
    from pipelines.airflow_runner import run_chain
    from pipelines.config import load_settings

    saved = _with_env(env)
    try:
        before = os.times()
        start = time.monotonic()
        run_chain(load_settings())
        wall = time.monotonic() - start
        after = os.times()
        return wall, (after.children_user + after.children_system) - (before.children_user + before.children_system)
    finally:
        _restore(saved)


def _cpu(procs_: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs_:
        try:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
    return total


def _cluster(env: dict[str, str], symbols: list[str], timeout_s: float) -> dict[str, Any]:
    from pipelines.cluster import procs, runner, services
    from pipelines.cluster.config import load_cluster_config
    from pipelines.config import load_settings
    from tests.cluster.conftest import cluster_environment
    from tests.fakes.trading_venue import FakeTradingVenue

    markets = {s.replace("/", ""): (s.split("/")[0], "USDT") for s in symbols}
    with FakeTradingVenue(markets) as venue:
        full = {**cluster_environment(Path(env["ALPHATIDE_HOME"]), {"ALPHATIDE_ENGINE__API_URL": venue.base_url}),
                **env}
        saved = _with_env(full)
        cfg = load_cluster_config()
        settings = load_settings()
        directory = runner.run_dir(cfg, settings)
        try:
            runner.up(cfg, settings, say=lambda _: None)
            start = time.monotonic()
            runner.trigger(cfg, settings, timeout_s=timeout_s, say=lambda _: None)
            cluster_s = time.monotonic() - start
            cpu_s = _cpu(procs.marked(directory))
            takeover_s = _takeover(cfg.serving_urls(), directory)
            return {"cluster_s": round(cluster_s, 1), "cluster_cpu_s": round(cpu_s, 1),
                    "takeover_s": None if takeover_s is None else round(takeover_s, 2)}
        finally:
            runner.down(cfg, settings, say=lambda _: None)
            services.drop_databases(cfg)
            services.flush_redis(cfg)
            _restore(saved)


def _takeover(urls: list[str], directory: Path) -> float:
    from pipelines.cluster import procs
    from serving.engine.takeover import measure_takeover, wait_for_active

    name_of = {url: f"serving-{i}" for i, url in enumerate(urls)}
    wait_for_active(urls, timeout_s=120)
    _, _, seconds = measure_takeover(urls, kill=lambda url: procs.kill_now(directory, name_of[url]))
    return float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=51)
    parser.add_argument("--history-days", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--optuna-trials", type=int, default=0)
    parser.add_argument("--sequence-tower", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    print(f"bench.cluster: load average (1 min) at start {load_start:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        replay, symbols = _replay_dir(args.pairs, Path(tmp) / "replay")
        embedded_s, embedded_cpu_s = _embedded(_chain_env(args, Path(tmp) / "embedded", replay, len(symbols)))
        print(f"bench.cluster: embedded {embedded_s:.1f} s wall, {embedded_cpu_s:.1f} s CPU", flush=True)
        cluster = _cluster(_chain_env(args, Path(tmp) / "cluster", replay, len(symbols)), symbols, args.timeout)
        print(f"bench.cluster: cluster {cluster['cluster_s']} s wall, {cluster['cluster_cpu_s']} s CPU; "
              f"takeover {cluster['takeover_s']} s", flush=True)
    publish("cluster", {
        "pairs": len(symbols), "history_days": args.history_days, "iterations": args.iterations,
        "optuna_trials": args.optuna_trials, "sequence_tower": args.sequence_tower,
        "embedded_s": round(embedded_s, 1), "embedded_cpu_s": round(embedded_cpu_s, 1), **cluster,
        "cpu_count": os.cpu_count(), "load_average_1m_at_start": round(load_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    })


if __name__ == "__main__":
    main()
