"""Fan-out of `/ws/signals` messages to WebSocket clients; slow clients are dropped, never waited for.

`publish` serializes a message once and offers it to every client's bounded backlog without awaiting
anything (O(clients)). It may be called from any thread: off the event loop that serves the clients
(the stream runs on its own thread), the serialized text is handed over with `call_soon_threadsafe`.
Each client has a sender task draining its backlog in order. A client is disconnected (close code
1008, "too slow") and counted in `alphatide_ws_signal_clients_dropped_total` when:

- its backlog holds `queue_size` messages and another arrives;
- its oldest unsent message has waited longer than `max_lag_s` (checked on every publish and by a
  sweep every `max_lag_s / 4`, so a client is dropped even when nothing new is published);
- a single send blocks longer than `send_timeout_s`.

A message counts as unsent until its send has completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel
from starlette.websockets import WebSocket, WebSocketDisconnect

from serving.metrics import SIGNAL_CLIENTS, SIGNAL_CLIENTS_DROPPED

log = logging.getLogger(__name__)
SLOW_CLIENT_CLOSE_CODE = 1008


@dataclass(eq=False)
class _Client:
    websocket: WebSocket
    backlog: deque[tuple[float, str]] = field(default_factory=deque)  # (enqueued at, text), oldest first
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""


class SignalHub:
    def __init__(
        self,
        queue_size: int = 256,
        send_timeout_s: float = 2.0,
        max_lag_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.queue_size = queue_size
        self.send_timeout_s = send_timeout_s
        self.max_lag_s = max_lag_s
        self._clock = clock
        self._clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.published = 0
        self.dropped = 0

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, message: BaseModel) -> None:
        """Offer `message` to every client now; never blocks; any thread."""
        loop = self._loop
        if not self._clients or loop is None:
            return
        text = message.model_dump_json()  # serialized on the caller's thread, once
        if threading.get_ident() == self._loop_thread:
            self._offer(text)
        else:
            with contextlib.suppress(RuntimeError):  # the serving loop is closing
                loop.call_soon_threadsafe(self._offer, text)

    publish_threadsafe = publish  # the older name: `publish` is thread-safe itself now

    def _offer(self, text: str) -> None:
        self.published += 1
        now = self._clock()
        for client in list(self._clients):
            if len(client.backlog) >= self.queue_size:
                self._drop(client, f"queue of {self.queue_size} messages full")
                continue
            client.backlog.append((now, text))
            client.ready.set()
        self.sweep(now)

    def sweep(self, now: float | None = None) -> None:
        """Drop every client whose oldest unsent message is older than `max_lag_s`."""
        now = self._clock() if now is None else now
        for client in list(self._clients):
            if client.backlog and now - client.backlog[0][0] > self.max_lag_s:
                lag = now - client.backlog[0][0]
                self._drop(client, f"oldest unsent message {lag:.1f} s old (limit {self.max_lag_s} s)")

    def _drop(self, client: _Client, reason: str) -> None:
        if client in self._clients:
            self._clients.discard(client)
            self.dropped += 1
            client.reason = reason
            client.dropped.set()
            SIGNAL_CLIENTS_DROPPED.inc()
            SIGNAL_CLIENTS.set(len(self._clients))
            log.info("dropped a slow /ws/signals client: %s", reason)

    async def _sweep_loop(self) -> None:
        while self._clients:
            await asyncio.sleep(self.max_lag_s / 4)
            self.sweep()
        self._sweeper = None

    async def serve(self, websocket: WebSocket, first: BaseModel | None = None) -> None:
        """Run one accepted client until it disconnects or is dropped."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        client = _Client(websocket)
        if first is not None:
            client.backlog.append((self._clock(), first.model_dump_json()))
            client.ready.set()
        self._clients.add(client)
        SIGNAL_CLIENTS.set(len(self._clients))
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="ws-lag-sweep")
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
            await client.ready.wait()
            if not client.backlog:
                client.ready.clear()
                continue
            _, text = client.backlog[0]
            try:
                await asyncio.wait_for(client.websocket.send_text(text), timeout=self.send_timeout_s)
            except TimeoutError:
                self._drop(client, f"a send blocked for more than {self.send_timeout_s} s")
                return
            client.backlog.popleft()  # sent: no longer counts toward the client's lag

    async def _receive_loop(self, client: _Client) -> None:
        # Clients send nothing meaningful; reading is how a disconnect is noticed.
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await client.websocket.receive_text()
