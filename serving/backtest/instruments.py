"""The instrument rules (tick, lot, min notional, min size) and fees a backtest's simulated market runs with.

Per field, first set wins:
1. the `SimVenueConfig` field (``alphatide backtest --tick-size/--lot-size/--min-notional/--min-size``,
   ``--maker-fee/--taker-fee``);
2. the venue's `load_markets` row cached in the lake (``markets/venue=<venue>/markets.parquet``, written by
   the backfill; the newest ``fetched_at`` for the symbol): what the venue itself reports (SPEC 1);
3. tick and lot inferred from the recorded prices and sizes, minimums 0 (logged as a warning: the inferred
   lot can be finer than the venue's when one recorded size is odd, and no minimum is enforced); fees
   `pipelines.sim.config.DEFAULT_MAKER_FEE` / `DEFAULT_TAKER_FEE` (maker 0, taker 0.0004, also warned).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

from pipelines.sim.config import DEFAULT_MAKER_FEE, DEFAULT_TAKER_FEE, SimVenueConfig

log = logging.getLogger("alphatide.backtest")

FIELDS = ("tick_size", "lot_size", "min_notional", "min_size")
FEE_FIELDS = ("maker_fee", "taker_fee")
_LAKE_COLUMNS = {"tick_size": "tick_size", "lot_size": "lot_size", "min_notional": "min_notional",
                 "min_size": "min_qty", "maker_fee": "maker_fee", "taker_fee": "taker_fee"}


def lake_instrument(lake_dir: Path | None, venue: str, symbol: str) -> dict[str, Decimal]:
    """The cached `load_markets` row of (venue, symbol) as Decimals ({} when the lake has none)."""
    if lake_dir is None or not lake_dir.exists():
        return {}
    import polars as pl

    from pipelines.lake import Lake

    frame = Lake(lake_dir).read_markets(venue)
    if frame is None:
        return {}
    rows = frame.filter(pl.col("symbol") == symbol).sort("fetched_at")
    if rows.is_empty():
        return {}
    row = rows.row(-1, named=True)
    out: dict[str, Decimal] = {}
    for name, column in _LAKE_COLUMNS.items():
        value = row.get(column)
        if value is not None:
            out[name] = Decimal(repr(float(value)))
    return out


def resolve_instrument(sim: SimVenueConfig, lake_dir: Path | None, venue: str, symbol: str) -> SimVenueConfig:
    """`sim` with its unset instrument and fee fields filled from the lake (see the module docstring)."""
    missing = [f for f in (*FIELDS, *FEE_FIELDS) if getattr(sim, f) is None]
    if not missing:
        return sim
    cached = lake_instrument(lake_dir, venue, symbol)
    update: dict[str, object] = {f: cached[f] for f in missing if f in cached}
    for name in FEE_FIELDS:
        if name in update:
            update[name] = float(cached[name])
    left = [f for f in missing if f not in update and f in FIELDS]
    if left:
        log.warning("%s %s: no %s configured or cached in the lake: tick/lot inferred from the data, "
                    "minimums 0 (pass --tick-size/--lot-size/--min-notional)", venue, symbol, ", ".join(left))
    fees_left = [f for f in missing if f not in update and f in FEE_FIELDS]
    if fees_left:
        log.warning("%s %s: no %s configured or cached in the lake: maker %s, taker %s assumed "
                    "(pass --maker-fee/--taker-fee)", venue, symbol, ", ".join(fees_left), DEFAULT_MAKER_FEE,
                    DEFAULT_TAKER_FEE)
    return sim.model_copy(update=update) if update else sim
