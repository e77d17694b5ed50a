"""The fake Polymarket's market WebSocket channel (what ccxt's `watchOrderBook` / `watchTrades` speak).

A client connects, sends `{"assets_ids": [...], "type": "market"}` and receives a `book` snapshot per
asset (`event_type: "book"`, levels as `{"price", "size"}` strings), then every change the venue
publishes: a fresh `book` when a book is replaced, `price_change` for a level whose size changed, and
`last_trade_price` for each print. A text `PING` is answered `PONG` (Polymarket's keep-alive).
The server runs its own event loop on a thread; `publish` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed


class MarketChannel:
    def __init__(self, snapshot: Callable[[str], dict[str, Any] | None]) -> None:
        self._snapshot = snapshot  # asset id -> its `book` event (None: unknown asset)
        self._subscribers: dict[ServerConnection, set[str]] = {}
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await serve(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    async def _handle(self, connection: ServerConnection) -> None:
        self._subscribers[connection] = set()
        try:
            async for raw in connection:
                if raw == "PING":
                    await connection.send("PONG")
                    continue
                message = json.loads(raw)
                assets = [str(a) for a in message.get("assets_ids") or []]
                self._subscribers[connection].update(assets)
                books = [b for b in (self._snapshot(a) for a in assets) if b is not None]
                if books:
                    await connection.send(json.dumps(books))
        except ConnectionClosed:
            pass
        finally:
            self._subscribers.pop(connection, None)

    def publish(self, asset_id: str, events: list[dict[str, Any]]) -> None:
        """Send `events` to every connection subscribed to `asset_id` (thread-safe, never blocks)."""

        async def send() -> None:
            payload = json.dumps(events)
            for connection, assets in list(self._subscribers.items()):
                if asset_id in assets:
                    with contextlib.suppress(ConnectionClosed):
                        await connection.send(payload)

        if self._ready.is_set():
            asyncio.run_coroutine_threadsafe(send(), self._loop)
