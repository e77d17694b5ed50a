"""Polymarket window-market data into the serving engine (issue 17.5: the window strategies on paper).

`start_window_feed(engine)` (called by the serving lifespan once the engine runs) starts a `WindowFeed`
when the engine has a paper `polymarket` venue (`ALPHATIDE_VENUES`, `serving.engine.window_paper`) and
a window strategy (`window`, `window_mm`) trades on it; otherwise it returns None.

The feed runs on its own thread and event loop and polls, every `poll_s`, through
`pipelines.adapters.polymarket.PolymarketWindowVenue` (public endpoints only):
- discovery of the current and the next window (by slug); a new window's two outcome tokens are
  registered with the paper broker as instruments (tick from the venue, min size from the market, the
  fee per market from `fetchTradingFee`);
- each token's order book -> `BookEvent(handle, best bid, best ask, sizes, venue="polymarket")`;
- each token's public trades -> `TradeEvent(handle, ..., venue="polymarket")` (the prints that fill
  resting paper orders), stamped no earlier than the previous poll's start (the venue's times have whole
  seconds); trades already printed when a window is first seen are history, not sent;
- resolution: a window the venue reports resolved (with its winner) is redeemed in the paper broker.

The symbols are the ccxt outcome handles the strategies trade (`BTC_UPDOWN_5M_<start>:UP`). The BTC
reference prints that settle the strategies' windows are not this feed's: they are the serving
stream's `BTC/USDT` trades (the strategies' `reference_symbol`, any venue unless `reference_venue`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pipelines.adapters.polymarket import PolymarketWindowVenue, VenueSettings
from pipelines.adapters.polymarket.parse import market_info
from pipelines.domain.window_market import DEFAULT_WINDOW_S, Outcome, WindowMarket
from pipelines.trading.instruments import Side
from serving.engine.events import BookEvent, TradeEvent
from serving.engine.window_paper import VENUE, WindowPaperBroker

log = logging.getLogger("alphatide.window_feed")

POLL_S = 0.5
GIVE_UP_S = 3600.0  # a window the venue has not resolved an hour after its end is dropped (logged)


def venue_urls(api_url: str | None) -> dict[str, str]:
    """ccxt API addresses under one base URL (gamma/, clob/, data/: a local fake); none: Polymarket's."""
    if api_url is None:
        return {}
    base = api_url.rstrip("/")
    return {"gamma": f"{base}/gamma", "clob": f"{base}/clob", "data": f"{base}/data"}


class WindowFeed:
    def __init__(
        self,
        engine: Any,
        broker: WindowPaperBroker,
        settings: VenueSettings,
        *,
        clock: Callable[[], datetime],
        poll_s: float = POLL_S,
        fee_exponent: int = 2,
    ) -> None:
        self.engine, self.broker, self.settings = engine, broker, settings
        self.clock, self.poll_s, self.fee_exponent = clock, poll_s, fee_exponent
        self.windows: dict[int, WindowMarket] = {}
        self.seen: set[str] = set()
        self.redeemed: dict[int, Outcome] = {}
        self.polls = 0
        self._polled_at: datetime | None = None  # when the last poll began
        self._since: datetime | None = None  # when the poll before this one began
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="alphatide-window-feed", daemon=True)

    def start(self) -> WindowFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        async with PolymarketWindowVenue(self.settings, clock=self.clock) as venue:
            while not self._stop.is_set():
                try:
                    await self.poll(venue)
                except Exception:  # the venue unreachable or an odd answer: logged, tried again next poll
                    log.exception("window feed poll failed")
                self.polls += 1
                await asyncio.to_thread(self._stop.wait, self.poll_s)

    async def poll(self, venue: PolymarketWindowVenue) -> None:
        now = self.clock()
        self._since, self._polled_at = self._polled_at or now, now
        listed = [w for w in await venue.current_and_next() if w is not None]
        for w in listed:
            if w.resolved:
                self._redeem(w)
            elif w.start_s not in self.windows:
                await self._register(venue, w)
        for w in listed:
            if not w.resolved and w.start_s in self.windows:
                await self._market_data(venue, w)
        tracked = set(self.windows) | (self.broker.held_windows() - set(self.redeemed))  # held across a restart
        for start in sorted(s for s in tracked if s + self.settings.window_s <= now.timestamp()):
            w2 = await venue.window(start)
            if w2 is not None and w2.resolved:
                self._redeem(w2)
            elif start + self.settings.window_s + GIVE_UP_S <= now.timestamp():
                log.warning("window %s: not resolved by the venue an hour after its end; dropped", start)
                self.windows.pop(start, None)

    async def _register(self, venue: PolymarketWindowVenue, w: WindowMarket) -> None:
        for outcome in Outcome:
            token = w.token(outcome)
            fee = await venue.fee(token.token_id)
            tick = await venue.tick_size(token.token_id)
            self.broker.register(market_info(w, outcome, fee, tick, self.fee_exponent))
            self.seen.update(t.trade_id for t in await venue.trades(token.token_id))  # history
        self.windows[w.start_s] = w

    async def _market_data(self, venue: PolymarketWindowVenue, w: WindowMarket) -> None:
        for token in (w.up, w.down):
            book = await venue.order_book(token.token_id)
            bid, ask = book.best_bid, book.best_ask
            if bid is not None and ask is not None:
                self.engine.submit(BookEvent(token.handle, bid.price, ask.price, bid.size, ask.size, book.ts, VENUE))
        for token in (w.up, w.down):
            for t in await venue.trades(token.token_id):
                if t.trade_id in self.seen or t.token_id not in (w.up.token_id, w.down.token_id):
                    continue
                self.seen.add(t.trade_id)
                handle = w.token(w.outcome_of(t.token_id)).handle
                side = Side.BUY if t.side.lower() == "buy" else Side.SELL
                # the venue's trade times have whole seconds: a print this poll saw first happened after the
                # previous poll began, so it is stamped no earlier (a resting order placed since then does
                # not fill on a print that may predate it)
                ts = max(t.ts, self._since) if self._since is not None else t.ts
                self.engine.submit(TradeEvent(handle, t.price, t.size, ts, side, VENUE))

    def _redeem(self, w: WindowMarket) -> None:
        if w.winner is None or w.start_s in self.redeemed:
            return
        credited = self.broker.redeem(w.start_s, w.winner)
        self.redeemed[w.start_s] = w.winner
        self.windows.pop(w.start_s, None)
        log.info("window %s resolved %s: %s USDC redeemed on paper", w.slug, w.winner.value, credited)


def _window_strategies(engine: Any) -> list[Any]:
    out = []
    for strategy in engine.strategies.values():
        cfg = getattr(strategy, "cfg", None)
        if cfg is not None and hasattr(cfg, "signal_symbol") and getattr(cfg, "venue", None) == VENUE:
            out.append(strategy)
    return out


def start_window_feed(engine: Any, *, poll_s: float = POLL_S) -> WindowFeed | None:
    """The feed of the engine's paper polymarket venue, started; None without one or without a window
    strategy on it."""
    ex = getattr(engine, "executions", {}).get(VENUE)
    broker = getattr(ex.broker, "inner", ex.broker) if ex is not None else None
    strategies = _window_strategies(engine)
    if not isinstance(broker, WindowPaperBroker) or not strategies:
        return None
    cfg = strategies[0].cfg
    trading = getattr(cfg, "trading", None) or getattr(cfg, "mm", None)  # window: trading; window_mm: mm
    window_s = int(getattr(trading, "window_s", DEFAULT_WINDOW_S))
    exponent = int(getattr(trading, "fee_exponent", 2))
    settings = VenueSettings(urls=venue_urls(broker.api_url), window_s=window_s, max_retries=1)
    broker.fee_exponent = exponent
    return WindowFeed(engine, broker, settings, clock=engine.now, poll_s=poll_s, fee_exponent=exponent).start()


__all__ = ["WindowFeed", "start_window_feed", "venue_urls"]
