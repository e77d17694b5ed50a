"""Order latency models: how long an order takes to reach the matching engine (entry) and how long the
exchange's answer (ack, fill, cancel, reject) takes to come back (response). Times in ns.

- `ConstantLatency`: fixed entry and response latency, optionally with a uniform jitter drawn from a
  seeded generator (deterministic for a given seed).
- `OrderLatencyTable`: hftbacktest's interpolated order latency over (request, exchange, response)
  rows, e.g. made from the capture's feed latency (`OrderLatencyTable.from_feed`).
- `FeedLatency`: replayed from the capture: the feed latency (local receive time minus exchange time)
  around the request time, interpolated, times a multiplier, plus a base. An order path that goes
  through the same network as the market data is about as slow as the data.
"""

from __future__ import annotations

import bisect
import random
from typing import Protocol

import numpy as np


class LatencyModel(Protocol):
    @property
    def min_entry_ns(self) -> int:
        """A lower bound of every entry latency (how far the exchange may safely run ahead of us)."""
        ...

    def entry(self, local_ts: int) -> int: ...

    def response(self, exch_ts: int) -> int: ...


class ConstantLatency:
    def __init__(self, entry_ns: int, response_ns: int, jitter_ns: int = 0, seed: int = 0) -> None:
        if entry_ns < 0 or response_ns < 0 or jitter_ns < 0:
            raise ValueError("latencies must not be negative")
        self.entry_ns, self.response_ns, self.jitter_ns = entry_ns, response_ns, jitter_ns
        self._rng = random.Random(seed)

    @property
    def min_entry_ns(self) -> int:
        return self.entry_ns

    def entry(self, local_ts: int) -> int:
        return self.entry_ns + (self._rng.randrange(self.jitter_ns + 1) if self.jitter_ns else 0)

    def response(self, exch_ts: int) -> int:
        return self.response_ns + (self._rng.randrange(self.jitter_ns + 1) if self.jitter_ns else 0)


class FeedLatency:
    """Latency replayed from the feed's own (exchange time, receive latency) series."""

    def __init__(
        self,
        exch_ts: np.ndarray,
        feed_latency_ns: np.ndarray,
        *,
        entry_multiplier: float = 1.0,
        response_multiplier: float = 1.0,
        base_ns: int = 0,
        step: int = 1,
    ) -> None:
        if len(exch_ts) == 0:
            raise ValueError("a replayed latency needs a non-empty feed")
        self._ts = np.asarray(exch_ts[::step], dtype=np.float64)
        self._lat = np.asarray(feed_latency_ns[::step], dtype=np.float64)
        self.entry_multiplier, self.response_multiplier, self.base_ns = entry_multiplier, response_multiplier, base_ns

    @property
    def min_entry_ns(self) -> int:
        return max(0, self.base_ns + int(self.entry_multiplier * float(self._lat.min())))

    def at(self, ts: int) -> float:
        return float(np.interp(ts, self._ts, self._lat))

    def entry(self, local_ts: int) -> int:
        return self.base_ns + int(self.entry_multiplier * self.at(local_ts))

    def response(self, exch_ts: int) -> int:
        return self.base_ns + int(self.response_multiplier * self.at(exch_ts))


class OrderLatencyTable:
    """Latency interpolated from rows of (request time, exchange time, response time), as hftbacktest's
    `IntpOrderLatency`: entry = exch - req interpolated over ``req_ts``, response = resp - exch over
    ``exch_ts``, the first/last row's value outside the table, integer arithmetic truncated like Rust's.

    `from_feed` makes the rows from a capture's own feed latency (one row every ``every_ns`` of exchange
    time: entry = response = the feed latency there x a multiplier), so both simulators in `bench.sim`
    can replay the same latency series.
    """

    def __init__(self, req_ts: np.ndarray, exch_ts: np.ndarray, resp_ts: np.ndarray) -> None:
        if len(req_ts) == 0 or not (len(req_ts) == len(exch_ts) == len(resp_ts)):
            raise ValueError("a latency table needs aligned, non-empty rows")
        self.req = [int(x) for x in req_ts]
        self.exch = [int(x) for x in exch_ts]
        self.resp = [int(x) for x in resp_ts]

    @classmethod
    def from_feed(cls, exch_ts: np.ndarray, feed_latency_ns: np.ndarray, *, every_ns: int = 1_000_000_000,
                  multiplier: float = 1.0) -> OrderLatencyTable:
        grid = np.arange(int(exch_ts[0]), int(exch_ts[-1]) + every_ns, every_ns, dtype=np.int64)
        idx = np.clip(np.searchsorted(exch_ts, grid, side="right") - 1, 0, len(exch_ts) - 1)
        lat = np.maximum((feed_latency_ns[idx] * multiplier).astype(np.int64), 0)
        return cls(grid, grid + lat, grid + 2 * lat)

    def rows(self) -> np.ndarray:
        """(req, exch, resp) as an int64 array of shape (n, 3)."""
        return np.array([self.req, self.exch, self.resp], dtype=np.int64).T

    @property
    def min_entry_ns(self) -> int:
        return max(0, min(e - r for r, e in zip(self.req, self.exch, strict=True)))

    @staticmethod
    def _intp(x: int, x1: int, y1: int, x2: int, y2: int) -> int:
        return int((y2 - y1) / (x2 - x1) * (x - x1)) + y1  # int() truncates toward zero, like `as i64`

    def entry(self, local_ts: int) -> int:
        req, exch = self.req, self.exch
        if local_ts < req[0]:
            return exch[0] - req[0]
        k = bisect.bisect_right(req, local_ts) - 1
        if k >= len(req) - 1:
            return exch[-1] - req[-1]
        return self._intp(local_ts, req[k], exch[k] - req[k], req[k + 1], exch[k + 1] - req[k + 1])

    def response(self, exch_ts: int) -> int:
        exch, resp = self.exch, self.resp
        if exch_ts < exch[0]:
            return resp[0] - exch[0]
        k = bisect.bisect_right(exch, exch_ts) - 1
        if k >= len(exch) - 1:
            return resp[-1] - exch[-1]
        return self._intp(exch_ts, exch[k], resp[k] - exch[k], exch[k + 1], resp[k + 1] - exch[k + 1])
