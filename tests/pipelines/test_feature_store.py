"""Feast behind `FeastStore`: apply, materialize, push and online reads, on SQLite and on the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from pipelines.config import load_settings
from pipelines.errors import ConfigError
from pipelines.feature_store import FeastStore, feast_redis_connection_string
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.lake import Lake
from pipelines.sources.synthetic import SyntheticSource
from tests.pipelines._redis import REDIS_URL, redis_up

pytestmark = pytest.mark.integration
AS_OF = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def features() -> pl.DataFrame:
    source = SyntheticSource(as_of=AS_OF, days=4, n_symbols=3)
    return build_features(source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=4), AS_OF))


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path, features: pl.DataFrame) -> Iterator[FeastStore]:  # type: ignore[no-untyped-def]
    env = {"ALPHATIDE_FEAST_PROJECT": f"t_{uuid.uuid4().hex[:10]}"}
    if request.param == "redis":
        if not redis_up():
            pytest.skip("Redis is not running at 127.0.0.1:6379")
        env |= {"ALPHATIDE_ONLINE_STORE": "redis", "ALPHATIDE_REDIS_URL": REDIS_URL}
    settings = load_settings(env, home=tmp_path)
    feast = FeastStore(settings)
    feast.apply(Lake(settings.lake_dir).write_features(features, "5m"), FEATURE_COLUMNS)
    yield feast
    feast.store.teardown()  # removes this project's keys from Redis


def test_materialize_loads_the_newest_row_per_symbol(store: FeastStore, features: pl.DataFrame) -> None:
    store.materialize(AS_OF - timedelta(days=2), AS_OF + timedelta(seconds=1))

    got = store.latest("ETH/USDT", FEATURE_COLUMNS)

    newest = features.filter(pl.col("symbol") == "ETH/USDT").sort("ts").tail(1).row(0, named=True)
    assert got is not None and got.event_time == newest["event_ts"]
    assert got.values == pytest.approx({c: newest[c] for c in FEATURE_COLUMNS}, nan_ok=True)
    assert store.latest("NOPE/USDT", FEATURE_COLUMNS) is None
    views = store.store.get_feature_service("signal_v1").feature_view_projections
    assert {v.name for v in views} == {"bar_features", "flow_features"}
    assert "rsi_14" in {f.name for v in views if v.name == "bar_features" for f in v.features}
    assert "spread_pct" in {f.name for v in views if v.name == "flow_features" for f in v.features}


def test_push_then_read_round_trip(store: FeastStore, features: pl.DataFrame) -> None:
    row = features.filter(pl.col("symbol") == "BTC/USDT").tail(1)
    pushed = row.with_columns(
        (pl.col("event_ts") + timedelta(minutes=5)).alias("event_ts"), pl.lit(42.0).alias("rsi_14")
    )

    store.push(pushed)

    got = store.latest("BTC/USDT", FEATURE_COLUMNS)
    assert got is not None and got.values["rsi_14"] == 42.0
    assert got.event_time == pushed["event_ts"][0]
    for column in FEATURE_COLUMNS:
        expected = pushed[column][0]
        assert got.values[column] == (pytest.approx(expected) if expected is not None else None), column


def test_redis_url_becomes_feast_connection_string() -> None:
    assert feast_redis_connection_string("redis://127.0.0.1:6380/2") == "127.0.0.1:6380,db=2"
    assert feast_redis_connection_string("rediss://:s3cret@cache:6379/0") == "cache:6379,db=0,password=s3cret,ssl=true"
    with pytest.raises(ConfigError, match="ALPHATIDE_REDIS_URL"):
        feast_redis_connection_string("http://nope")


def test_redis_online_store_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="ALPHATIDE_REDIS_URL"):
        load_settings({"ALPHATIDE_ONLINE_STORE": "redis"})
