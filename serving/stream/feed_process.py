"""The market feed (ccxt.pro WebSockets, the venue's parsing, the book sync) in a process of its own.

Why: the serving process's threads share one GIL. Sampled with the interpreter lock held (py-spy --gil,
500 `/signal` req/s, the replayed Binance capture at live pace), ccxt's message handling, not counting
the pipeline it calls, was about 40% of the stream thread's samples (142 of 373; the pipeline 67), and
`/signal`'s p99 rose from 1.0 to 2.4 ms with the feed on the stream thread
(a quiet host, bench.serve). In its own process that work runs beside the API on the other core instead
of taking turns with it; the serving process only decodes finished events and runs the pipeline on them.

`FeedProcess` has `MarketFeed`'s surface (`start`, `stop`, `connected`, `reconnects`, `resyncs`) and calls
the same sinks, in the same order, on the caller's event loop (the stream thread's). The child is
``python -m serving.stream.feed_process``: it reads its job as one JSON line on stdin (venue, symbols, the
ccxt URL overrides, `StreamConfig`, timeout), runs a `MarketFeed` and writes frames on its stdout, each a
4-byte big-endian length and a pickled tuple:

- ``("event", MarketEvent, received)``: ``received`` is the child's `time.perf_counter()` at arrival; on
  Linux that is CLOCK_MONOTONIC, the same clock in both processes, so latency metrics stay true;
- ``("quote", symbol, bid, bid_qty, ask, ask_qty, ts_us)``;
- ``("status", source, connected, detail, reconnects, resyncs)``;
- ``("beat", reconnects, resyncs)`` once a second and before each book snapshot (a resync's count is
  known before its snapshot is).

The child dies with the thread that started it (PR_SET_PDEATHSIG) and exits when its stdout closes. If it
exits on its own, every source is reported disconnected ("feed process exited ..."), and it is started
again after the stream's reconnect backoff (doubling up to `backoff_max_s`); `restarts` counts that.
The prometheus counters of the feed (`STREAM_EVENTS`, `STREAM_RECONNECTS`, `WEBSOCKET_CONNECTED`) are
kept by the serving process from these frames, since the child's registry is never scraped.
"""

from __future__ import annotations

if __name__ == "__main__":  # the child: before anything imports ccxt, its exchanges on demand (lean_imports)
    from serving.lean_imports import ccxt_exchanges_on_demand

    ccxt_exchanges_on_demand()

import asyncio
import contextlib
import json
import logging
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from pipelines.config import StreamConfig
from pipelines.domain.marketdata import BookDiff, BookSnapshot, Trade
from serving.metrics import STREAM_EVENTS, STREAM_RECONNECTS, WEBSOCKET_CONNECTED
from serving.stream.child_process import die_with_parent, terminate
from serving.stream.feed import EventSink, QuoteSink, StatusSink, check_feed

log = logging.getLogger(__name__)
_LENGTH = struct.Struct(">I")
_KINDS = ("trades", "book")


class FeedProcess:
    """`MarketFeed` run in a child process; see the module docstring. Start and stop on one event loop."""

    def __init__(
        self,
        venue: str,
        symbols: list[str],
        sink: EventSink,
        config: StreamConfig,
        *,
        urls: dict[str, Any] | None = None,
        status: StatusSink | None = None,
        quote: QuoteSink | None = None,
        timeout_s: float = 10.0,
    ):
        check_feed(venue, symbols)
        self.venue, self.symbols, self.config = venue, list(symbols), config
        self._sink, self._status, self._quote = sink, status, quote
        self._job = json.dumps({
            "venue": venue, "symbols": self.symbols, "urls": urls, "timeout_s": timeout_s,
            "config": config.model_dump(mode="json"),
        })
        self._connected: dict[str, bool] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        self._events = {
            Trade: STREAM_EVENTS.labels(kind="trade"),
            BookDiff: STREAM_EVENTS.labels(kind="book_diff"),
            BookSnapshot: STREAM_EVENTS.labels(kind="book_snapshot"),
        }
        self.reconnects = 0
        self.resyncs = 0
        self.restarts = 0

    @property
    def connected(self) -> dict[str, bool]:
        """``{"binance:trades": True, "binance:book": False}``: whether each source is receiving."""
        return {f"{self.venue}:{kind}": self._connected.get(f"{self.venue}:{kind}", False) for kind in _KINDS}

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        reader = await self._spawn()
        self._task = asyncio.create_task(self._supervise(reader), name="feed-process")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(terminate, self._process)
        for source, up in list(self._connected.items()):
            if up:
                self._set_connected(source, False, "stopped")

    async def _spawn(self) -> asyncio.StreamReader:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving.stream.feed_process"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=die_with_parent,
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(self._job.encode() + b"\n")
        process.stdin.close()
        self._process = process
        reader = asyncio.StreamReader(limit=2**26)
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), process.stdout)
        return reader

    async def _supervise(self, reader: asyncio.StreamReader) -> None:
        delay = self.config.backoff_initial_s
        while True:
            await self._read(reader)
            code = await asyncio.to_thread(self._wait_exit)
            for source in self.connected:
                self._set_connected(source, False, f"feed process exited (code {code}); restarting")
            log.warning("the feed process exited with code %s; starting it again in %.2f s", code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.backoff_max_s)
            self.restarts += 1
            reader = await self._spawn()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """Dispatch frames until the child's stdout ends."""
        while True:
            try:
                head = await reader.readexactly(_LENGTH.size)
                frame = pickle.loads(await reader.readexactly(_LENGTH.unpack(head)[0]))
            except asyncio.IncompleteReadError:
                return
            self._dispatch(frame)

    def _dispatch(self, frame: tuple[Any, ...]) -> None:
        kind = frame[0]
        if kind == "event":
            event = frame[1]
            self._events[type(event)].inc()
            self._sink(event, frame[2])
        elif kind == "quote":
            if self._quote is not None:
                self._quote(*frame[1:])
        elif kind == "status":
            _, source, connected, detail, reconnects, resyncs = frame
            if reconnects > self.reconnects:
                STREAM_RECONNECTS.labels(source=source).inc(reconnects - self.reconnects)
            self.reconnects, self.resyncs = reconnects, resyncs
            self._set_connected(source, connected, detail)
        elif kind == "beat":
            self.reconnects, self.resyncs = frame[1], frame[2]

    def _set_connected(self, source: str, connected: bool, detail: str) -> None:
        self._connected[source] = connected
        WEBSOCKET_CONNECTED.labels(source=source).set(1 if connected else 0)
        if self._status is not None:
            self._status(source, connected, detail)

    def _wait_exit(self) -> int | None:
        assert self._process is not None
        try:
            return self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stdout closed but still running: not a feed any more
            self._process.kill()
            return self._process.wait()


class _FrameWriter:
    """The child's end: frames on a private copy of stdout (fd 1 itself is pointed at stderr, so a stray
    print from a library cannot corrupt the stream). A closed pipe (the serving process gone) ends it."""

    def __init__(self) -> None:
        self._fd = os.dup(1)
        os.dup2(2, 1)

    def send(self, frame: tuple[Any, ...]) -> None:
        body = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        data = memoryview(_LENGTH.pack(len(body)) + body)
        while data:
            try:
                written = os.write(self._fd, data)
            except BrokenPipeError:
                os._exit(0)  # nobody reads the feed any more
            data = data[written:]


async def _run_child(job: dict[str, Any], out: Callable[[tuple[Any, ...]], None]) -> None:
    from serving.stream.feed import MarketFeed

    feed: MarketFeed | None = None

    def status(source: str, connected: bool, detail: str) -> None:
        out(("status", source, connected, detail, feed.reconnects if feed else 0, feed.resyncs if feed else 0))

    def event(event: Any, received: float) -> None:
        if isinstance(event, BookSnapshot) and feed is not None:  # a resync: its counters come first
            out(("beat", feed.reconnects, feed.resyncs))
        out(("event", event, received))

    feed = MarketFeed(
        job["venue"], job["symbols"], event,
        StreamConfig.model_validate(job["config"]), urls=job["urls"], status=status,
        quote=lambda *quote: out(("quote", *quote)), timeout_s=job["timeout_s"],
    )
    await feed.start()
    while True:
        await asyncio.sleep(1.0)
        out(("beat", feed.reconnects, feed.resyncs))


def main() -> None:
    """``python -m serving.stream.feed_process`` (started by `FeedProcess`): job on stdin, frames on stdout."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="feed-process %(levelname)s %(message)s")
    job = json.loads(sys.stdin.readline())
    writer = _FrameWriter()
    asyncio.run(_run_child(job, writer.send))


if __name__ == "__main__":
    main()
