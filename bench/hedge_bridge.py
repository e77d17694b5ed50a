"""A minimal StrategyContext over real ccxt.pro clients, for `bench.hedge` (not the engine's live broker).

It does what the engine's execution does for the hedge strategy, just enough to run it against the
local venue fakes with the real clients: `submit` returns at once and sends the order on the event loop
(client order ids correlate the venue's answers: Backpack's integer `clientId`, Hyperliquid's 128-bit
`cloid`); the venues' WebSocket streams (Backpack `watchOrders`, Hyperliquid `watchOrders` +
`watchMyTrades`) become `FillEvent`s and `OrderUpdate`s; a REST poll (`fetchMyTrades`) finds fills
whose update was lost. Positions are this process's fills, as the engine's portfolio would count them;
the benchmark compares them with the venues' own figures at the end. Every callback runs on the one
event loop, in arrival order.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt

from pipelines.trading.instruments import MarketInfo, Side, to_venue_str
from pipelines.trading.orders import Fill, Liquidity, OrderState
from serving.engine.events import BookEvent
from serving.engine.strategy import (
    FillEvent,
    OpenOrderView,
    OrderIntent,
    OrderUpdate,
    PortfolioView,
    Strategy,
    SubmitResult,
    TimeInForce,
)

BP_STATES = {
    "New": OrderState.OPEN,
    "PartiallyFilled": OrderState.PARTIALLY_FILLED,
    "Filled": OrderState.FILLED,
    "Cancelled": OrderState.CANCELLED,
    "Expired": OrderState.EXPIRED,
}
HL_STATES = {"open": OrderState.OPEN, "filled": OrderState.FILLED, "canceled": OrderState.CANCELLED}


@dataclass
class Venue:
    name: str  # "primary" / "hedge"
    kind: str  # ccxt id: "backpack" / "hyperliquid"
    client: Any  # ccxt.pro client: streams and the REST poll
    symbol: str
    info: MarketInfo | None = None
    balance: Decimal | None = None
    order_client: Any = None  # orders and cancels only (own rate limiter: a poll never queues a hedge)

    @property
    def sender(self) -> Any:
        return self.order_client if self.order_client is not None else self.client


@dataclass
class Local:
    order_id: str
    venue: Venue
    intent: OrderIntent
    client_id: str
    sent_at: float
    venue_id: str | None = None
    filled: Decimal = Decimal(0)
    state: OrderState = OrderState.NEW
    fills: set[str] = field(default_factory=set)


class Bridge:
    def __init__(self, strategy: Strategy, venues: Mapping[str, Venue]) -> None:
        self.strategy = strategy
        self.venues = dict(venues)
        self.books: dict[str, BookEvent] = {}
        self.positions = {name: Decimal(0) for name in venues}
        self.orders: dict[str, Local] = {}
        self.by_client: dict[tuple[str, str], Local] = {}
        self.saved: dict[str, str] = {}
        self.alerts: list[tuple[str, str]] = []
        self.acks: list[float] = []  # fill received -> hedge acknowledged by the venue, wall ms
        self.last_fill_at = 0.0
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- StrategyContext -----------------------------------------------------------------------
    @property
    def strategy_id(self) -> str:
        return self.strategy.strategy_id

    def now(self) -> datetime:
        return datetime.now(UTC)

    def instrument(self, symbol: str, venue: str = "") -> MarketInfo:
        info = self.venues[venue].info
        assert info is not None and info.symbol == symbol
        return info

    def book(self, symbol: str, venue: str = "") -> BookEvent | None:
        return self.books.get(venue)

    def portfolio(self) -> PortfolioView:
        return PortfolioView(self.strategy_id, Decimal(0), Decimal(0), Decimal(0), Decimal(0))

    def position(self, symbol: str, venue: str = "") -> Decimal:
        return self.positions[venue]

    def open_orders(self, symbol: str | None = None, venue: str | None = None) -> list[OpenOrderView]:
        live = (OrderState.NEW, OrderState.OPEN, OrderState.PARTIALLY_FILLED)
        return [
            OpenOrderView(
                o.order_id, o.venue.name, o.intent.symbol, o.intent.side, o.intent.price, o.intent.size - o.filled
            )
            for o in self.orders.values()
            if o.state in live and venue in (None, o.venue.name) and o.intent.time_in_force is TimeInForce.GTC
        ]

    def submit(self, intent: OrderIntent) -> SubmitResult:
        venue = self.venues[intent.venue]
        n = next(self._ids)
        client_id = str(n) if venue.kind == "backpack" else f"0x{n:032x}"
        local = Local(f"L{n}", venue, intent, client_id, time.perf_counter())
        self.orders[local.order_id] = local
        self.by_client[(venue.name, client_id)] = local
        self._spawn(self._send(local))
        return SubmitResult(True, local.order_id, intent.size)

    def cancel(self, order_id: str, reason: str = "") -> None:
        local = self.orders.get(order_id)
        if local is not None and local.venue_id is not None:
            self._spawn(self._cancel(local))

    def entries_allowed(self, symbol: str | None = None) -> tuple[bool, str]:
        return True, ""

    def state(self) -> dict[str, str]:
        return dict(self.saved)

    def save_state(self, values: Mapping[str, str]) -> None:
        self.saved.update(values)

    def record(self, action: str, reason: str, symbol: str = "") -> None:
        return None

    def alert(self, kind: str, message: str) -> None:
        self.alerts.append((kind, message))

    def available_balance(self, venue: str, asset: str) -> Decimal | None:
        return self.venues[venue].balance

    # ---- sending -------------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, o: Local) -> None:
        intent, venue = o.intent, o.venue
        params: dict[str, Any] = {"clientOrderId": int(o.client_id) if venue.kind == "backpack" else o.client_id}
        if intent.post_only:
            params["postOnly"] = True
        if intent.time_in_force is TimeInForce.IOC:
            params["timeInForce"] = "IOC" if venue.kind == "backpack" else "Ioc"
        assert intent.price is not None
        try:
            result = await venue.sender.create_order(
                venue.symbol, "limit", intent.side.value, to_venue_str(intent.size), to_venue_str(intent.price), params
            )
        except (ccxt.InvalidOrder, ccxt.InsufficientFunds) as exc:  # the venue said no: a reject
            self._update(o, OrderState.REJECTED, o.filled, str(exc)[:200])
            return
        except ccxt.BaseError:  # unknown fate (timeout, network): the strategy's timeout decides
            return
        o.venue_id = str(result["id"])
        if intent.tag == "hedge-hedge" and self.last_fill_at:
            self.acks.append((time.perf_counter() - self.last_fill_at) * 1000)
        if venue.kind == "hyperliquid" and intent.time_in_force is TimeInForce.IOC:
            filled = Decimal(str(result.get("filled") or 0))  # an IOC's fate is in the answer itself
            self._update(o, OrderState.FILLED if filled >= intent.size else OrderState.EXPIRED, filled)

    async def _cancel(self, o: Local) -> None:
        try:
            await o.venue.sender.cancel_order(o.venue_id, o.venue.symbol)
        except ccxt.BaseError:
            return  # already gone: its final update says how

    # ---- venue events --------------------------------------------------------------------------
    def _fill(
        self, o: Local, fill_id: str, size: Decimal, price: Decimal, fee: Decimal, maker: bool, ts: datetime
    ) -> None:
        if fill_id not in o.fills:  # the portfolio counts a fill once, however often it is reported
            o.fills.add(fill_id)
            o.filled += size
            self.positions[o.venue.name] += size if o.intent.side is Side.BUY else -size
            if o.filled >= o.intent.size:
                o.state = OrderState.FILLED
        if o.intent.tag == "hedge-maker":
            self.last_fill_at = time.perf_counter()
        fill = Fill(fill_id, size, price, fee, Liquidity.MAKER if maker else Liquidity.TAKER, ts)
        event = FillEvent(o.order_id, o.client_id, o.venue.name, o.intent.symbol, o.intent.side, fill, o.intent.tag)
        self.strategy.on_fill(self, event)  # type: ignore[arg-type]

    def _update(self, o: Local, state: OrderState, filled: Decimal, reason: str = "") -> None:
        if o.state in (OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.EXPIRED):
            return
        o.state = state
        event = OrderUpdate(
            o.order_id, o.client_id, o.venue.name, o.intent.symbol, o.intent.side, state, filled,
            o.intent.size - filled, self.now(), reason, o.intent.tag,
        )  # fmt: skip
        self.strategy.on_order_update(self, event)  # type: ignore[arg-type]

    async def watch_backpack(self, venue: Venue) -> None:
        while True:
            try:
                updates = await venue.client.watch_orders()
            except ccxt.NetworkError:
                await asyncio.sleep(0.05)
                continue
            for update in updates:
                info = update["info"]
                local = self.by_client.get((venue.name, str(info.get("c"))))
                if local is None:
                    continue
                local.venue_id = local.venue_id or str(info["i"])
                if info.get("e") == "orderFill":
                    ts = datetime.fromtimestamp(int(info["E"]) / 1e6, UTC)
                    self._fill(
                        local,
                        f"bp-{info['t']}",
                        Decimal(info["l"]),
                        Decimal(info["L"]),
                        Decimal(info["n"]),
                        bool(info["m"]),
                        ts,
                    )
                self._update(local, BP_STATES[info["X"]], Decimal(info["z"]))

    async def watch_hyperliquid_fills(self, venue: Venue) -> None:
        while True:
            try:
                trades = await venue.client.watch_my_trades()
            except ccxt.NetworkError:
                await asyncio.sleep(0.05)
                continue
            for trade in trades:
                self._hl_fill(venue, trade["info"])

    def _hl_fill(self, venue: Venue, info: Mapping[str, Any]) -> None:
        local = self.by_client.get((venue.name, str(info.get("cloid"))))
        if local is None:
            return
        ts = datetime.fromtimestamp(int(info["time"]) / 1000, UTC)
        size, price = Decimal(info["sz"]), Decimal(info["px"])
        self._fill(local, f"hl-{info['tid']}", size, price, Decimal(info["fee"]), not info.get("crossed", True), ts)

    async def watch_hyperliquid_orders(self, venue: Venue) -> None:
        while True:
            try:
                orders = await venue.client.watch_orders()
            except ccxt.NetworkError:
                await asyncio.sleep(0.05)
                continue
            for order in orders:
                wire = order["info"]
                local = self.by_client.get((venue.name, str(wire["order"].get("cloid"))))
                state = HL_STATES.get(wire.get("status", ""))
                if local is not None and state is not None:
                    filled = Decimal(wire["order"]["origSz"]) - Decimal(wire["order"]["sz"])
                    self._update(local, state, filled)

    async def poll(self, every: float = 0.5, balance_every: float = 5.0, stale_after: float = 1.0) -> None:
        """The REST fallback, kept off the hot path: ccxt's rate limiter is shared with the orders (a
        Hyperliquid `userFills` request weighs 10 x 50 ms of its budget), so fills are polled only for
        orders unresolved after `stale_after` seconds, and balances refreshed every `balance_every`."""
        refreshed = {name: time.perf_counter() for name in self.venues}
        while True:
            await asyncio.sleep(every)
            now = time.perf_counter()
            for venue in self.venues.values():
                try:
                    if now - refreshed[venue.name] >= balance_every:
                        refreshed[venue.name] = now
                        venue.balance = Decimal(str((await venue.client.fetch_balance())["USDC"]["free"]))
                    if any(o.venue is venue and self._unresolved(o, now, stale_after) for o in self.orders.values()):
                        await self._poll_fills(venue)
                        await self._reconcile(venue)
                except ccxt.BaseError:
                    continue

    @staticmethod
    def _unresolved(o: Local, now: float, stale_after: float) -> bool:
        live = o.state in (OrderState.NEW, OrderState.OPEN, OrderState.PARTIALLY_FILLED)
        return live and now - o.sent_at > stale_after

    async def _reconcile(self, venue: Venue) -> None:
        """A working order the venue no longer lists ended without an update we heard: the venue wins."""
        listed = {str(o["id"]) for o in await venue.client.fetch_open_orders(venue.symbol)}
        for o in list(self.orders.values()):
            live = o.state in (OrderState.NEW, OrderState.OPEN, OrderState.PARTIALLY_FILLED)
            if (
                o.venue is venue
                and live
                and o.venue_id
                and o.venue_id not in listed
                and time.perf_counter() - o.sent_at > 2
            ):
                filled = o.filled
                self._update(o, OrderState.FILLED if filled >= o.intent.size else OrderState.CANCELLED, filled)

    async def _poll_fills(self, venue: Venue) -> None:
        for trade in await venue.client.fetch_my_trades(venue.symbol, int(time.time() * 1000) - 60_000):
            info = trade["info"]
            if venue.kind == "hyperliquid":
                self._hl_fill(venue, info)
                continue
            local = self.by_client.get((venue.name, str(info.get("clientId"))))
            if local is not None:
                ts = datetime.fromisoformat(info["timestamp"]).replace(tzinfo=UTC)
                size, price, fee = Decimal(info["quantity"]), Decimal(info["price"]), Decimal(info["fee"])
                self._fill(local, f"bp-{info['tradeId']}", size, price, fee, bool(info["isMaker"]), ts)
