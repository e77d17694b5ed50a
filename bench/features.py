"""Benchmark: batch features for the whole shared 5m sample (51 pairs x 6 months), polars vs pandas.

    python -m bench.features [--data-dir DIR | --candles FILE] [--repeat N] [--skip-pandas]

Reads ``binance_spot_candles/binance_spot_5m_2024H1.parquet`` under the shared data folder (default
``../shared/data`` beside the repository, or ``SHARED_DATA_DIR``), times `build_features` (best of
``--repeat`` runs, after the read) and the straightforward pandas implementation of the same candle
features (`bench.pandas_reference`) in the same process, checks they agree, and writes
``bench/results/features.json``. The last line printed is that JSON. Goal (DESIGN.md): seconds, and
>= 10x pandas.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import polars as pl

from bench.common import publish, shared_data_dir
from bench.pandas_reference import max_abs_diff, pandas_candle_features
from pipelines.domain.candles import normalize_candles
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.features.spec import CANDLE_FEATURES

SAMPLE = Path("binance_spot_candles") / "binance_spot_5m_2024H1.parquet"


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument("--candles", type=Path, default=None, help="a candle parquet file (overrides --data-dir)")
    parser.add_argument("--repeat", type=int, default=3, help="polars runs; the best is reported")
    parser.add_argument("--skip-pandas", action="store_true", help="time polars only")
    args = parser.parse_args(argv)

    path = args.candles or (args.data_dir or shared_data_dir()) / SAMPLE
    if not path.is_file():
        raise SystemExit(f"candle sample not found: {path} (pass --data-dir or --candles, or set SHARED_DATA_DIR)")
    raw = pl.read_parquet(path)
    candles = normalize_candles(raw, "open_time" if "open_time" in raw.columns else "ts")

    timings, cpu = [], []
    features = pl.DataFrame()
    for _ in range(max(1, args.repeat)):
        start, start_cpu = time.perf_counter(), time.process_time()
        features = build_features(candles, "5m")
        timings.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    seconds = min(timings)

    result: dict[str, object] = {
        "rows": candles.height,
        "symbols": candles["symbol"].n_unique(),
        "features": len(FEATURE_COLUMNS),
        "seconds": round(seconds, 3),
        "seconds_runs": [round(t, 3) for t in timings],
        # CPU time (all threads) of the best run: the machine is shared, wall time depends on its load.
        "cpu_seconds": round(cpu[timings.index(seconds)], 3),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if not args.skip_pandas:
        pdf = candles.to_pandas()
        start, start_cpu = time.perf_counter(), time.process_time()
        reference = pandas_candle_features(pdf, "5m")
        pandas_seconds = time.perf_counter() - start
        pandas_cpu = time.process_time() - start_cpu
        diffs = max_abs_diff(features.sort("symbol", "ts"), reference)
        result |= {
            "pandas_seconds": round(pandas_seconds, 3),
            "speedup_vs_pandas": round(pandas_seconds / seconds, 2),
            "pandas_cpu_seconds": round(pandas_cpu, 3),
            "cpu_speedup_vs_pandas": round(pandas_cpu / cpu[timings.index(seconds)], 2),
            "pandas_features": len(CANDLE_FEATURES),
            "max_abs_diff_vs_pandas": max(v for k, v in diffs.items() if ":" not in k),
            "null_mismatches_vs_pandas": int(sum(v for k, v in diffs.items() if ":" in k)),
        }
    publish("features", result)
    return result


if __name__ == "__main__":
    main()
