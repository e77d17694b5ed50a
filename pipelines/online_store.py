"""Feast's online store read and written directly, without the Feast SDK (the serving tier's path).

Why: importing Feast costs the serving process about 230 MB of memory and each `get_online_features` call
a registry lookup and protobuf conversions; the serving tier only needs "the newest row of these features
for this symbol" and "store this newest row". The nightly chain still applies and materializes through
the SDK (`pipelines.feature_store.FeastStore`); this module reads and writes the same storage, in the
same layout as Feast 0.67 with `entity_key_serialization_version: 3` and no feature-view versioning:

- SQLite: table `<project>_<view>` with one row per (entity_key, feature_name): `value` is a serialized
  `feast.types.Value`, `event_ts` is the event time in
  whole epoch seconds, as Feast's sqlite3 adapter writes it.
- Redis: one hash per entity at `<entity_key><project>`; field `mmh3("<view>:<feature>")` (4 bytes) holds
  the serialized Value, field `_ts:<view>` a serialized `google.protobuf.Timestamp`.

The layout is pinned by the constraints file; tests/pipelines/test_online_store.py checks both directions
against the Feast SDK (SDK writes -> this reads, this writes -> SDK reads) on SQLite and on Redis, so an
upgrade that changes it fails the tests instead of serving nulls.

Contract: `latest(symbol, columns)` returns the stored values (None = null) and the newest event time
(UTC) over the views that have a row, or None when the store has no row for the symbol. Errors of the
store itself (file missing, table missing, connection refused) raise; the caller decides what they mean.
Feature views have a 10-year TTL (feature_repo/definitions.py), so no TTL filter is applied here.
"""

from __future__ import annotations

import math
import sqlite3
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import polars as pl

from pipelines.config import Settings
from pipelines.errors import ConfigError
from pipelines.features.spec import CANDLE_FEATURES

BAR_VIEW = "bar_features"  # from candles: TA, regime, window-market features
FLOW_VIEW = "flow_features"  # from trades, order books and liquidations (null in a candle-only backfill)
ENTITY_JOIN_KEY = "symbol"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KEY_COLUMNS = ("symbol", "ts", "event_ts")  # the non-feature columns of a push frame
_STRING_TYPE = 2  # feast.ValueType.STRING
_DOUBLE_TAG = 0x29  # Value.double_val: field 5, wire type 1 (fixed64)
_FLOAT_TAG = 0x35  # Value.float_val: field 6, wire type 5 (fixed32)
_INT32_TAG = 0x18  # field 3, varint
_INT64_TAG = 0x20  # field 4, varint
_BOOL_TAG = 0x38  # field 7, varint
_NULL_TAG = 0x98  # Value.null_val: field 19, varint (two-byte tag 0x98 0x01)


@dataclass(frozen=True)
class OnlineFeatures:
    symbol: str
    values: dict[str, float | None]
    event_time: datetime | None  # bar close (UTC) of the newest stored values


def feature_views(feature_columns: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Feature columns grouped by feature view: candle-based ones vs book/flow ones (order kept)."""
    columns = tuple(feature_columns)
    return {
        BAR_VIEW: tuple(c for c in columns if c in CANDLE_FEATURES),
        FLOW_VIEW: tuple(c for c in columns if c not in CANDLE_FEATURES),
    }


# ---- encoding (Feast's entity key v3, Value and Timestamp protobufs) ----------------------------------
def entity_key_bytes(symbol: str) -> bytes:
    """Feast's `serialize_entity_key` (version 3) of the single string join key `symbol`."""
    key = ENTITY_JOIN_KEY.encode()
    value = symbol.encode()
    return struct.pack("<III", 1, _STRING_TYPE, len(key)) + key + struct.pack("<II", _STRING_TYPE, len(value)) + value


def encode_value(value: float | None) -> bytes:
    """A serialized `feast.types.Value`: `double_val` for a number, the empty message for null/NaN."""
    if value is None or math.isnan(value):
        return b""
    return bytes((_DOUBLE_TAG,)) + struct.pack("<d", value)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def decode_value(data: bytes | None) -> float | None:
    """A serialized `feast.types.Value` as a float (None for no value, null or NaN).

    Raises ValueError for value types a feature can't have here (strings, lists, maps).
    """
    if not data:
        return None
    tag = data[0]
    if tag == _DOUBLE_TAG and len(data) == 9:
        number: float = struct.unpack_from("<d", data, 1)[0]
    elif tag == _FLOAT_TAG and len(data) == 5:
        number = struct.unpack_from("<f", data, 1)[0]
    elif tag in (_INT32_TAG, _INT64_TAG, _BOOL_TAG):
        raw, _ = _varint(data, 1)
        number = float(raw - (1 << 64) if raw >= 1 << 63 else raw)
    elif tag == _NULL_TAG:
        return None
    else:
        raise ValueError(f"unsupported Feast value encoding (first byte 0x{tag:02x})")
    return None if math.isnan(number) else number


def encode_timestamp(at: datetime) -> bytes:
    """A serialized `google.protobuf.Timestamp` of the aware datetime `at`."""
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    micros = (aware - _EPOCH) // timedelta(microseconds=1)  # exact: float timestamps lose microseconds
    seconds, rest = divmod(micros, 1_000_000)
    out = bytearray()
    for field_tag, number in ((0x08, seconds), (0x10, rest * 1000)):
        if number:
            out.append(field_tag)
            number &= (1 << 64) - 1
            while True:
                byte = number & 0x7F
                number >>= 7
                out.append(byte | (0x80 if number else 0))
                if not number:
                    break
    return bytes(out)


def decode_timestamp(data: bytes | None) -> datetime | None:
    """A serialized `google.protobuf.Timestamp` as an aware UTC datetime (None when absent or zero)."""
    if not data:
        return None
    seconds = nanos = 0
    pos = 0
    while pos < len(data):
        tag = data[pos]
        value, pos = _varint(data, pos + 1)
        if tag == 0x08:
            seconds = value - (1 << 64) if value >= 1 << 63 else value
        elif tag == 0x10:
            nanos = value
        else:
            raise ValueError(f"unexpected field in a Timestamp (tag 0x{tag:02x})")
    if seconds == 0 and nanos == 0:
        return None
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000)


def _mmh3_field(view: str, feature: str) -> bytes:
    """Feast's hash-field name of a feature: murmur3_32 (unsigned) of "view:feature", 4 bytes little endian."""
    import mmh3

    return struct.pack("<I", mmh3.hash(f"{view}:{feature}", signed=False))


def _naive_utc(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at


def _views_with_columns(feature_columns: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
    """`feature_views`, without the views none of the columns belong to."""
    return [(view, columns) for view, columns in feature_views(feature_columns).items() if columns]


def _push_views(frame: pl.DataFrame) -> list[tuple[str, tuple[str, ...]]]:
    """The views a push frame writes to, each with its feature columns present in the frame."""
    return _views_with_columns(c for c in frame.columns if c not in _KEY_COLUMNS)


def _later(newest: datetime | None, at: datetime | None) -> datetime | None:
    return at if newest is None or (at is not None and at > newest) else newest


def _rows(frame: pl.DataFrame, columns: Sequence[str]) -> Iterable[tuple[str, datetime, list[float | None]]]:
    """(symbol, event time, values in `columns` order) for each row of a push frame."""
    for record in frame.select("symbol", "event_ts", *columns).iter_rows():
        yield record[0], record[1], list(record[2:])


class OnlineStore(Protocol):
    """What the serving tier needs from the online store: the newest row, and writing newer rows."""

    def latest(self, symbol: str, feature_columns: tuple[str, ...]) -> OnlineFeatures | None: ...

    def push(self, frame: pl.DataFrame) -> None: ...

    def close(self) -> None: ...


class SqliteOnlineStore:
    """Feast's SQLite online store file (`<home>/feast_data/online_store.db`)."""

    def __init__(self, path: Path, project: str):
        self.path = path
        self.project = project
        self._local = threading.local()  # one connection per thread: sqlite3 connections are not shared
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            if not self.path.is_file():
                raise FileNotFoundError(f"no online store at {self.path}: run the nightly chain (make run)")
            connection = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
            self._local.connection = connection
            with self._opened_lock:
                self._opened.append(connection)
        return connection

    def _table(self, view: str) -> str:
        return '"' + f"{self.project}_{view}".replace('"', '""') + '"'

    def latest(self, symbol: str, feature_columns: tuple[str, ...]) -> OnlineFeatures | None:
        connection = self._connection()
        key = entity_key_bytes(symbol)
        values: dict[str, float | None] = dict.fromkeys(feature_columns)
        newest: datetime | None = None
        found = False
        for view, columns in _views_with_columns(feature_columns):
            marks = ",".join("?" * len(columns))
            rows = connection.execute(
                f"SELECT feature_name, value, event_ts FROM {self._table(view)} "
                f"WHERE entity_key = ? AND feature_name IN ({marks})",
                (key, *columns),
            ).fetchall()
            for name, blob, stamp in rows:
                found = True
                values[name] = decode_value(blob)
                newest = _later(newest, _parse_sqlite_ts(stamp))
        if not found:
            return None
        return OnlineFeatures(symbol=symbol, values=values, event_time=newest)

    def push(self, frame: pl.DataFrame) -> None:
        """Upsert each row's features per view, as Feast's SQLite store does (last write wins)."""
        connection = self._connection()
        created = _sqlite_stamp(datetime.now(UTC))
        with connection:
            for view, columns in _push_views(frame):
                sql = (
                    f"INSERT INTO {self._table(view)} "
                    "(entity_key, feature_name, value, value_text, event_ts, created_ts) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
                    "value = excluded.value, value_text = excluded.value_text, event_ts = excluded.event_ts, "
                    "created_ts = excluded.created_ts"
                )
                batch = []
                for symbol, event_ts, row in _rows(frame, columns):
                    key = entity_key_bytes(symbol)
                    stamp = _sqlite_stamp(event_ts)
                    for name, value in zip(columns, row, strict=True):
                        text = None if value is None or math.isnan(value) else str(value)
                        batch.append((key, name, encode_value(value), text, stamp, created))
                connection.executemany(sql, batch)

    def close(self) -> None:
        """Close every thread's connection (at shutdown: no read or push may run concurrently)."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()
        self._local = threading.local()


def _sqlite_stamp(at: datetime) -> int:
    """Feast's SQLite adapter for datetimes: `int(naive_utc.timestamp())` (whole seconds; the naive value
    is read as local time, and `_parse_sqlite_ts` undoes exactly that, as Feast's converter does)."""
    return int(_naive_utc(at).timestamp())


def _parse_sqlite_ts(stamp: object) -> datetime | None:
    """A stored `event_ts` as aware UTC: epoch seconds (Feast's adapter) or an ISO string (older rows)."""
    if stamp is None:
        return None
    if isinstance(stamp, bytes):
        stamp = stamp.decode()
    if isinstance(stamp, int | float) or (isinstance(stamp, str) and stamp.lstrip("-").isdigit()):
        return datetime.fromtimestamp(int(stamp)).replace(tzinfo=UTC)
    parsed = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(str(stamp))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class RedisOnlineStore:
    """Feast's Redis online store (`ALPHATIDE_REDIS_URL`), with short timeouts and few retries.

    Why the retry policy: redis-py's default (10 retries with backoff up to 1 s) takes about 4 s to report a
    stopped server; the serving tier must turn to `hold` within a refresh interval, and retries in the
    background anyway. Connect/read time out after `timeout_s`.
    """

    def __init__(self, url: str, project: str, timeout_s: float = 1.0):
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        self.project = project
        self._suffix = project.encode()
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        )
        self._fields: dict[tuple[str, str], bytes] = {}

    def _field(self, view: str, feature: str) -> bytes:
        field = self._fields.get((view, feature))
        if field is None:
            field = self._fields[(view, feature)] = _mmh3_field(view, feature)
        return field

    def latest(self, symbol: str, feature_columns: tuple[str, ...]) -> OnlineFeatures | None:
        views = _views_with_columns(feature_columns)
        fields: list[bytes] = []
        for view, columns in views:
            fields += [self._field(view, c) for c in columns]
            fields.append(f"_ts:{view}".encode())
        replies: list[bytes | None] = self._client.hmget(entity_key_bytes(symbol) + self._suffix, fields)  # type: ignore[assignment]
        values: dict[str, float | None] = dict.fromkeys(feature_columns)
        newest: datetime | None = None
        position = 0
        found = False
        for _, columns in views:
            view_values = replies[position : position + len(columns)]
            stamp = decode_timestamp(replies[position + len(columns)])
            position += len(columns) + 1
            if stamp is None and all(v is None for v in view_values):
                continue  # the view has no row for this symbol
            found = True
            for name, blob in zip(columns, view_values, strict=True):
                values[name] = decode_value(blob)
            newest = _later(newest, stamp)
        if not found:
            return None
        return OnlineFeatures(symbol=symbol, values=values, event_time=newest)

    def push(self, frame: pl.DataFrame) -> None:
        """Write each row's features per view unless the stored row is as new or newer (Feast's rule)."""
        for view, columns in _push_views(frame):
            ts_field = f"_ts:{view}".encode()
            rows = list(_rows(frame, columns))
            keys = [entity_key_bytes(symbol) + self._suffix for symbol, _, _ in rows]
            with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hget(key, ts_field)
                stored = pipe.execute()
            newest: dict[bytes, datetime] = {}
            with self._client.pipeline(transaction=False) as pipe:
                for key, previous, (_, event_ts, row) in zip(keys, stored, rows, strict=True):
                    at = event_ts if event_ts.tzinfo else event_ts.replace(tzinfo=UTC)
                    seen = max(filter(None, (decode_timestamp(previous), newest.get(key))), default=None)
                    if seen is not None and at <= seen:
                        continue
                    newest[key] = at
                    mapping = {ts_field: encode_timestamp(at)}
                    mapping |= {self._field(view, c): encode_value(v) for c, v in zip(columns, row, strict=True)}
                    pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                pipe.execute()

    def close(self) -> None:
        self._client.close()


def open_online_store(settings: Settings) -> SqliteOnlineStore | RedisOnlineStore:
    """The configured online store (`ALPHATIDE_ONLINE_STORE`), read and written without the Feast SDK."""
    if settings.online_store == "redis":
        if settings.redis_url is None:
            raise ConfigError("ALPHATIDE_ONLINE_STORE=redis needs ALPHATIDE_REDIS_URL (redis://host:port/db)")
        return RedisOnlineStore(settings.redis_url.get_secret_value(), settings.feast_project)
    return SqliteOnlineStore(settings.feast_dir / "online_store.db", settings.feast_project)
