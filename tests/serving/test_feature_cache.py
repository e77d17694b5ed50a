"""LatestFeatures: stream rows win, misses read through once, refreshes happen off the request path,
store failures surface as StoreUnavailableError and clear by themselves."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.feature_store import OnlineFeatures
from serving.feature_cache import LatestFeatures, StoreUnavailableError

T0 = datetime(2026, 8, 1, tzinfo=UTC)
COLS = ("a", "b")


class CountingReader:
    """A FeatureReader over a dict (the online store's contract: newest row or None), that can fail."""

    def __init__(self) -> None:
        self.rows: dict[str, OnlineFeatures] = {}
        self.reads = 0
        self.fail: Exception | None = None
        self.called = threading.Event()

    def latest(self, symbol: str, feature_columns: tuple[str, ...]) -> OnlineFeatures | None:
        self.reads += 1
        self.called.set()
        if self.fail is not None:
            raise self.fail
        return self.rows.get(symbol)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _row(symbol: str, minutes: int, a: float = 1.0) -> OnlineFeatures:
    return OnlineFeatures(symbol, {"a": a, "b": 2.0}, T0 + timedelta(minutes=minutes))


def _wait_for(predicate, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_miss_reads_through_once_then_serves_from_memory() -> None:
    reader, clock = CountingReader(), Clock()
    reader.rows["BTC/USDT"] = _row("BTC/USDT", 5)
    cache = LatestFeatures(reader, refresh_s=10, clock=clock)

    assert cache.cached("BTC/USDT", COLS) is None
    first = cache.get("BTC/USDT", COLS)
    again = cache.get("BTC/USDT", COLS)

    assert first.row == reader.rows["BTC/USDT"] and again is first and reader.reads == 1
    cache.close()


def test_old_entry_is_refreshed_in_the_background_while_served() -> None:
    reader, clock = CountingReader(), Clock()
    reader.rows["BTC/USDT"] = _row("BTC/USDT", 5)
    cache = LatestFeatures(reader, refresh_s=1, clock=clock)
    cache.get("BTC/USDT", COLS)
    reader.rows["BTC/USDT"] = _row("BTC/USDT", 10, a=9.0)
    clock.t = 1.5

    served = cache.cached("BTC/USDT", COLS)  # old row now, refresh scheduled
    _wait_for(lambda: reader.reads == 2)
    _wait_for(lambda: cache.cached("BTC/USDT", COLS).row.values["a"] == 9.0)  # type: ignore[union-attr]

    assert served is not None and served.row is not None and served.row.values["a"] == 1.0
    cache.close()


def test_stream_rows_win_over_older_ones() -> None:
    cache = LatestFeatures(CountingReader(), refresh_s=10, clock=Clock())
    cache.put(_row("ETH/USDT", 10, a=3.0))
    cache.put(_row("ETH/USDT", 5, a=4.0))  # late and older: ignored

    entry = cache.cached("ETH/USDT", COLS)

    assert entry is not None and entry.from_stream and entry.row is not None and entry.row.values["a"] == 3.0
    cache.close()


def test_store_failure_is_reported_then_clears_by_itself() -> None:
    reader, clock = CountingReader(), Clock()
    reader.rows["BTC/USDT"] = _row("BTC/USDT", 5)
    cache = LatestFeatures(reader, refresh_s=1, clock=clock)
    reader.fail = ConnectionError("Connection refused")

    with pytest.raises(StoreUnavailableError, match="Connection refused"):
        cache.get("BTC/USDT", COLS)
    with pytest.raises(StoreUnavailableError):
        cache.cached("BTC/USDT", COLS)  # schedules a probe
    reader.fail = None
    clock.t = 2.0
    with pytest.raises(StoreUnavailableError):
        cache.cached("BTC/USDT", COLS)
    _wait_for(lambda: cache.store_error is None)

    assert cache.get("BTC/USDT", COLS).row == reader.rows["BTC/USDT"]
    cache.close()
