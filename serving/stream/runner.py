"""The stream on its own thread and event loop, and the serving tier's stream + engine lifespan.

Why a thread of its own: the stream handles hundreds to thousands of market events a second (ccxt's
parsing, the book sync, the incremental features, scoring). On the API's event loop every one of them
delays the requests queued behind it (measured: `/signal` p99 7.6 ms -> 12.5 ms at 500 req/s, 255 ms
at 2,000 req/s). On its own loop, the API loop does no stream work; what crosses over is cheap and
thread-safe: cache rows (a dict assignment), `SignalHub.publish` (serialized on the stream thread,
handed to the API loop with `call_soon_threadsafe`), `engine.submit` (a queue), metrics. The market
feed itself (ccxt.pro's WebSockets, parsing and book sync, most of the stream's interpreter time) runs in
a process of its own (`serving.stream.feed_process`) unless ``stream.feed_in_process``: the stream thread
only decodes its finished events, so the feed does not take turns with the API for the GIL.

`serving_stream(app, settings, ...)` is what the app's lifespan enters. With ``stream.source=off`` it
only runs the trading engine. Otherwise, in order: the stream thread; for ``replay``, the replayed venue
(its own process, `serving.stream.replay_process`, when paced; on the stream thread's loop with
``stream.replay_in_process`` or at ``replay_speed=0``, where "as fast as the client reads" needs the
client's back-pressure on the same loop) and the engine on the replay's event time
(`serving.engine.ReplayClock` starting at the capture's first message, so book ages, TTLs and pauses run
on market time); the trading engine
(`serving.engine.trading_lifespan`); the stream service (warm-up, then the feed). It publishes the
service as `app.state.stream` and stops everything in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from pipelines.config import Settings
from pipelines.trading.config import system_clock
from serving.engine import ReplayClock, trading_lifespan
from serving.engine.leadership import follow_leader

log = logging.getLogger(__name__)
T = TypeVar("T")


class StreamThread:
    """A daemon thread running its own asyncio event loop until `stop()`."""

    def __init__(self, name: str = "alphatide-stream"):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready = threading.Event()
        self.ident: int | None = None

    def start(self) -> StreamThread:
        self.thread.start()
        self._ready.wait()
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.ident = threading.get_ident()
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def on_thread(self) -> bool:
        return threading.get_ident() == self.ident

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the stream's loop and await its result from the caller's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run `coro` on the stream's loop and wait for it (blocking; from another thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout_s)


@asynccontextmanager
async def serving_stream(
    app: Any,
    settings: Settings,
    *,
    universe_symbols: Callable[[], list[str]],
    attach: Callable[[], Any] | None = None,
    detach: Callable[[], None] | None = None,
    **pipeline_parts: Any,
) -> AsyncIterator[None]:
    """The trading engine and (unless ``stream.source=off``) the stream; see the module docstring.

    `pipeline_parts` are `StreamPipeline`'s keyword arguments (scorer, cache, hub, pusher, confidence);
    `universe_symbols` is called off the event loop when the stream needs the universe. `attach` runs
    once the engine has started and returns what the stream feeds (the engine, or the health monitor's
    tee in front of it; default `app.state.trading_engine`); `detach` runs before the engine stops.
    """
    app.state.stream = None

    def _attach() -> Any:  # with replicas, a sink that follows the leader lease (serving.engine.leadership)
        return follow_leader(app, attach or (lambda: getattr(app.state, "trading_engine", None)), detach)

    if settings.stream.source == "off":
        async with trading_lifespan(app, settings):
            _attach()
            try:
                yield
            finally:
                if detach is not None:
                    detach()
        return
    from serving.stream.pipeline import StreamPipeline
    from serving.stream.replay import ReplayServer, capture_start
    from serving.stream.replay_process import ReplayProcess
    from serving.stream.service import StreamService

    runner = StreamThread().start()
    replay: ReplayServer | ReplayProcess | None = None
    try:
        start, clock, engine_settings = datetime.now(UTC), system_clock, settings
        if settings.stream.source == "replay":
            capture = settings.stream.replay_capture_dir
            assert capture is not None  # validated by StreamConfig
            if settings.stream.replay_in_process or settings.stream.replay_speed == 0:
                replay = await runner.run(ReplayServer(capture, speed=settings.stream.replay_speed).start())
            else:  # the venue in its own process (serving.stream.replay_process)
                replay = await ReplayProcess(capture, speed=settings.stream.replay_speed).start()
            start = await asyncio.to_thread(capture_start, capture)
            clock = ReplayClock(start)
            if settings.engine.mode == "paper" and settings.engine.api_url is None:
                # The paper broker reads instrument metadata from the venue being replayed.
                engine = settings.engine.model_copy(update={"api_url": f"http://127.0.0.1:{replay.port}"})
                engine_settings = settings.model_copy(update={"engine": engine})
        async with trading_lifespan(app, engine_settings, clock=clock):
            pipeline = StreamPipeline(settings, engine=_attach(), **pipeline_parts)
            symbols = await asyncio.to_thread(universe_symbols)
            stream = StreamService(settings, pipeline, pipeline_parts.get("hub"), symbols, replay=replay,
                                   start=start, runner=runner)
            await runner.run(stream.start())
            app.state.stream = stream
            try:
                yield
            finally:
                app.state.stream = None
                await runner.run(stream.stop())
                if detach is not None:
                    detach()
    finally:
        if replay is not None:
            with contextlib.suppress(Exception):
                await (runner.run(replay.stop()) if isinstance(replay, ReplayServer) else replay.stop())
        runner.stop()
