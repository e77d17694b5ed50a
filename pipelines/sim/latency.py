"""Order latency models: how long an order takes to reach the matching engine (entry) and how long the
exchange's answer (ack, fill, cancel, reject) takes to come back (response). Times in ns.

- `ConstantLatency`: fixed entry and response latency, optionally with a uniform jitter drawn from a
  seeded generator (deterministic for a given seed).
- `FeedLatency`: replayed from the capture: the feed latency (local receive time minus exchange time)
  around the request time, interpolated, times a multiplier, plus a base. An order path that goes
  through the same network as the market data is about as slow as the data.
"""

from __future__ import annotations

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
