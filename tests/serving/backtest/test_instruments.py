"""A backtest market's instrument rules: configured first, then the venue's cached `load_markets` row."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl

from pipelines.lake import MARKETS_SCHEMA, Lake
from pipelines.sim.config import SimVenueConfig
from serving.backtest.instruments import resolve_instrument


def _cache(lake_dir: Path, rows: list[dict[str, object]]) -> None:
    frame = pl.DataFrame(rows, schema_overrides={"fetched_at": pl.Datetime("us", "UTC")})
    missing = [pl.lit(None).alias(c) for c in MARKETS_SCHEMA if c not in frame.columns]
    Lake(lake_dir).write_markets(frame.with_columns(*missing), "binanceusdm")


def test_unset_rules_come_from_the_newest_cached_row_and_configured_ones_win(tmp_path: Path) -> None:
    # Arrange: two fetches of the venue's markets; the newer one says min notional 100
    old = datetime(2024, 1, 1, tzinfo=UTC)
    new = datetime(2024, 8, 1, tzinfo=UTC)
    base = {"venue": "binanceusdm", "symbol": "BTC/USDT:USDT", "tick_size": 0.1, "lot_size": 0.001, "min_qty": 0.001}
    _cache(tmp_path, [{**base, "min_notional": 5.0, "fetched_at": old}, {**base, "min_notional": 100.0,
                                                                          "fetched_at": new}])
    # Act
    resolved = resolve_instrument(SimVenueConfig(tick_size=Decimal("0.5")), tmp_path, "binanceusdm", "BTC/USDT:USDT")
    # Assert
    assert (resolved.tick_size, resolved.lot_size, resolved.min_notional, resolved.min_size) == (
        Decimal("0.5"), Decimal("0.001"), Decimal("100.0"), Decimal("0.001"))


def test_without_a_cache_the_rules_stay_unset(tmp_path: Path) -> None:
    resolved = resolve_instrument(SimVenueConfig(), tmp_path / "no-lake", "binance", "BTC/USDT")
    assert resolved.lot_size is None and resolved.min_notional is None


def test_fees_come_from_the_flags_then_the_cached_row_then_the_defaults(tmp_path: Path) -> None:
    # Arrange: the venue's markets list says maker 0.0002, taker 0.0005
    row = {"venue": "binanceusdm", "symbol": "BTC/USDT:USDT", "tick_size": 0.1, "lot_size": 0.001, "min_qty": 0.001,
           "min_notional": 100.0, "maker_fee": 0.0002, "taker_fee": 0.0005,
           "fetched_at": datetime(2024, 8, 1, tzinfo=UTC)}
    _cache(tmp_path, [row])
    # Act
    cached = resolve_instrument(SimVenueConfig(), tmp_path, "binanceusdm", "BTC/USDT:USDT")
    flagged = resolve_instrument(SimVenueConfig(maker_fee=-0.0001), tmp_path, "binanceusdm", "BTC/USDT:USDT")
    bare = resolve_instrument(SimVenueConfig(), tmp_path / "no-lake", "binanceusdm", "BTC/USDT:USDT")
    # Assert
    assert (cached.fees().maker, cached.fees().taker) == (0.0002, 0.0005)
    assert (flagged.fees().maker, flagged.fees().taker) == (-0.0001, 0.0005)
    assert (bare.maker_fee, bare.taker_fee) == (None, None) and (bare.fees().maker, bare.fees().taker) == (0.0, 0.0004)
