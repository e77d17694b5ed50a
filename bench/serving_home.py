"""A serving-ready ALPHATIDE_HOME built in seconds: universe, a trained champion, materialized features.

Used by the serving benchmarks and tests: synthetic candles (seeded), the real feature code, a small
CatBoost model registered in MLflow with alias `champion`, Feast applied and materialized (SQLite, or
Redis with `online_store="redis"`). Writes only under `home`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.config import ModelConfig, Settings, load_settings
from pipelines.feature_store import FeastStore
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.lake import Lake
from pipelines.registry import CHAMPION, MlflowRegistry, ModelRef
from pipelines.sources.synthetic import SyntheticSource
from pipelines.training import build_training_set, train_direction_model
from pipelines.universe import UNIVERSE_SCHEMA

AS_OF = datetime(2026, 8, 1, tzinfo=UTC)


def rehome(settings: Settings, home: Path, **updates: object) -> Settings:
    """`settings` under another home, with `updates`, validated again (`model_copy` would skip validation)."""
    data = settings.model_dump()
    data.update(updates)
    data["home"] = home
    return load_settings({}, **data)


def universe_frame(symbols: list[str], day: date) -> pl.DataFrame:
    """A stored-universe table naming `symbols` as tier 1 (the other figures null)."""
    n = len(symbols)
    data: dict[str, list[object]] = {name: [None] * n for name in UNIVERSE_SCHEMA}
    data.update(
        date=[day] * n, symbol=list(symbols), tier=[1] * n, score=[1.0] * n, reasons=["tier 1: major"] * n,
        passed_filters=[True] * n,
    )
    return pl.DataFrame(data, schema=UNIVERSE_SCHEMA)


def train_and_register(settings: Settings, candles: pl.DataFrame, features: pl.DataFrame,
                       iterations: int = 20, seed: int = 42) -> ModelRef:
    """Train a small direction model, register it, point `champion` at it; returns its reference."""
    dataset = build_training_set(candles, features, FEATURE_COLUMNS, 1)
    trained = train_direction_model(
        dataset, FEATURE_COLUMNS, ModelConfig(iterations=iterations, seed=seed), "5m", thread_count=1
    )
    registry = MlflowRegistry(settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", settings.model.name)
    _, ref = registry.log_candidate(
        trained.model,
        feature_columns=FEATURE_COLUMNS,
        horizon_bars=1,
        params={},
        metrics={},
        tags={},
        input_example=trained.test.select(FEATURE_COLUMNS).head(2).to_pandas(),
    )
    registry.set_alias(ref.version, CHAMPION)
    return ref


def build_ready_home(
    home: Path,
    *,
    universe: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"),
    n_symbols: int = 3,
    days: int = 5,
    iterations: int = 20,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build the home and return its settings (`environ` adds ALPHATIDE_* variables, e.g. Redis)."""
    settings = load_settings(environ or {}, home=home)
    source = SyntheticSource(as_of=AS_OF, days=days, n_symbols=n_symbols)
    candles = source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=days), AS_OF)
    features = build_features(candles)
    train_and_register(settings, candles, features, iterations=iterations)
    lake = Lake(settings.lake_dir)
    lake.write_universe(universe_frame(list(universe), AS_OF.date()), AS_OF.date())
    store = FeastStore(settings)
    store.apply(lake.write_features(features, "5m"), FEATURE_COLUMNS)
    store.materialize(AS_OF - timedelta(days=1), AS_OF + timedelta(seconds=1))
    return settings
