"""The serving tier's direct online-store access agrees with the Feast SDK in both directions, on SQLite
and on the real Redis: what Feast materializes or pushes, `open_online_store(...).latest` reads; what
`push` writes, Feast's `get_online_features` reads. Plus the encodings on their own (no store needed)."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from pipelines.config import Settings, load_settings
from pipelines.feature_store import FeastStore
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.lake import Lake
from pipelines.online_store import (
    BAR_VIEW,
    FLOW_VIEW,
    RedisOnlineStore,
    SqliteOnlineStore,
    decode_timestamp,
    decode_value,
    encode_timestamp,
    encode_value,
    entity_key_bytes,
    feature_views,
    open_online_store,
)
from pipelines.sources.synthetic import SyntheticSource
from tests.pipelines._redis import REDIS_URL, redis_up

AS_OF = datetime(2026, 7, 1, tzinfo=UTC)


# ---- encodings against Feast's own functions --------------------------------------------------------
@given(st.text(min_size=1, max_size=20))
def test_entity_key_matches_feasts_serialization(symbol: str) -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=["symbol"], entity_values=[Value(string_val=symbol)])

    assert entity_key_bytes(symbol) == serialize_entity_key(key, entity_key_serialization_version=3)


@given(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)))
def test_value_encoding_matches_feasts_protobuf(value: float | None) -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    feast_bytes = b"" if value is None or math.isnan(value) else Value(double_val=value).SerializeToString()
    parsed = Value()
    parsed.ParseFromString(encode_value(value))

    assert encode_value(value) == feast_bytes
    assert decode_value(feast_bytes) == (None if value is None or math.isnan(value) else value)
    assert decode_value(Value(float_val=1.5).SerializeToString()) == 1.5
    assert decode_value(Value(int64_val=-7).SerializeToString()) == -7.0
    assert decode_value(Value(null_val=0).SerializeToString()) is None


def test_a_string_value_is_refused_with_a_clear_error() -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    with pytest.raises(ValueError, match="unsupported Feast value encoding"):
        decode_value(Value(string_val="x").SerializeToString())


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_timestamp_encoding_matches_protobuf(naive: datetime) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    at = naive.replace(tzinfo=UTC)
    reference = Timestamp()
    reference.FromDatetime(at)

    assert encode_timestamp(at) == reference.SerializeToString()
    assert decode_timestamp(reference.SerializeToString()) == at


def test_feature_views_split_candle_and_flow_columns() -> None:
    views = feature_views(FEATURE_COLUMNS)

    assert "rsi_14" in views[BAR_VIEW] and "spread_pct" in views[FLOW_VIEW]
    assert sorted(views[BAR_VIEW] + views[FLOW_VIEW]) == sorted(FEATURE_COLUMNS)


def test_serving_imports_no_feast_sdk() -> None:
    code = "import sys, serving.app, pipelines.online_store; print('feast' in sys.modules, 'ccxt' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()

    assert out == ["False", "False"]


# ---- against the SDK on both stores ------------------------------------------------------------------
@pytest.fixture(scope="module")
def features() -> pl.DataFrame:
    source = SyntheticSource(as_of=AS_OF, days=4, n_symbols=3)
    return build_features(source.fetch_candles(source.list_symbols("USDT"), "5m", AS_OF - timedelta(days=4), AS_OF))


@pytest.fixture(params=["sqlite", "redis"])
def feast(request: pytest.FixtureRequest, tmp_path: Path, features: pl.DataFrame) -> Iterator[FeastStore]:
    env = {"ALPHATIDE_FEAST_PROJECT": f"d_{uuid.uuid4().hex[:10]}"}
    if request.param == "redis":
        if not redis_up():
            pytest.skip("Redis is not running at 127.0.0.1:6379")
        env |= {"ALPHATIDE_ONLINE_STORE": "redis", "ALPHATIDE_REDIS_URL": REDIS_URL}
    settings: Settings = load_settings(env, home=tmp_path)
    store = FeastStore(settings)
    store.apply(Lake(settings.lake_dir).write_features(features, "5m"), FEATURE_COLUMNS)
    yield store
    store.store.teardown()


def _assert_same(direct: object, sdk: object) -> None:
    assert direct is not None and sdk is not None
    assert direct.event_time == sdk.event_time  # type: ignore[attr-defined]
    for column in FEATURE_COLUMNS:
        want = sdk.values[column]  # type: ignore[attr-defined]
        got = direct.values[column]  # type: ignore[attr-defined]
        assert got == want or (got is not None and want is not None and math.isclose(got, want)), column


@pytest.mark.integration
def test_direct_reads_what_feast_materialized(feast: FeastStore, features: pl.DataFrame) -> None:
    feast.materialize(AS_OF - timedelta(days=2), AS_OF + timedelta(seconds=1))
    direct = open_online_store(feast.settings)

    for symbol in features["symbol"].unique().to_list():
        _assert_same(direct.latest(symbol, FEATURE_COLUMNS), feast.latest(symbol, FEATURE_COLUMNS))
    assert direct.latest("NOPE/USDT", FEATURE_COLUMNS) is None
    assert any(v is None for v in direct.latest("BTC/USDT", FEATURE_COLUMNS).values.values())  # type: ignore[union-attr]
    direct.close()


@pytest.mark.integration
def test_feast_reads_what_the_direct_store_pushed(feast: FeastStore, features: pl.DataFrame) -> None:
    feast.materialize(AS_OF - timedelta(days=2), AS_OF + timedelta(seconds=1))
    direct = open_online_store(feast.settings)
    newest = features.filter(pl.col("symbol") == "BTC/USDT").tail(1)
    pushed = newest.with_columns(
        (pl.col("event_ts") + timedelta(minutes=5)).alias("event_ts"),
        pl.lit(42.0).alias("rsi_14"),
        pl.lit(None, pl.Float64).alias("roc_1"),
        pl.lit(0.25).alias("spread_pct"),
    )

    direct.push(pushed)

    sdk = feast.latest("BTC/USDT", FEATURE_COLUMNS)
    assert sdk is not None and sdk.event_time == pushed["event_ts"][0]
    assert sdk.values["rsi_14"] == 42.0 and sdk.values["roc_1"] is None and sdk.values["spread_pct"] == 0.25
    _assert_same(direct.latest("BTC/USDT", FEATURE_COLUMNS), sdk)
    _assert_same(direct.latest("ETH/USDT", FEATURE_COLUMNS), feast.latest("ETH/USDT", FEATURE_COLUMNS))
    direct.close()


@pytest.mark.integration
def test_an_older_push_never_replaces_a_newer_row_on_redis(feast: FeastStore, features: pl.DataFrame) -> None:
    if feast.settings.online_store != "redis":
        pytest.skip("SQLite upserts last-write-wins, as Feast's SQLite store does")
    direct = open_online_store(feast.settings)
    newest = features.filter(pl.col("symbol") == "SOL/USDT").tail(1).with_columns(pl.lit(70.0).alias("rsi_14"))
    older = newest.with_columns(
        (pl.col("event_ts") - timedelta(minutes=5)).alias("event_ts"), pl.lit(1.0).alias("rsi_14")
    )

    direct.push(newest)
    direct.push(older)

    got = direct.latest("SOL/USDT", FEATURE_COLUMNS)
    assert got is not None and got.values["rsi_14"] == 70.0 and got.event_time == newest["event_ts"][0]
    direct.close()


def test_a_missing_sqlite_store_says_where_it_looked(tmp_path: Path) -> None:
    store = SqliteOnlineStore(tmp_path / "nope" / "online_store.db", "alphatide")

    with pytest.raises(FileNotFoundError, match=r"online_store\.db"):
        store.latest("BTC/USDT", FEATURE_COLUMNS)


@pytest.mark.integration
def test_a_stopped_redis_fails_fast() -> None:
    store = RedisOnlineStore("redis://127.0.0.1:1/0", "alphatide")  # nothing listens on port 1

    started = datetime.now(UTC)
    with pytest.raises(redis.ConnectionError):
        store.latest("BTC/USDT", FEATURE_COLUMNS)
    assert datetime.now(UTC) - started < timedelta(seconds=3)


@pytest.mark.integration
def test_close_closes_every_threads_connection_and_reads_reopen(feast: FeastStore) -> None:
    if feast.settings.online_store != "sqlite":
        pytest.skip("per-thread connections are the SQLite store's")
    feast.materialize(AS_OF - timedelta(days=2), AS_OF + timedelta(seconds=1))
    direct = open_online_store(feast.settings)
    assert isinstance(direct, SqliteOnlineStore)
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda s: direct.latest(s, FEATURE_COLUMNS), ["BTC/USDT", "ETH/USDT", "SOL/USDT"] * 4))
    opened = list(direct._opened)

    direct.close()

    assert opened and all(_is_closed(c) for c in opened)
    assert direct.latest("BTC/USDT", FEATURE_COLUMNS) is not None  # a later read opens a new connection
    direct.close()


def _is_closed(connection: sqlite3.Connection) -> bool:
    try:
        connection.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False
