"""Market-data freshness for `/health`: when did the last trade or book update arrive?

The stream marks every trade and book diff it hands to the features (`mark`; a REST snapshot, fetched
again at every resubscribe, is not live data); a subscription ack, a ping or any other control frame
never reaches it, so a connection that only acknowledged its subscriptions is not "receiving data".
`problem()` names what is stale: nothing arrived within `max_age_s` of the stream's start, or the
newest update of either kind is older than `max_age_s`. Times are this process's monotonic clock
(injectable); thread-safe for one writer.
"""

from __future__ import annotations

import time
from collections.abc import Callable

KINDS = ("trade", "book")


class DataFreshness:
    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic):
        self.max_age_s = max_age_s
        self._clock = clock
        self.started_at = clock()
        self._last: dict[str, float] = {}

    def mark(self, kind: str) -> None:
        """A `kind` ("trade" or "book") update arrived now."""
        self._last[kind] = self._clock()

    def ages_s(self) -> dict[str, float | None]:
        now = self._clock()
        return {kind: (now - self._last[kind]) if kind in self._last else None for kind in KINDS}

    def problem(self) -> str | None:
        """None while some trade or book update arrived within `max_age_s`; else why not."""
        now = self._clock()
        newest = max(self._last.values(), default=None)
        if newest is None:
            waited = now - self.started_at
            if waited <= self.max_age_s:
                return None
            return f"no market data: no trade or book update in the {waited:.0f} s since the stream started"
        age = now - newest
        if age <= self.max_age_s:
            return None
        return f"market data stale: last trade or book update {age:.0f} s ago (limit {self.max_age_s:.0f} s)"
