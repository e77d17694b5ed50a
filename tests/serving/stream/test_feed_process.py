"""The market feed in its own process (`FeedProcess`) against the local replay server: the same events, in
order, on the caller's loop; the parent's metrics; a crashed child restarted; nothing left running."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from pipelines.config import StreamConfig
from pipelines.domain.marketdata import BookDiff, BookSnapshot, Trade
from serving.metrics import STREAM_EVENTS
from serving.stream.feed_process import FeedProcess
from serving.stream.replay import ReplayServer
from tests.serving.stream.test_feed import SYMBOLS, Recorder, _until

pytestmark = [pytest.mark.integration, pytest.mark.realdata]


class _Quotes:
    def __init__(self) -> None:
        self.quotes: list[tuple[str, float, float, float, float, int]] = []

    def __call__(self, symbol: str, bid: float, bid_qty: float, ask: float, ask_qty: float, ts_us: int) -> None:
        self.quotes.append((symbol, bid, bid_qty, ask, ask_qty, ts_us))


def _run(capture: Path, scenario) -> tuple[Recorder, _Quotes, list[float]]:  # type: ignore[no-untyped-def]
    recorder, quotes, lags = Recorder(), _Quotes(), []

    def sink(event, received: float) -> None:  # type: ignore[no-untyped-def]
        lags.append(time.perf_counter() - received)  # the child's clock read in this process
        recorder(event, received)

    async def main() -> None:
        async with ReplayServer(capture, speed=10) as server:
            feed = FeedProcess("binance", SYMBOLS, sink, StreamConfig(), urls=server.ccxt_urls(),
                               status=recorder.on_status, quote=quotes)
            await feed.start()
            try:
                await scenario(server, feed, recorder)
            finally:
                await feed.stop()

    asyncio.run(main())
    return recorder, quotes, lags


def _trade_count() -> float:
    return STREAM_EVENTS.labels(kind="trade")._value.get()  # type: ignore[attr-defined,no-any-return]


def test_events_arrive_in_update_id_order_from_the_child_process(shared_data: Path) -> None:
    # Arrange
    counted_before = _trade_count()
    pids: list[int] = []

    async def scenario(server: ReplayServer, feed: FeedProcess, rec: Recorder) -> None:
        await _until(lambda: rec.count(Trade) >= 300 and rec.count(BookDiff) >= 100, 30)
        assert feed.pid is not None and feed.pid != os.getpid()
        pids.append(feed.pid)
        # a resync at the start (ccxt's checksum check) reports the book down for a moment
        await _until(lambda: feed.connected == {"binance:trades": True, "binance:book": True}, 10)

    # Act
    rec, quotes, lags = _run(shared_data / "binance_ticks" / "spot", scenario)

    # Assert
    assert {e.symbol for e in rec.events if isinstance(e, Trade)} == set(SYMBOLS)
    for symbol in SYMBOLS:
        book = [e for e in rec.events if e.symbol == symbol and isinstance(e, BookSnapshot | BookDiff)]
        assert isinstance(book[0], BookSnapshot), "a book starts from its REST snapshot"
        last: int | None = None
        for event in book:  # after a resync (ccxt's checksum/gap check) the book restarts from a new snapshot
            if isinstance(event, BookSnapshot):
                last = event.last_update_id
                continue
            assert last is not None
            assert event.first_update_id <= last + 1 <= event.final_update_id, "gap-free, as Binance documents"
            last = event.final_update_id
        ids = [int(e.trade_id) for e in rec.events if isinstance(e, Trade) and e.symbol == symbol]
        assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert quotes.quotes and all(bid > 0 and ask > 0 for _, bid, _, ask, _, _ in quotes.quotes)
    assert sum(bid < ask for _, bid, _, ask, _, _ in quotes.quotes) >= 0.99 * len(quotes.quotes)
    assert min(lags) >= 0 and max(lags) < 5.0, "`received` is on this process's perf_counter clock"
    assert _trade_count() - counted_before == rec.count(Trade), "the serving process counts the child's events"
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)  # stop() left no feed process behind


def test_a_killed_feed_process_is_reported_and_started_again(shared_data: Path) -> None:
    # Arrange
    seen: dict[str, int] = {}

    async def scenario(server: ReplayServer, feed: FeedProcess, rec: Recorder) -> None:
        await _until(lambda: rec.count(Trade) >= 50, 30)
        first = feed.pid
        assert first is not None
        trades_before = rec.count(Trade)

        # Act
        os.kill(first, signal.SIGKILL)
        await _until(lambda: rec.count(Trade) > trades_before + 50, 30)
        seen.update(first=first, second=feed.pid or 0, restarts=feed.restarts)

    rec, _, _ = _run(shared_data / "binance_ticks" / "spot", scenario)

    # Assert
    assert seen["restarts"] == 1 and seen["second"] not in (0, seen["first"])
    exits = [s for s in rec.status if not s[2] and "feed process exited" in s[3]]
    assert {s[1] for s in exits} == {"binance:trades", "binance:book"}, "both sources reported down"
    assert rec.status[-1][2] is False and rec.status[-1][3] == "stopped"
    assert any(s[2] for s in rec.status if s[0] > exits[0][0]), "and up again after the restart"


def test_the_feed_runs_in_its_own_process_unless_asked_or_replayed_as_fast_as_read(tmp_path: Path) -> None:
    assert StreamConfig().feed_in_own_process
    assert StreamConfig(source="ccxt").feed_in_own_process
    assert not StreamConfig(source="ccxt", feed_in_process=True).feed_in_own_process
    assert StreamConfig(source="replay", replay_capture_dir=tmp_path, replay_speed=1).feed_in_own_process
    assert not StreamConfig(source="replay", replay_capture_dir=tmp_path, replay_speed=0).feed_in_own_process
