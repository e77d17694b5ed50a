"""The in-process latest-features cache in front of the online store (the `/signal` fast path).

Why: a Feast `get_online_features` call costs milliseconds (registry lookup, serialization, a store round
trip); `/signal` must answer in well under 2 ms at p99. The stream writes every closed bar's features here
(`put`) as it pushes them to Feast, so the hot symbols are always in memory; anything else is read through
the online store once (`read_through`) and then re-read in the background every `refresh_s` seconds
(stale-while-revalidate: a request never waits for a refresh).

Store health: any failed read or push marks the store unavailable (`StoreUnavailableError` with the reason)
until a later read or push succeeds. While it is marked, lookups keep probing it in the background (at
most once per `refresh_s` per symbol), so the tier recovers by itself when the store is back.

Contract of the values: `OnlineFeatures` as `pipelines.feature_store.FeatureReader.latest` returns them
(None = the store has no row for the symbol). Thread-safe: lookups come from the event loop and from
worker threads; entries are replaced whole (a reference swap), never mutated in place, except for the
score memo, whose races are benign (the same inputs give the same score).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pipelines.feature_store import FeatureReader
from pipelines.online_store import OnlineFeatures
from serving.metrics import STORE_ERRORS

log = logging.getLogger(__name__)


class StoreUnavailableError(Exception):
    """The online store failed; `reason` says how (shown to clients with a `hold`)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class CachedRow:
    """One symbol's newest row. `loaded_at` is the cache clock (monotonic s) when it was stored."""

    row: OnlineFeatures | None
    columns: frozenset[str]
    loaded_at: float
    from_stream: bool
    stale_reason: str | None = None  # set by the stream (book crossed, no data): the row must not trade
    score: tuple[str, float] | None = field(default=None)  # (model version, p_up) memo for this row


class LatestFeatures:
    def __init__(
        self,
        reader: FeatureReader,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._reader = reader
        self._refresh_s = refresh_s
        self._clock = clock
        self._rows: dict[str, CachedRow] = {}
        self._store_error: str | None = None
        self._refreshing: set[str] = set()
        self._last_probe: dict[str, float] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="feature-refresh")
        self.listeners: list[Callable[[OnlineFeatures], None]] = []  # told of every row the stream puts

    # ---- store health ---------------------------------------------------------------------------
    @property
    def store_error(self) -> str | None:
        return self._store_error

    def store_failed(self, op: str, exc: BaseException) -> None:
        STORE_ERRORS.labels(op=op).inc()
        reason = f"online store unavailable ({op}: {type(exc).__name__}: {exc})"
        if self._store_error is None:
            log.warning("%s", reason)
        self._store_error = reason

    def store_ok(self) -> None:
        if self._store_error is not None:
            log.warning("online store is back")
        self._store_error = None

    # ---- writes (the stream) -------------------------------------------------------------------
    def put(self, row: OnlineFeatures, stale_reason: str | None = None) -> None:
        """The stream's newest row for `row.symbol`; an older row than the cached one is ignored."""
        current = self._rows.get(row.symbol)
        if (
            current is not None
            and current.row is not None
            and current.row.event_time is not None
            and row.event_time is not None
            and row.event_time < current.row.event_time
        ):
            return
        self._rows[row.symbol] = CachedRow(
            row=row,
            columns=frozenset(row.values),
            loaded_at=self._clock(),
            from_stream=True,
            stale_reason=stale_reason,
        )
        for listener in self.listeners:
            listener(row)

    def clear(self) -> int:
        """Drop every cached row and its score memo (the shed-caches action); returns how many."""
        with self._lock:
            count = len(self._rows)
            self._rows = {}
        return count

    def __len__(self) -> int:
        return len(self._rows)

    def mark_stale(self, symbol: str, reason: str | None) -> None:
        """Flag (or clear, with None) the symbol's row as untradeable without replacing its values."""
        current = self._rows.get(symbol)
        if current is not None and current.stale_reason != reason:
            self._rows[symbol] = CachedRow(
                current.row, current.columns, current.loaded_at, current.from_stream, reason, current.score
            )

    # ---- reads ----------------------------------------------------------------------------------
    def cached(self, symbol: str, columns: tuple[str, ...]) -> CachedRow | None:
        """The cached entry without touching the store (None = miss); schedules a background refresh.

        Raises `StoreUnavailableError` while the store is marked failed (a background probe is scheduled).
        """
        entry = self._rows.get(symbol)
        now = self._clock()
        if self._store_error is not None:
            self._schedule_refresh(symbol, columns, now, force=True)
            raise StoreUnavailableError(self._store_error)
        if entry is None or not entry.columns.issuperset(columns):
            return None
        if now - entry.loaded_at >= self._refresh_s:
            self._schedule_refresh(symbol, columns, now)
        return entry

    def get(self, symbol: str, columns: tuple[str, ...]) -> CachedRow:
        """Cached entry, or a blocking read through the store on a miss. Raises `StoreUnavailableError`."""
        entry = self.cached(symbol, columns)
        return entry if entry is not None else self.read_through(symbol, columns)

    def read_through(self, symbol: str, columns: tuple[str, ...]) -> CachedRow:
        """Read the store now (blocking, milliseconds) and cache the answer."""
        try:
            row = self._reader.latest(symbol, columns)
        except Exception as exc:  # any store failure (connection refused, timeout, corrupt registry)
            self.store_failed("read", exc)
            raise StoreUnavailableError(self._store_error or str(exc)) from exc
        self.store_ok()
        entry = CachedRow(row=row, columns=frozenset(columns), loaded_at=self._clock(), from_stream=False)
        with self._lock:
            current = self._rows.get(symbol)
            newer_from_stream = (
                current is not None
                and current.from_stream
                and current.row is not None
                and current.row.event_time is not None
                and (row is None or row.event_time is None or current.row.event_time >= row.event_time)
            )
            if newer_from_stream and current is not None:
                # The store lags the stream: keep the stream's row, but count it as fresh again.
                entry = CachedRow(
                    current.row, current.columns, entry.loaded_at, True, current.stale_reason, current.score
                )
            self._rows[symbol] = entry
        return entry

    def _schedule_refresh(self, symbol: str, columns: tuple[str, ...], now: float, force: bool = False) -> None:
        with self._lock:
            if symbol in self._refreshing:
                return
            entry = self._rows.get(symbol)
            if entry is not None and not force and now - entry.loaded_at < self._refresh_s:
                return
            last_probe = self._last_probe.get(symbol, -float("inf"))
            if force and now - last_probe < min(self._refresh_s, 0.25):
                return
            self._last_probe[symbol] = now
            self._refreshing.add(symbol)

        def refresh() -> None:
            try:
                self.read_through(symbol, columns)
            except StoreUnavailableError:
                pass  # recorded as the store error; the next lookup probes again
            finally:
                with self._lock:
                    self._refreshing.discard(symbol)

        try:
            self._pool.submit(refresh)
        except RuntimeError:  # pool shut down (app stopping)
            with self._lock:
                self._refreshing.discard(symbol)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
