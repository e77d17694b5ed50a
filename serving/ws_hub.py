"""Fan-out of `/ws/signals` messages to WebSocket clients; slow clients are dropped, never waited for.

`publish` serializes a message once and offers it to every client's bounded queue without awaiting
anything (O(clients), safe to call from the stream's hot path on the event loop). Each client has a sender
task draining its queue; a client whose queue is full, or whose single send takes longer than
`send_timeout_s`, is disconnected (close code 1008, "too slow") and counted in
`alphatide_ws_signal_clients_dropped_total`. Publishing from another thread: `publish_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from pydantic import BaseModel
from starlette.websockets import WebSocket, WebSocketDisconnect

from serving.metrics import SIGNAL_CLIENTS, SIGNAL_CLIENTS_DROPPED

log = logging.getLogger(__name__)
SLOW_CLIENT_CLOSE_CODE = 1008


@dataclass(eq=False)
class _Client:
    websocket: WebSocket
    queue: asyncio.Queue[str]
    dropped: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""


class SignalHub:
    def __init__(self, queue_size: int = 256, send_timeout_s: float = 2.0):
        self.queue_size = queue_size
        self.send_timeout_s = send_timeout_s
        self._clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.published = 0
        self.dropped = 0

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, message: BaseModel) -> None:
        """Offer `message` to every client now; never blocks (call on the event loop's thread)."""
        if not self._clients:
            return
        text = message.model_dump_json()
        self.published += 1
        for client in list(self._clients):
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                self._drop(client, f"queue of {self.queue_size} messages full")

    def publish_threadsafe(self, message: BaseModel) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.publish, message)

    def _drop(self, client: _Client, reason: str) -> None:
        if client in self._clients:
            self._clients.discard(client)
            self.dropped += 1
            client.reason = reason
            client.dropped.set()
            SIGNAL_CLIENTS_DROPPED.inc()
            SIGNAL_CLIENTS.set(len(self._clients))
            log.info("dropped a slow /ws/signals client: %s", reason)

    async def serve(self, websocket: WebSocket, first: BaseModel | None = None) -> None:
        """Run one accepted client until it disconnects or is dropped."""
        self._loop = asyncio.get_running_loop()
        client = _Client(websocket, asyncio.Queue(maxsize=self.queue_size))
        if first is not None:
            client.queue.put_nowait(first.model_dump_json())
        self._clients.add(client)
        SIGNAL_CLIENTS.set(len(self._clients))
        sender = asyncio.create_task(self._send_loop(client))
        receiver = asyncio.create_task(self._receive_loop(client))
        dropped = asyncio.create_task(client.dropped.wait())
        try:
            await asyncio.wait({sender, receiver, dropped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, receiver, dropped):
                task.cancel()
            for task in (sender, receiver, dropped):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            was_dropped = client.dropped.is_set()
            self._clients.discard(client)
            SIGNAL_CLIENTS.set(len(self._clients))
            if was_dropped:
                with contextlib.suppress(Exception):
                    # Bounded: a client that reads nothing must not hold the close either.
                    await asyncio.wait_for(
                        websocket.close(code=SLOW_CLIENT_CLOSE_CODE, reason="too slow"), timeout=0.5
                    )

    async def _send_loop(self, client: _Client) -> None:
        while True:
            text = await client.queue.get()
            try:
                await asyncio.wait_for(client.websocket.send_text(text), timeout=self.send_timeout_s)
            except TimeoutError:
                self._drop(client, f"a send blocked for more than {self.send_timeout_s} s")
                return

    async def _receive_loop(self, client: _Client) -> None:
        # Clients send nothing meaningful; reading is how a disconnect is noticed.
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await client.websocket.receive_text()
