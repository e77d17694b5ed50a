"""The stream as one start/stop unit for the app's lifespan (and for bench.live).

`StreamService.start()`:
- ``stream.source=replay``: starts a `ReplayServer` on 127.0.0.1 (ephemeral port) over
  `stream.replay_capture_dir` and points the ccxt.pro client at it; the watched symbols are
  `stream.symbols`, else the captured symbols.
- ``stream.source=ccxt``: the venue itself; the watched symbols are `stream.symbols`, else the universe.
Before the feed starts, the pipeline is warmed with each symbol's recent closed bars before `start`
(`serving.stream.warm`; `start` is the capture's first message in a replay, now when live). Then it runs
the `MarketFeed` (in a process of its own, `serving.stream.feed_process`, unless ``stream.feed_in_process`` or
a replay at speed 0) into a `StreamPipeline` and recomputes the hot score every
`stream.hot_interval_s` seconds (published on `/ws/signals` as a ``hot`` message and kept for `GET /hot`).

With a `runner` (`serving.stream.runner.StreamThread`), `start`/`stop` run on the runner's loop and
`rank_now` called from another thread (the API's `/hot`) is computed there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pipelines.config import Settings
from serving.messages import HotMessage, StatusMessage
from serving.stream.feed import MarketEvent, MarketFeed
from serving.stream.hot import HotRanking
from serving.stream.pipeline import StreamPipeline
from serving.stream.replay import ReplayServer, capture_files_by_symbol
from serving.ws_hub import SignalHub

if TYPE_CHECKING:
    from serving.stream.feed_process import FeedProcess
    from serving.stream.replay_process import ReplayProcess
    from serving.stream.runner import StreamThread

log = logging.getLogger(__name__)


def replay_symbols(settings: Settings) -> list[str]:
    """ccxt symbols of the capture files (``btcusdt_*.gz`` -> ``BTC/USDT``)."""
    from pipelines.marketdata.binance_capture import binance_symbol

    assert settings.stream.replay_capture_dir is not None
    files = capture_files_by_symbol(settings.stream.replay_capture_dir)
    return [binance_symbol(exchange_id, "spot") for exchange_id in files]


class StreamService:
    def __init__(
        self,
        settings: Settings,
        pipeline: StreamPipeline,
        hub: SignalHub | None = None,
        universe_symbols: list[str] | None = None,
        replay: ReplayServer | ReplayProcess | None = None,
        *,
        start: datetime | None = None,
        runner: StreamThread | None = None,
    ):
        self.settings = settings
        self.pipeline = pipeline
        self.hub = hub
        self.universe_symbols = universe_symbols or []
        self.replay = replay  # a started server to use (the app starts it early for the paper broker)
        self._owns_replay = replay is None
        self.start_time = start
        self.runner = runner
        self.feed: MarketFeed | FeedProcess | None = None
        self._hot_task: asyncio.Task[None] | None = None

    @property
    def hot(self) -> HotRanking:
        return self.pipeline.hot.latest

    async def start(self) -> None:
        cfg = self.settings.stream
        urls = None
        if cfg.source == "replay":
            assert cfg.replay_capture_dir is not None  # validated by StreamConfig
            if self.replay is None:
                self.replay = await ReplayServer(cfg.replay_capture_dir, speed=cfg.replay_speed).start()
            urls = self.replay.ccxt_urls()
            symbols = list(cfg.symbols) or replay_symbols(self.settings)
        else:
            symbols = list(cfg.symbols) or sorted(self.universe_symbols)
        if self.start_time is None:
            if cfg.source == "replay":
                from serving.stream.replay import capture_start

                assert cfg.replay_capture_dir is not None
                self.start_time = await asyncio.to_thread(capture_start, cfg.replay_capture_dir)
            else:
                self.start_time = datetime.now(UTC)
        await asyncio.to_thread(self.pipeline.warm, symbols, self.start_time)
        feed_class: type[MarketFeed] | type[FeedProcess] = MarketFeed
        if cfg.feed_in_own_process:
            from serving.stream.feed_process import FeedProcess

            feed_class = FeedProcess
        self.feed = feed_class(
            self.settings.venue,
            symbols,
            self._on_event,
            cfg,
            urls=urls,
            status=self._on_status,
            quote=self.pipeline.on_quote,
            timeout_s=self.settings.data.request_timeout_s,
        )
        await self.feed.start()
        self._hot_task = asyncio.create_task(self._hot_loop(), name="hot-score")
        log.info("stream started: %s %s", cfg.source, symbols)

    def _on_event(self, event: MarketEvent, received: float) -> None:
        self.pipeline.on_event(event, received)

    def _on_status(self, source: str, connected: bool, detail: str) -> None:
        if self.hub is not None:
            self.hub.publish(StatusMessage(source=source, connected=connected, detail=detail, at=datetime.now(UTC)))

    async def _hot_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stream.hot_interval_s)
            self.rank_now()

    def rank_now(self) -> HotRanking:
        if self.runner is not None and not self.runner.on_thread():
            return self.runner.call(self._rank_async(), timeout_s=2.0)  # the board lives on the stream thread
        ranking = self.pipeline.hot.rank()
        if self.hub is not None:
            self.hub.publish(HotMessage(ranking=ranking))
        return ranking

    async def _rank_async(self) -> HotRanking:
        return self.rank_now()

    async def stop(self) -> None:
        if self._hot_task is not None:
            self._hot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._hot_task
        if self.feed is not None:
            await self.feed.stop()
        if self.replay is not None and self._owns_replay:
            await self.replay.stop()
        await asyncio.to_thread(self.pipeline.close)
