"""The venue's order updates on its WebSocket (ccxt.pro `watch_orders`), for the live broker.

`OrderStream` runs one ccxt.pro client on its own thread and event loop, so the engine's worker never
waits on a socket: every order update the venue pushes is queued as the raw ccxt order dict; the broker
drains the queue on the worker thread (`LiveBroker.stream_events`) and turns each update into venue
events. A dropped connection is retried after `reconnect_s` (ccxt reconnects and re-subscribes: a new
listenKey stream on USD-M, a new signed WebSocket API subscription on spot), and counted in `drops`.
The REST poll stays the fallback: an update lost on the way is found by the next sweep's poll.

`update_events` reads the venue's own execution report letters (Binance spot `executionReport` and USD-M
`ORDER_TRADE_UPDATE.o` share them): `x` TRADE with trade id `t`, last quantity `l`, last price `L`,
commission `n` in asset `N`, maker `m`, time `T` -> a `Fill` with the id the REST poll gives the same
execution (`<venue>-<t>`), so a fill seen on both is applied once.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt

from pipelines.trading.instruments import to_decimal
from pipelines.trading.orders import Fill, Liquidity

log = logging.getLogger(__name__)


class OrderStream:
    """See the module docstring. `start()` once; `close()` stops the thread and closes the client."""

    def __init__(self, make_client: Callable[[], Any], name: str, reconnect_s: float = 1.0) -> None:
        self._make_client = make_client
        self.name = name
        self.reconnect_s = reconnect_s
        self.updates: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.drops = 0
        self.received = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"order-stream-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def drain(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            try:
                out.append(self.updates.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        self._thread.join(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._watch())
            self._ready.set()
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()

    async def _watch(self) -> None:
        client = self._make_client()
        try:
            while True:
                try:
                    orders = await client.watch_orders()
                except ccxt.BaseError as exc:  # a drop, a refused subscription: retry, never hammer
                    self.drops += 1
                    log.warning("%s order stream: %s: %s", self.name, type(exc).__name__, exc)
                    await asyncio.sleep(self.reconnect_s)
                    continue
                for order in orders:
                    self.received += 1
                    self.updates.put(order)
        finally:
            await client.close()


def _dec(value: Any, name: str) -> Decimal:
    return to_decimal(str(value), name)


def update_fill(venue: str, update: dict[str, Any], base: str, quote: str) -> Fill | None:
    """The execution an order update reports (`x` == TRADE), or None (a NEW, CANCELED, ... update)."""
    info = update.get("info") or {}
    if info.get("x") != "TRADE" or info.get("t") in (None, -1, 0):
        return None
    size, price = _dec(info.get("l", 0), "last quantity"), _dec(info.get("L", 0), "last price")
    fee_cost = _dec(info.get("n") or 0, "commission")
    asset = info.get("N")
    fee = fee_cost if asset in (None, quote) else fee_cost * price if asset == base else Decimal(0)
    ts_ms = int(info.get("T") or update.get("lastTradeTimestamp") or update.get("timestamp") or 0)
    ts = datetime.fromtimestamp(ts_ms / 1000, UTC) if ts_ms else datetime.now(UTC)
    liquidity = Liquidity.MAKER if info.get("m") else Liquidity.TAKER
    return Fill(f"{venue}-{info['t']}", size, price, fee, liquidity, ts)
