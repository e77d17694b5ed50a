"""Live market data through ccxt.pro: trades and order books of the watched symbols, with reconnects.

`MarketFeed` runs one `watch_trades(symbol)` and one `watch_order_book(symbol)` loop per symbol on two
ccxt.pro clients (one for trades, one for books; ccxt opens one WebSocket per subscription). ccxt does the
venue protocol: subscribing, the REST snapshot + diff synchronisation of the book in update-id order, and
the resync after a gap. For Binance, the client is a subclass that also hands every raw event to the
`sink` as a domain event, in arrival order, from ccxt's own handlers:

- each trade message -> `Trade` (aggressor side from Binance's ``m``),
- each REST snapshot ccxt syncs from -> `BookSnapshot`, then each diff ccxt applies -> `BookDiff`
  (only diffs that pass ccxt's sequence checks, so the feature engine sees a gap-free sequence).

The sink runs synchronously inside ccxt's message handler (no queue, no copy): the event-to-signal path
is one function call deep. It must be quick (microseconds) and must not raise.

Reconnects: a connection error ends the watch with a ccxt `NetworkError` (or `ChecksumError` on a book
gap); the loop waits `backoff` (doubling from `backoff_initial_s` up to `backoff_max_s`) and watches again,
which reconnects and resubscribes. A connection that stays open but goes quiet is only caught by the
watchdog: when a client has received nothing for `silence_timeout_s`, all its connections are closed and
the watches reconnect, so a dead feed is replaced within silence_timeout_s + backoff (< 3 s by default,
SPEC 14).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import ccxt
import ccxt.pro as ccxtpro

from pipelines.config import StreamConfig
from pipelines.domain.marketdata import BookDiff, BookLevel, BookSnapshot, Trade
from pipelines.errors import OperatorError
from serving.metrics import STREAM_EVENTS, STREAM_RECONNECTS, WEBSOCKET_CONNECTED

log = logging.getLogger(__name__)

MarketEvent = Trade | BookDiff | BookSnapshot
# sink(event, received_perf_counter_s): called for every event, on the event loop, inside ccxt's handler.
EventSink = Callable[[MarketEvent, float], None]
# status(source, connected, detail): connection changes, for metrics and the /ws/signals status message.
StatusSink = Callable[[str, bool, str], None]
# quote(symbol, bid, bid_qty, ask, ask_qty, ts_us): best levels after each applied book diff.
QuoteSink = Callable[[str, float, float, float, float, int], None]


def _levels(raw: list[list[Any]]) -> tuple[BookLevel, ...]:
    return tuple(BookLevel(float(p), float(q)) for p, q, *_ in raw)


class HookedBinance(ccxtpro.binance):  # type: ignore[misc]  # ccxt ships no type information
    """ccxt.pro binance that also reports each trade, snapshot and applied diff to a sink."""

    def __init__(
        self,
        config: dict[str, Any],
        sink: EventSink,
        on_message: Callable[[], None],
        quote_sink: QuoteSink | None = None,
    ):
        super().__init__(config)
        self._sink = sink
        self._quote_sink = quote_sink
        self._on_message = on_message
        self._symbol_of: dict[str, str] = {}

    def _symbol(self, market_id: str) -> str:
        symbol = self._symbol_of.get(market_id)
        if symbol is None:
            symbol = self._symbol_of[market_id] = self.safe_market(market_id, None, None, "spot")["symbol"]
        return symbol

    def handle_message(self, client: Any, message: Any) -> Any:
        self._on_message()
        return super().handle_message(client, message)

    def handle_trade(self, client: Any, message: dict[str, Any]) -> None:
        received = time.perf_counter()
        super().handle_trade(client, message)
        if message.get("e") == "trade":
            STREAM_EVENTS.labels(kind="trade").inc()
            self._sink(
                Trade(
                    self.id,
                    self._symbol(message["s"]),
                    int(message["T"]) * 1000,
                    float(message["p"]),
                    float(message["q"]),
                    "sell" if message["m"] else "buy",  # m: the buyer is the maker => the taker sold
                    str(message["t"]),
                ),
                received,
            )

    def handle_order_book_message(self, client: Any, message: dict[str, Any], orderbook: Any) -> Any:
        received = time.perf_counter()
        result = super().handle_order_book_message(client, message, orderbook)
        STREAM_EVENTS.labels(kind="book_diff").inc()
        symbol = self._symbol(message["s"])
        ts_us = int(message["E"]) * 1000
        self._sink(
            BookDiff(
                self.id,
                symbol,
                ts_us,
                int(message["U"]),
                int(message["u"]),
                int(message["pu"]) if message.get("pu") is not None else None,
                _levels(message.get("b", [])),
                _levels(message.get("a", [])),
            ),
            received,
        )
        bids, asks = orderbook["bids"], orderbook["asks"]
        if self._quote_sink is not None and len(bids) and len(asks):
            self._quote_sink(symbol, bids[0][0], bids[0][1], asks[0][0], asks[0][1], ts_us)
        return result

    async def fetch_rest_order_book_safe(self, symbol: str, limit: Any = None, params: Any = None) -> Any:
        snapshot = await super().fetch_rest_order_book_safe(symbol, limit, params or {})
        STREAM_EVENTS.labels(kind="book_snapshot").inc()
        timestamp = snapshot.get("timestamp")
        self._sink(
            BookSnapshot(
                self.id,
                symbol,
                int(timestamp) * 1000 if timestamp else None,
                int(snapshot["nonce"]) if snapshot.get("nonce") is not None else None,
                _levels(snapshot["bids"]),
                _levels(snapshot["asks"]),
            ),
            time.perf_counter(),
        )
        return snapshot


def check_feed(venue: str, symbols: list[str]) -> None:
    """The operator's errors a feed refuses before it connects (shared by `MarketFeed` and `FeedProcess`)."""
    if venue != "binance":
        raise OperatorError(
            f"the stream supports venue 'binance' (spot) for now, not {venue!r}: set ALPHATIDE_VENUE=binance"
        )
    if not symbols:
        raise OperatorError("the stream has no symbols to watch (empty universe and no stream.symbols)")


class MarketFeed:
    """Trades and books of `symbols` from `venue` (Binance spot) into `sink`; see the module docstring.

    `urls` overrides ccxt's ``urls['api']`` entries (a `ReplayServer`'s `ccxt_urls()`); `ws` is merged.
    """

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
        self.venue = venue
        self.symbols = list(symbols)
        self.config = config
        self._sink = sink
        self._status = status
        self._quote = quote
        self._urls = urls
        self._timeout_ms = int(timeout_s * 1000)
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: dict[str, HookedBinance] = {}
        self._last_message: dict[str, float] = {}
        self._connected: dict[str, bool] = {}
        self._markets: Any = None
        self.reconnects = 0
        self.resyncs = 0

    def _new_client(self, kind: str) -> HookedBinance:
        def touch() -> None:
            self._last_message[kind] = time.monotonic()
            if not self._connected.get(kind):
                self._set_connected(kind, True, "receiving")

        client = HookedBinance(
            {"options": {"fetchMarkets": {"types": ["spot"]}, "defaultType": "spot"}, "timeout": self._timeout_ms},
            self._sink,
            touch,
            self._quote,
        )
        if self._urls:
            api = dict(client.urls["api"])
            for key, value in self._urls.items():
                api[key] = {**api.get(key, {}), **value} if isinstance(value, dict) else value
            client.urls["api"] = api
        if self._markets is not None:
            client.set_markets(self._markets)
        return client

    @property
    def connected(self) -> dict[str, bool]:
        """``{"binance:trades": True, "binance:book": False}``: whether each source is receiving."""
        return {f"{self.venue}:{kind}": self._connected.get(kind, False) for kind in ("trades", "book")}

    def _set_connected(self, kind: str, connected: bool, detail: str) -> None:
        self._connected[kind] = connected
        source = f"{self.venue}:{kind}"
        WEBSOCKET_CONNECTED.labels(source=source).set(1 if connected else 0)
        if self._status is not None:
            self._status(source, connected, detail)

    async def start(self) -> None:
        for kind in ("trades", "book"):
            self._clients[kind] = self._new_client(kind)
            self._last_message[kind] = time.monotonic()
        for symbol in self.symbols:
            self._tasks.append(asyncio.create_task(self._watch("trades", symbol), name=f"trades:{symbol}"))
            self._tasks.append(asyncio.create_task(self._watch("book", symbol), name=f"book:{symbol}"))
        self._tasks.append(asyncio.create_task(self._watchdog(), name="feed-watchdog"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for kind, client in list(self._clients.items()):
            with contextlib.suppress(Exception):
                await client.close()
            self._set_connected(kind, False, "stopped")
        self._clients.clear()

    async def _watch(self, kind: str, symbol: str) -> None:
        delay = self.config.backoff_initial_s
        while True:
            client = self._clients[kind]
            try:
                if kind == "trades":
                    await client.watch_trades(symbol)
                else:
                    await client.watch_order_book(symbol)
                if self._markets is None and client.markets:
                    self._markets = client.markets
                delay = self.config.backoff_initial_s
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the feed is stopping
                # ccxt cancels the pending watch futures of a client we closed (watchdog): watch again.
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.backoff_max_s)
            except (ccxt.NetworkError, ccxt.ExchangeError, ccxt.ChecksumError, ccxt.InvalidNonce) as exc:
                if isinstance(exc, ccxt.ChecksumError | ccxt.InvalidNonce):
                    self.resyncs += 1  # a gap in the book's update ids: ccxt resyncs from a new snapshot
                # ExchangeClosedByUser (our watchdog closed the client) is a NetworkError subclass too.
                if self._connected.get(kind):
                    self._set_connected(kind, False, f"{type(exc).__name__}: {exc}")
                log.info("%s %s watch ended (%s: %s); again in %.2f s", kind, symbol, type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.backoff_max_s)

    async def _watchdog(self) -> None:
        period = min(0.25, self.config.silence_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for kind in list(self._clients):
                silent_for = now - self._last_message.get(kind, now)
                if silent_for >= self.config.silence_timeout_s:
                    await self._reconnect(kind, f"no message for {silent_for:.1f} s")

    async def _reconnect(self, kind: str, why: str) -> None:
        """Replace the client: its watches fail (closed by user) and re-watch on a fresh connection."""
        self.reconnects += 1
        STREAM_RECONNECTS.labels(source=f"{self.venue}:{kind}").inc()
        self._set_connected(kind, False, why)
        log.warning("%s:%s reconnecting: %s", self.venue, kind, why)
        old = self._clients[kind]
        self._clients[kind] = self._new_client(kind)
        self._last_message[kind] = time.monotonic()
        with contextlib.suppress(Exception):
            await old.close()


def utc_from_us(ts_us: int) -> datetime:
    return datetime.fromtimestamp(ts_us / 1e6, UTC)
