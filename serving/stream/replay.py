"""A local Binance venue that replays a recorded WebSocket capture (the `replay` stream source).

One server on 127.0.0.1 (port 0 = ephemeral) speaks both halves of Binance spot that ccxt.pro's binance
client uses for public market data, so the live client code path is what runs and what tests drive:

- WebSocket (any path, e.g. ``/stream/0``): Binance's ``{"method": "SUBSCRIBE", "params": [...], "id": n}``
  is answered ``{"result": null, "id": n}``; then every captured message of a subscribed stream
  (``btcusdt@trade``, ``btcusdt@depth@100ms``, ``btcusdt@bookTicker``) is sent verbatim in Binance's
  combined-stream format ``{"stream": ..., "data": {...}}``, the format the capture was recorded in.
- REST: ``/api/v3/ping``, ``/api/v3/time``, ``/api/v3/exchangeInfo`` (the captured symbols) and
  ``/api/v3/depth`` (a snapshot of the server's own book at the current replay position, with
  ``lastUpdateId`` = the last diff sent, so a client that (re)subscribes mid-replay syncs exactly as on
  Binance: drop diffs with ``u <= lastUpdateId``, the next one bridges it).

Replay clock: one pump walks every file of every symbol merged by local receive time, paced at
``speed`` x recorded time (0 = as fast as the connections take it). The pump waits while nobody is
subscribed, so a client that reconnects resumes where the replay stood ("the venue" does not run ahead
while nobody listens). Each symbol's replay starts at its REST snapshot line (diffs before it cannot be
applied to any book).

Faults for tests: `drop_connections()` aborts every open connection (a network drop);
`hang_connections()` keeps them open but sends nothing more on them (a half-dead TCP connection, the
case only a silence watchdog detects); new connections are served normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import heapq
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from pipelines.marketdata.binance_wire import spot_symbol_info

log = logging.getLogger(__name__)

_SNAPSHOT_PREFIX = b'{"lastUpdateId"'
_STREAM_PREFIX = b'{"stream":"'


def capture_files_by_symbol(capture_dir: Path) -> dict[str, list[Path]]:
    """``btcusdt_20240808.gz`` + ``btcusdt_20240809.gz`` -> ``{"BTCUSDT": [both, in name (= time) order]}``."""
    files = sorted(p for p in capture_dir.iterdir() if p.is_file() and p.name.endswith((".gz", ".txt")))
    by_symbol: dict[str, list[Path]] = {}
    for path in files:
        by_symbol.setdefault(path.name.split("_", 1)[0].split(".", 1)[0].upper(), []).append(path)
    if not by_symbol:
        raise FileNotFoundError(f"no Binance capture files (*.gz) in {capture_dir}")
    return by_symbol


def _lines(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            yield from handle


def _first_time_ms(paths: list[Path]) -> int | None:
    """Exchange time of the first message after the REST snapshot line (else the snapshot's local time)."""
    fallback = None
    for line in _lines(paths):
        stamp, _, payload = line.rstrip(b"\n").partition(b" ")
        if payload.startswith(_SNAPSHOT_PREFIX):
            fallback = int(stamp) // 1_000_000 if stamp.isdigit() else None
        elif fallback is not None and payload.startswith(_STREAM_PREFIX):
            data = orjson.loads(payload)["data"]
            exchange_ms = data.get("E") or data.get("T")
            if exchange_ms:
                return int(exchange_ms)
    return fallback


def capture_start(capture_dir: Path) -> datetime:
    """When the replay starts, in exchange time (the earliest over symbols): where a replay's event-time
    clock and the stream's warm-up start."""
    times = [t for paths in capture_files_by_symbol(capture_dir).values() if (t := _first_time_ms(paths))]
    if not times:
        raise FileNotFoundError(f"no snapshot line in the capture {capture_dir}")
    return datetime.fromtimestamp(min(times) / 1000, UTC)


@dataclass
class _Book:
    """The venue's own book of one symbol, kept from the capture to answer REST depth requests."""

    bids: dict[str, float] = field(default_factory=dict)
    asks: dict[str, float] = field(default_factory=dict)
    last_update_id: int = 0

    @staticmethod
    def _apply(side: dict[str, float], levels: list[list[str]]) -> None:
        for price, qty in levels:
            if float(qty) == 0.0:
                side.pop(price, None)
            else:
                side[price] = float(qty)

    def reset(self, snapshot: dict[str, Any]) -> None:
        self.bids, self.asks = {}, {}
        self._apply(self.bids, snapshot["bids"])
        self._apply(self.asks, snapshot["asks"])
        self.last_update_id = int(snapshot["lastUpdateId"])

    def apply(self, diff: dict[str, Any]) -> None:
        if int(diff["u"]) <= self.last_update_id:
            return  # older than the book, as Binance's own sync rule says
        self._apply(self.bids, diff["b"])
        self._apply(self.asks, diff["a"])
        self.last_update_id = int(diff["u"])

    def snapshot(self, limit: int) -> dict[str, Any]:
        bids = sorted(self.bids.items(), key=lambda kv: -float(kv[0]))[:limit]
        asks = sorted(self.asks.items(), key=lambda kv: float(kv[0]))[:limit]
        return {
            "lastUpdateId": self.last_update_id,
            "bids": [[p, f"{q:.8f}"] for p, q in bids],
            "asks": [[p, f"{q:.8f}"] for p, q in asks],
        }


@dataclass
class _Subscriber:
    connection: ServerConnection
    streams: set[str] = field(default_factory=set)
    hung: bool = False


class ReplayServer:
    """See the module docstring. Use as ``async with ReplayServer(dir) as server: server.ws_url ...``."""

    def __init__(self, capture_dir: Path, *, speed: float = 1.0, loop_forever: bool = False):
        if speed < 0:
            raise ValueError(f"replay speed must be >= 0, got {speed}")
        self.capture_dir = capture_dir
        self.speed = speed
        self.loop_forever = loop_forever
        self.files = capture_files_by_symbol(capture_dir)
        self.books: dict[str, _Book] = {symbol: _Book() for symbol in self.files}
        self.sent = 0  # messages sent (all connections)
        self.connections_opened = 0
        self.finished = asyncio.Event()
        self._subscribers: dict[ServerConnection, _Subscriber] = {}
        self._has_listener = asyncio.Event()
        self._server: Server | None = None
        self._pump_task: asyncio.Task[None] | None = None

    # ---- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> ReplayServer:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request, ping_interval=None,
            max_queue=None, compression=None,  # Binance's market streams are not permessage-deflate'd
        )
        self._pump_task = asyncio.create_task(self._pump(), name="replay-pump")
        return self

    async def stop(self) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> ReplayServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def ws_url(self) -> str:
        """Base for ccxt's ``urls['api']['ws']['spot']`` (ccxt appends ``/<stream index>``)."""
        return f"ws://127.0.0.1:{self.port}/stream"

    @property
    def rest_url(self) -> str:
        """Base for ccxt's ``urls['api']['public']``."""
        return f"http://127.0.0.1:{self.port}/api/v3"

    def ccxt_urls(self) -> dict[str, Any]:
        """Overrides for a ccxt(.pro) binance client's ``urls['api']`` so it talks to this server."""
        return {"public": self.rest_url, "private": self.rest_url, "ws": {"spot": self.ws_url}}

    # ---- faults ---------------------------------------------------------------------------------
    def drop_connections(self) -> int:
        """Abort every open connection without a close frame (a network drop). Returns how many."""
        dropped = 0
        for connection in list(self._subscribers):
            connection.transport.abort()
            dropped += 1
        return dropped

    def hang_connections(self) -> int:
        """Stop sending on every open connection while keeping it open. Returns how many."""
        for subscriber in self._subscribers.values():
            subscriber.hung = True
        return len(self._subscribers)

    @property
    def live_connections(self) -> int:
        return sum(1 for s in self._subscribers.values() if not s.hung)

    # ---- REST -----------------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        url = urlparse(request.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        status, body = self._rest(url.path, query)
        response = connection.respond(status, orjson.dumps(body).decode())
        headers = Headers(response.headers)
        headers["Content-Type"] = "application/json"
        return Response(response.status_code, response.reason_phrase, headers, response.body)

    def _rest(self, path: str, query: dict[str, str]) -> tuple[HTTPStatus, Any]:
        if path == "/api/v3/ping":
            return HTTPStatus.OK, {}
        if path == "/api/v3/time":
            return HTTPStatus.OK, {"serverTime": int(time.time() * 1000)}
        if path == "/api/v3/exchangeInfo":
            return HTTPStatus.OK, {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [],
                "symbols": [_symbol_info(s) for s in sorted(self.files)],
            }
        if path == "/api/v3/depth":
            book = self.books.get(query.get("symbol", ""))
            if book is None:
                return HTTPStatus.BAD_REQUEST, {"code": -1121, "msg": "Invalid symbol."}
            return HTTPStatus.OK, book.snapshot(int(query.get("limit", "1000")))
        return HTTPStatus.NOT_FOUND, {"code": -1, "msg": f"no route {path}"}

    # ---- WebSocket ------------------------------------------------------------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        subscriber = _Subscriber(connection)
        self._subscribers[connection] = subscriber
        self.connections_opened += 1
        try:
            async for raw in connection:
                request = orjson.loads(raw)
                method, request_id = request.get("method"), request.get("id")
                params = [str(p).lower() for p in request.get("params", [])]
                if method == "SUBSCRIBE":
                    subscriber.streams.update(params)
                    self._has_listener.set()
                elif method == "UNSUBSCRIBE":
                    subscriber.streams.difference_update(params)
                if not subscriber.hung:
                    await connection.send(orjson.dumps({"result": None, "id": request_id}).decode())
        except ConnectionClosed:
            pass
        finally:
            self._subscribers.pop(connection, None)
            if not any(s.streams and not s.hung for s in self._subscribers.values()):
                self._has_listener.clear()

    def _events(self) -> Iterator[tuple[int, str, bytes]]:
        """(receive ns, symbol, raw JSON) of every symbol, merged by receive time, from each snapshot on."""

        def one(symbol: str) -> Iterator[tuple[int, str, bytes]]:
            started = False
            for line in _lines(self.files[symbol]):
                stamp, _, payload = line.rstrip(b"\n").partition(b" ")
                if payload.startswith(_SNAPSHOT_PREFIX):
                    self.books[symbol].reset(orjson.loads(payload))
                    started = True
                    continue
                if started and payload.startswith(_STREAM_PREFIX):
                    yield int(stamp), symbol, payload

        return heapq.merge(*(one(s) for s in sorted(self.files)), key=lambda e: e[0])

    async def _pump(self) -> None:
        while True:
            await self._replay_once()
            if not self.loop_forever:
                self.finished.set()
                return
            self.books = {symbol: _Book() for symbol in self.files}

    async def _replay_once(self) -> None:
        first_ns: int | None = None
        wall_start = 0.0
        paused_for = 0.0
        sent_since_yield = 0
        for recv_ns, symbol, payload in self._events():
            stream_end = payload.index(b'"', len(_STREAM_PREFIX))
            stream = payload[len(_STREAM_PREFIX) : stream_end].decode()
            if "@depth" in stream:
                self.books[symbol].apply(orjson.loads(payload)["data"])
            if not self._has_listener.is_set():
                waited = time.monotonic()
                await self._has_listener.wait()
                paused_for += time.monotonic() - waited
            if first_ns is None:
                first_ns, wall_start = recv_ns, time.monotonic()
            if self.speed > 0:
                due = wall_start + paused_for + (recv_ns - first_ns) / 1e9 / self.speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                    sent_since_yield = 0
            text = payload.decode()
            for subscriber in list(self._subscribers.values()):
                if subscriber.hung or stream not in subscriber.streams:
                    continue
                try:
                    await subscriber.connection.send(text)
                    self.sent += 1
                except ConnectionClosed:
                    continue
            sent_since_yield += 1
            if sent_since_yield >= 64:  # let the clients and the REST handler run
                sent_since_yield = 0
                await asyncio.sleep(0)


def _symbol_info(exchange_id: str) -> dict[str, Any]:
    """exchangeInfo entry as Binance spot writes it (enough for ccxt's parse_market)."""
    quote = next(q for q in ("FDUSD", "USDT", "USDC", "BTC", "ETH", "BNB") if exchange_id.endswith(q))
    return spot_symbol_info(exchange_id[: -len(quote)], quote)


async def _serve_until_done(capture_dir: Path, speed: float, linger_s: float) -> None:
    async with ReplayServer(capture_dir, speed=speed) as server:
        print(f"PORT {server.port}", flush=True)
        await server.finished.wait()
        print(f"SENT {server.sent}", flush=True)
        await asyncio.sleep(linger_s)  # let clients drain before the sockets close


def main(argv: list[str] | None = None) -> None:
    """``python -m serving.stream.replay CAPTURE_DIR [--speed S]``: serve once, print PORT, exit when done."""
    import argparse

    parser = argparse.ArgumentParser(description="Replay a Binance capture as a local Binance venue.")
    parser.add_argument("capture_dir", type=Path)
    parser.add_argument("--speed", type=float, default=1.0, help="x recorded time; 0 = as fast as possible")
    parser.add_argument("--linger", type=float, default=30.0, help="seconds to stay up after the last message")
    args = parser.parse_args(argv)
    asyncio.run(_serve_until_done(args.capture_dir, args.speed, args.linger))


if __name__ == "__main__":
    main()
