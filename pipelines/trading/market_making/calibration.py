"""Nightly calibration: A, k and sigma per (venue, symbol) from the lake's trades and book snapshots.

For each symbol with stored trades, the trailing `calibration_window_hours` ending at its newest trade
(the data's own clock, so a replayed or backfilled history calibrates too) are read with the book
snapshots of the same span. Each trade is matched to the newest snapshot at or before it
(`join_asof`, backward: no look-ahead) for the mid it reached from; `estimators.order_depths` merges
the prints of one taker order, `estimators.fit_intensity` fits lambda(delta) = A exp(-k delta) (A per
second per side, k per price unit). sigma is the realized variance of snapshot mid changes per
second. Snapshots are what the lake keeps (about one a second for a recorded capture), so a mid can be
up to one snapshot interval old; depths below zero (the price moved past a stale mid) count as 0.

The table is one JSON document, `<lake>/_state/mm_params.json` (`Lake.write_state`), small and
readable by the serving tier without polars: `read_mm_params` / `params_for`.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines.domain.candles import path_to_symbol
from pipelines.lake import Lake
from pipelines.trading.market_making.config import EstimatorConfig, MarketMakingConfig
from pipelines.trading.market_making.estimators import IntensityFit, fit_intensity, order_depths

log = logging.getLogger(__name__)

STATE_NAME = "mm_params"


def mm_params_path(lake_root: Path) -> Path:
    """Where `run_mm_calibration` writes the table (the lake's `_state/mm_params.json`)."""
    return Path(lake_root) / "_state" / f"{STATE_NAME}.json"


def realized_sigma(ts_seconds: np.ndarray, mids: np.ndarray) -> float | None:
    """sqrt(sum(d mid^2) / elapsed): price units per sqrt(second); None with fewer than 2 points."""
    if mids.size < 2:
        return None
    elapsed = float(ts_seconds[-1] - ts_seconds[0])
    if elapsed <= 0:
        return None
    return float(np.sqrt(np.sum(np.diff(mids) ** 2) / elapsed))


def calibrate_symbol(trades: pl.DataFrame, tops: pl.DataFrame, cfg: EstimatorConfig) -> dict[str, Any] | None:
    """Fit one symbol. `trades`: ts, price, aggressor_side; `tops`: ts, bid, ask. None without data."""
    if trades.is_empty() or tops.height < 2:
        return None
    book = tops.select("ts", ((pl.col("bid") + pl.col("ask")) / 2).alias("mid")).sort("ts")
    matched = (
        trades.select("ts", "price", "aggressor_side")
        .sort("ts")
        .join_asof(book, on="ts", strategy="backward")
        .drop_nulls("mid")
    )
    if matched.is_empty():
        return None
    times = matched["ts"].dt.epoch("us").to_numpy()
    sides = np.where(matched["aggressor_side"].cast(pl.String).to_numpy() == "buy", 1.0, -1.0)
    depths = order_depths(times, sides, matched["price"].to_numpy(), matched["mid"].to_numpy())
    elapsed = (int(times[-1]) - int(times[0])) / 1e6
    fit = fit_intensity(depths, elapsed, levels=cfg.intensity_levels, min_level_orders=cfg.intensity_min_level_orders)
    book_s = book["ts"].dt.epoch("us").to_numpy() / 1e6
    sigma = realized_sigma(book_s, book["mid"].to_numpy())
    return {
        "A": fit.A if fit else None,
        "k": fit.k if fit else None,
        "r2": fit.r2 if fit else None,
        "sigma": sigma,
        "trades": matched.height,
        "orders": int(depths.size),
        "book_snapshots": book.height,
        "elapsed_seconds": elapsed,
        "window_start": matched["ts"].min(),
        "window_end": matched["ts"].max(),
        "mid": float(book["mid"][-1]),
        "reason": "" if fit else "too few market orders to fit lambda(delta)",
    }


def _trade_symbols(lake: Lake) -> list[tuple[str, str, list[date]]]:
    """(venue, symbol, stored days) for every trades partition of the lake's documented layout."""
    found = []
    for folder in sorted(lake.root.glob("venue=*/kind=trades/symbol=*")):
        venue = folder.parent.parent.name.split("=", 1)[1]
        days = sorted(date.fromisoformat(p.name.split("=", 1)[1]) for p in folder.glob("date=*"))
        if days:
            found.append((venue, path_to_symbol(folder.name.split("=", 1)[1]), days))
    return found


def calibrate_lake(lake: Lake, cfg: MarketMakingConfig) -> dict[str, dict[str, Any]]:
    """{venue/symbol: fitted figures} for every symbol with trades (entries with a reason when unfit)."""
    window = timedelta(hours=cfg.calibration_window_hours)
    out: dict[str, dict[str, Any]] = {}
    for venue, symbol, days in _trade_symbols(lake):
        last_day = datetime.combine(days[-1], datetime.min.time(), UTC) + timedelta(days=1)
        trades = lake.read_trades(venue, [symbol], start=last_day - window - timedelta(days=1), end=last_day)
        if trades.is_empty():
            continue
        end: datetime = trades["ts"].max()  # type: ignore[assignment]
        start = end - window
        trades = trades.filter(pl.col("ts") >= start)
        tops = lake.book_top(venue, [symbol], start=start, end=end + timedelta(microseconds=1))
        fitted = calibrate_symbol(trades, tops, cfg.estimator)
        key = f"{venue}/{symbol}"
        out[key] = fitted or {"reason": "no book snapshots beside the trades", "trades": trades.height}
        out[key].update({"venue": venue, "symbol": symbol})
    return out


def run_mm_calibration(settings: Any = None, now: datetime | None = None) -> dict[str, Any]:
    """The nightly task: fit every symbol of the lake and store the table; returns a short summary."""
    if settings is None:
        from pipelines.config import load_settings

        settings = load_settings()
    cfg: MarketMakingConfig = getattr(settings, "market_making", None) or MarketMakingConfig()
    lake = Lake(settings.lake_dir)
    params = calibrate_lake(lake, cfg)
    fitted_at = (now or datetime.now(UTC)).isoformat()
    payload = {"fitted_at": fitted_at, "window_hours": cfg.calibration_window_hours, "params": params}
    lake.write_state(STATE_NAME, payload)
    fitted = sorted(key for key, row in params.items() if row.get("k") is not None)
    log.info("market-making calibration: %d fitted, %d without a fit", len(fitted), len(params) - len(fitted))
    return {"fitted": fitted, "unfitted": sorted(set(params) - set(fitted)), "path": str(mm_params_path(lake.root))}


def read_mm_params(path: Path) -> dict[str, dict[str, Any]]:
    """The stored table's `params` ({} when the nightly task has not run)."""
    import json

    path = Path(path)
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text()).get("params", {}))


def params_for(
    table: dict[str, dict[str, Any]], symbol: str, venue: str = "binance"
) -> tuple[IntensityFit | None, float | None]:
    """The stored (A, k) fit and sigma of one symbol, or Nones when it was not fitted."""
    row = table.get(f"{venue}/{symbol}") or {}
    fit = None
    if row.get("A") and row.get("k"):
        orders, r2 = int(row.get("orders", 0)), float(row.get("r2") or 0.0)
        fit = IntensityFit(float(row["A"]), float(row["k"]), orders, 0, r2, source="nightly")
    sigma = row.get("sigma")
    return fit, float(sigma) if sigma else None
