"""The ccxt.pro binance client against the local replay server: events in order, reconnects after faults.

The replay server speaks Binance's own protocol (SUBSCRIBE, combined-stream frames, REST depth and
exchangeInfo); the client is the real `ccxt.pro.binance` (through `HookedBinance`), only its URLs differ.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pipelines.config import StreamConfig
from pipelines.domain.marketdata import BookDiff, BookSnapshot, Trade
from serving.stream.feed import MarketEvent, MarketFeed
from serving.stream.replay import ReplayServer

pytestmark = [pytest.mark.integration, pytest.mark.realdata]
SYMBOLS = ["BTC/USDT", "ETH/USDT"]


class Recorder:
    def __init__(self) -> None:
        self.events: list[MarketEvent] = []
        self.status: list[tuple[float, str, bool, str]] = []

    def __call__(self, event: MarketEvent, received: float) -> None:
        self.events.append(event)

    def on_status(self, source: str, connected: bool, detail: str) -> None:
        self.status.append((time.monotonic(), source, connected, detail))

    def count(self, kind: type) -> int:
        return sum(1 for e in self.events if isinstance(e, kind))


async def _until(predicate, timeout_s: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def _run_feed(capture: Path, scenario) -> Recorder:  # type: ignore[no-untyped-def]
    recorder = Recorder()

    async def main() -> None:
        async with ReplayServer(capture, speed=10) as server:
            feed = MarketFeed(
                "binance", SYMBOLS, recorder, StreamConfig(), urls=server.ccxt_urls(), status=recorder.on_status
            )
            await feed.start()
            try:
                await scenario(server, feed, recorder)
            finally:
                await feed.stop()

    asyncio.run(main())
    return recorder


def test_trades_and_synced_books_arrive_in_update_id_order(shared_data: Path) -> None:
    async def scenario(server: ReplayServer, feed: MarketFeed, rec: Recorder) -> None:
        await _until(lambda: rec.count(Trade) >= 300 and rec.count(BookDiff) >= 100, 20)

    rec = _run_feed(shared_data / "binance_ticks" / "spot", scenario)

    assert {e.symbol for e in rec.events if isinstance(e, Trade)} == set(SYMBOLS)
    for symbol in SYMBOLS:
        book_events = [e for e in rec.events if e.symbol == symbol and isinstance(e, BookSnapshot | BookDiff)]
        assert isinstance(book_events[0], BookSnapshot), "a book starts from its REST snapshot"
        last = book_events[0].last_update_id
        assert last is not None
        for diff in book_events[1:]:
            assert isinstance(diff, BookDiff)
            assert diff.first_update_id <= last + 1 <= diff.final_update_id, "gap-free, as Binance documents"
            last = diff.final_update_id
    trade = next(e for e in rec.events if isinstance(e, Trade))
    assert trade.venue == "binance" and trade.aggressor_side in {"buy", "sell"} and trade.ts_us > 1.7e15


def test_dropped_connections_reconnect_and_resume(shared_data: Path) -> None:
    resumed_after: list[float] = []

    async def scenario(server: ReplayServer, feed: MarketFeed, rec: Recorder) -> None:
        await _until(lambda: rec.count(Trade) >= 50, 20)
        opened = server.connections_opened
        trades_before = rec.count(Trade)
        assert server.drop_connections() == 2 * len(SYMBOLS) * 1  # one trade + one book socket per symbol
        resumed_after.append(await _until(lambda: rec.count(Trade) > trades_before + 50, 10))
        assert server.connections_opened >= opened + 2 * len(SYMBOLS)

    rec = _run_feed(shared_data / "binance_ticks" / "spot", scenario)

    assert resumed_after[0] < 3.0
    assert any(not connected for _, _, connected, _ in rec.status), "the drop was reported"
    ids = [int(e.trade_id) for e in rec.events if isinstance(e, Trade) and e.symbol == "BTC/USDT"]
    assert ids == sorted(ids) and len(ids) == len(set(ids)), "trades resume in order, without duplicates"


def test_silent_connection_is_replaced_within_3_s(shared_data: Path) -> None:
    timings: dict[str, float] = {}

    async def scenario(server: ReplayServer, feed: MarketFeed, rec: Recorder) -> None:
        await _until(lambda: rec.count(Trade) >= 50 and rec.count(BookDiff) >= 20, 20)
        server.hang_connections()  # open but mute: only the silence watchdog can tell
        hung_at = time.monotonic()
        await asyncio.sleep(0.3)
        last_event = len(rec.events)
        timings["resumed"] = await _until(lambda: len(rec.events) > last_event + 50, 10) + 0.3
        timings["hung_at"] = hung_at

    rec = _run_feed(shared_data / "binance_ticks" / "spot", scenario)

    assert timings["resumed"] < 3.0, f"resumed {timings['resumed']:.2f} s after the connections went silent"
    reconnects = [s for s in rec.status if not s[2] and "no message" in s[3]]
    assert reconnects, "the watchdog reported the silence"
