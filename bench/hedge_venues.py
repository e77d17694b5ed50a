"""The Backpack and Hyperliquid fakes in their own process, as real venues are remote.

    with remote_venues() as (bp, hl):  # a child `python -m bench.hedge_venues` serving on 127.0.0.1
        ccxt.pro.backpack(bp.ccxt_config())
        bp.matcher.set_book("BTC_USDC", "60000.0", "60000.1")
        hl.matcher.reject_next = ["insufficient"]

The child runs `tests.fakes.backpack_venue.FakeBackpack` and `tests.fakes.hyperliquid_venue.FakeHyperliquid`
(each its aiohttp server on an ephemeral port of 127.0.0.1) and prints their ccxt configs as one JSON
line; the parent drives the fakes (books, trades, faults) with one JSON line per call on the child's
stdin, fire-and-forget and in order. The benchmark's client process then shares no GIL with the venues.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any


class _Proxy:
    """`proxy.method(*args)` and `proxy.attr = value` on a fake object of the child, by path."""

    def __init__(self, send: Any, path: str, config: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_send", send)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_config", config)

    def ccxt_config(self) -> dict[str, Any]:
        assert self._config is not None
        return json.loads(json.dumps(self._config))

    def __getattr__(self, name: str) -> Any:
        if name == "matcher":
            return _Proxy(self._send, f"{self._path}.matcher")
        return lambda *args: self._send({"path": self._path, "call": name, "args": [_plain(a) for a in args]})

    def __setattr__(self, name: str, value: Any) -> None:
        self._send({"path": self._path, "set": name, "value": _plain(value), "decimal": isinstance(value, Decimal)})


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


@contextmanager
def remote_venues() -> Iterator[tuple[Any, Any]]:
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.hedge_venues"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    stdin = child.stdin

    def send(message: dict[str, Any]) -> None:
        stdin.write(json.dumps(message) + "\n")
        stdin.flush()

    try:
        configs = json.loads(child.stdout.readline())
        yield _Proxy(send, "bp", configs["bp"]), _Proxy(send, "hl", configs["hl"])
    finally:
        stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _serve() -> None:
    from tests.fakes.backpack_venue import FakeBackpack
    from tests.fakes.hyperliquid_venue import FakeHyperliquid

    with FakeBackpack() as bp, FakeHyperliquid() as hl:
        roots = {"bp": bp, "hl": hl}
        print(json.dumps({"bp": bp.ccxt_config(), "hl": hl.ccxt_config()}), flush=True)
        for line in sys.stdin:
            msg = json.loads(line)
            head, _, rest = msg["path"].partition(".")
            target = roots[head] if not rest else getattr(roots[head], rest)
            if "call" in msg:
                getattr(target, msg["call"])(*msg["args"])
            else:
                setattr(target, msg["set"], Decimal(msg["value"]) if msg["decimal"] else msg["value"])


if __name__ == "__main__":
    _serve()
