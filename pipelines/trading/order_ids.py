"""Client order ids (SPEC 11): time-ordered, unique across processes and restarts. No IO.

Client order ids: `ClientOrderIdFactory` gives `<prefix><32 hex>` where the hex is a UUIDv7 (RFC 9562):
48 bits of Unix milliseconds then 74 random bits from the OS CSPRNG. Unique across processes and
restarts without any shared counter or persisted state: two ids can only collide if they share the
millisecond *and* 74 random bits (probability ~ n^2 / 2^75 for n ids in one millisecond), which holds
even when a restarted process's clock runs behind the previous one. Within a process ids are strictly
increasing (a clock step back reuses the last millisecond and increments the random part). At most 36
characters (Binance's limit), only [A-Za-z0-9]; the UUID is recoverable for venues that want 128-bit ids.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pipelines.trading.config import require_utc

_PREFIX_RE = re.compile(r"^[A-Za-z0-9]{1,4}$")
_RAND_BITS = 74
_RAND_MASK = (1 << _RAND_BITS) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ClientOrderIdFactory:
    """Time-ordered client order ids, unique across processes and restarts (see module docstring).

    `clock` returns aware UTC; `random_bytes(n)` returns n random bytes (default `os.urandom`; inject
    a deterministic source only in tests).
    """

    def __init__(
        self,
        clock: Callable[[], datetime],
        prefix: str = "at",
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not _PREFIX_RE.match(prefix):
            raise ValueError(f"client order id prefix must be 1-4 letters/digits, got {prefix!r}")
        self.prefix = prefix
        self._clock = clock
        self._random_bytes = random_bytes
        self._last_ms = -1
        self._last_rand = 0

    def next_id(self) -> str:
        ms = (require_utc(self._clock(), "clock()") - _EPOCH) // timedelta(milliseconds=1)
        rand = int.from_bytes(self._random_bytes(10), "big") & _RAND_MASK
        if ms <= self._last_ms:
            # Same millisecond or the clock stepped back: stay strictly increasing.
            ms, rand = self._last_ms, self._last_rand + 1
            if rand > _RAND_MASK:
                ms, rand = ms + 1, 0
        self._last_ms, self._last_rand = ms, rand
        value = (
            (ms & ((1 << 48) - 1)) << 80
            | 0x7 << 76
            | (rand >> 62) << 64
            | 0b10 << 62
            | (rand & ((1 << 62) - 1))
        )
        return f"{self.prefix}{value:032x}"


def client_order_id_uuid(client_order_id: str) -> uuid.UUID:
    """The UUIDv7 inside one of our ids (for venues that take a 128-bit client id)."""
    return uuid.UUID(hex=client_order_id[-32:])


def client_order_id_time(client_order_id: str) -> datetime:
    """When one of our ids was made (millisecond precision, UTC)."""
    ms = client_order_id_uuid(client_order_id).int >> 80
    return _EPOCH + timedelta(milliseconds=ms)


def is_our_order(client_order_id: str, prefix: str) -> bool:
    """True when the id has our prefix and a well-formed UUIDv7 (for the clean-start sweep)."""
    if not client_order_id.startswith(prefix) or len(client_order_id) != len(prefix) + 32:
        return False
    try:
        return client_order_id_uuid(client_order_id).version == 7
    except ValueError:
        return False
