"""Ingest benchmark: the shared 51-pair 5m sample into the lake, then the universe of every day of 2024-Q2.

    python -m bench.ingest [--data ../shared/data] [--home DIR]

Loads `binance_spot_candles/binance_spot_5m_2024H1.parquet` into a fresh lake (Parquet partitioned by
venue/kind/symbol/date, written atomically like the backfill does), then selects the universe point in
time for each day from 2024-04-01 to 2024-06-30 from the lake's bars (daily statistics built once through
the lake, each day's selection from the days before it) and stores every day's table. Writes
`bench/results/ingest.json` and prints the same JSON as its last line.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from bench.common import publish, shared_data_dir
from pipelines.config import UniverseConfig
from pipelines.domain.candles import normalize_candles
from pipelines.lake import Lake
from pipelines.universe import daily_stats, select_universe

FIRST_DAY, LAST_DAY = date(2024, 4, 1), date(2024, 6, 30)


def run(data: Path, home: Path) -> dict[str, object]:
    sample = data / "binance_spot_candles" / "binance_spot_5m_2024H1.parquet"
    if not sample.exists():
        raise SystemExit(f"recorded sample not found: {sample} (pass --data or set SHARED_DATA_DIR)")
    lake = Lake(home / "lake")

    started = time.perf_counter()
    candles = normalize_candles(pl.read_parquet(sample), ts_column="open_time")
    partitions = lake.write_candles(candles, "binance", "5m")
    seconds = time.perf_counter() - started
    rows = len(candles)
    del candles

    config = UniverseConfig()
    started = time.perf_counter()
    stored = lake.read_candles("binance", "5m")
    daily = daily_stats(stored)
    candidates = lake.candle_symbols("binance", "5m")
    tiers: dict[str, int] = {"1": 0, "2": 0, "3": 0}
    days = 0
    day = FIRST_DAY
    while day <= LAST_DAY:
        table = select_universe(daily, candidates, day, config)
        lake.write_universe(table, day)
        for tier, count in table.group_by("tier").len().iter_rows():
            if tier is not None:
                tiers[str(tier)] += count
        days += 1
        day += timedelta(days=1)
    universe_seconds = time.perf_counter() - started

    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
        "partitions": partitions,
        "universe_days": days,
        "universe_seconds": round(universe_seconds, 3),
        "universe_ms_per_day": round(1000 * universe_seconds / days, 2),
        "avg_symbols_per_tier": {k: round(v / days, 2) for k, v in tiers.items()},
        "candidates": len(candidates),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--data", type=Path, default=shared_data_dir(), help="the shared data folder")
    parser.add_argument("--home", type=Path, help="lake home (default: a temporary folder, removed after)")
    args = parser.parse_args()
    if args.home:
        result = run(args.data, args.home)
    else:
        with tempfile.TemporaryDirectory(prefix="alphatide-bench-ingest-") as tmp:
            result = run(args.data, Path(tmp))
    publish("ingest", result)


if __name__ == "__main__":
    main()
