"""REST + WebSocket on one 127.0.0.1 port (ephemeral), for fake venues the real ccxt / ccxt.pro clients
talk to. aiohttp runs in its own thread with its own event loop; use the venue as a context manager.

Subclasses implement `handle_http(method, path, query, body, headers) -> (status, json)` (the raw query
string, as signed, is the pseudo-header `headers[":query"]`) and
`handle_ws(conn, message) -> list of replies`; they push to subscribers with `push(conn, payload)`.

Faults, for every venue built on this:
- `hang_next(n, seconds)`: the next n REST requests answer only after `seconds` (a client with a
  shorter timeout sees a timeout);
- `drop_websockets()`: aborts every open WebSocket connection (a network drop; new ones are served);
- `update_delay`: private pushes leave `update_delay` seconds late (delayed order updates);
- `drop_updates(n)`: the next n private pushes are never sent (a lost WebSocket update).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import WSMsgType, web


@dataclass(eq=False)
class WsConn:
    ws: web.WebSocketResponse
    request: web.Request
    subscriptions: set[str] = field(default_factory=set)
    user: str = ""


class AioVenue:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.conns: set[WsConn] = set()
        self.ws_messages: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.update_delay = 0.0
        self._drop_updates = 0
        self._hang = 0
        self._hang_seconds = 0.0
        self._ready = threading.Event()
        self._sending: set[asyncio.Future[None]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)

    # ---- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake venue did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for conn in list(self.conns):
                await conn.ws.close()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self.loop.run_forever()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    # ---- faults ----------------------------------------------------------------------------------
    def hang_next(self, n: int, seconds: float) -> None:
        self._hang, self._hang_seconds = n, seconds

    def drop_updates(self, n: int) -> None:
        self._drop_updates = n

    def drop_websockets(self) -> None:
        def abort() -> None:
            for conn in list(self.conns):
                transport = conn.request.transport
                if transport is not None:
                    transport.abort()
            self.conns.clear()

        self.loop.call_soon_threadsafe(abort)

    # ---- plumbing ----------------------------------------------------------------------------------
    def handle_http(
        self, method: str, path: str, query: dict[str, str], body: str, headers: dict[str, str]
    ) -> tuple[int, Any]:
        raise NotImplementedError

    def handle_ws(self, conn: WsConn, message: Any) -> list[Any]:
        raise NotImplementedError

    def push(self, conn: WsConn, payload: Any, *, private: bool = True) -> None:
        """Send to one connection from any thread; private pushes obey `update_delay` / `drop_updates`."""
        if private and self._drop_updates > 0:
            self._drop_updates -= 1
            return
        text = json.dumps(payload)
        delay = self.update_delay if private else 0.0

        def send() -> None:
            if conn in self.conns and not conn.ws.closed:
                task = asyncio.ensure_future(conn.ws.send_str(text))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

        self.loop.call_soon_threadsafe(lambda: self.loop.call_later(delay, send))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        body = await request.text()
        if self._hang > 0:
            self._hang -= 1
            await asyncio.sleep(self._hang_seconds)
        status, payload = self.handle_http(
            request.method,
            request.path,
            dict(request.query),
            body,
            {**{k.lower(): v for k, v in request.headers.items()}, ":query": request.query_string},
        )
        return web.Response(status=status, text=json.dumps(payload), content_type="application/json")

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = WsConn(ws, request)
        self.conns.add(conn)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                self.ws_messages.append(data)
                for reply in self.handle_ws(conn, data):
                    await ws.send_str(json.dumps(reply))
        finally:
            self.conns.discard(conn)
        return ws
