"""A fake Binance spot venue with the private REST endpoints ccxt's binance client trades through.

Drive the real ccxt client at it (`urls['api']` = `venue.ccxt_urls()`) with the test keys
`venue.api_key` / `venue.api_secret`. Signed requests are checked like Binance does: the `X-MBX-APIKEY`
header must match and `signature` must be the HMAC-SHA256 of the rest of the query (GET/DELETE) or body
(POST) under the secret; otherwise 401 (-2015) or 400 (-1022).

Endpoints (spot, /api/v3): time, ping, exchangeInfo (public); order (POST place, GET query, DELETE cancel),
openOrders (GET, DELETE), account, myTrades (signed).

Matching, deliberately simple and deterministic:
- a book top per symbol is set by the test (`set_book`); LIMIT_MAKER orders that would cross it are
  rejected with Binance's -2010 "Order would immediately match and take."; IOC orders fill against the
  top up to its size at the touch, the rest expires;
- resting orders fill only through `trade(symbol, price, qty)`: a print strictly through an order's price
  fills it at its limit, partially up to the printed quantity (best price, then time priority);
- balances are locked on placement and settled on fills; commissions are charged in the quote asset at
  the market's maker/taker rates (0.1%); an order the free balance cannot cover is rejected (-2010).

Injected slippage: `fill_slippage` (a fraction) makes every fill worse than the market traded.

Scripted faults: `rate_limit_next(n)` answers 429 to the next n signed requests, `reject_next(n)` rejects
the next n orders, `drop_next(n)` closes the connection without an answer, `lose_answers_next(n)` carries
the next n signed requests out and then closes without the answer. `requests` records every
request (method, path, params). State lives in this process, so an engine subprocess can be killed and
restarted against the same venue. `listeners` hear every execution report (order, execution type NEW /
TRADE / CANCELED / EXPIRED, the trade or None), for a user data stream to format
(`tests.fakes.binance_spot_stream`).

Layout: the wire shapes (order and account JSON, the signature check, the test keys) live in
`tests.fakes.binance_spot_wire`, the HTTP server in `tests.fakes.json_http.rest_json_server`; this module
is the venue's state, matching and routes, and re-exports the names tests import from it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from pipelines.marketdata.binance_wire import spot_symbol_info
from tests.fakes.binance_spot_wire import (  # re-exported: tests import them from here
    FEE_RATE,
    TEST_API_KEY,
    TEST_API_SECRET,
    Book,
    VenueOrder,
    account_json,
    auth_problem,
    fmt,
    order_json,
)
from tests.fakes.json_http import DROP, rest_json_server

_fmt = fmt  # the old private name (tests.fakes.binance_spot_stream imports it)
__all__ = ["FEE_RATE", "TEST_API_KEY", "TEST_API_SECRET", "Book", "FakeTradingVenue", "VenueOrder", "_fmt"]


class FakeTradingVenue:
    """See the module docstring. Use as a context manager; `base_url` once started."""

    def __init__(
        self,
        markets: dict[str, tuple[str, str]] | None = None,
        balances: dict[str, Decimal] | None = None,
        *,
        tick_size: str = "0.01",
        step_size: str = "0.00001",
        min_notional: str = "5",
        api_key: str = TEST_API_KEY,
        api_secret: str = TEST_API_SECRET,
    ) -> None:
        # venue id -> (base, quote)
        self.markets = markets or {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT")}
        self.tick_size, self.step_size, self.min_notional = tick_size, step_size, min_notional
        self.api_key, self.api_secret = api_key, api_secret
        self.free: dict[str, Decimal] = dict(balances or {"USDT": Decimal(10_000)})
        self.locked: dict[str, Decimal] = {}
        self.orders: dict[int, VenueOrder] = {}
        self.trades: list[dict[str, Any]] = []
        self.books: dict[str, Book] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.rate_limited = self.rejects = self.drops = self.lost_answers = 0
        self.listeners: list[Callable[[VenueOrder, str, dict[str, Any] | None], None]] = []
        # Injected slippage: every fill executes this fraction worse than its price (a buy higher, a sell lower).
        self.fill_slippage = Decimal(0)
        self._ids = itertools.count(1000)
        self._trade_ids = itertools.count(50_000)
        self._lock = threading.RLock()
        self.server = rest_json_server(self.handle, "X-MBX-APIKEY")
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # ---- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> FakeTradingVenue:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def base_url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def ccxt_urls(self) -> dict[str, str]:
        return {"public": f"{self.base_url}/api/v3", "private": f"{self.base_url}/api/v3"}

    # ---- test controls --------------------------------------------------------------------------
    def set_book(self, symbol: str, bid: str, ask: str, bid_qty: str = "10", ask_qty: str = "10") -> None:
        with self._lock:
            self.books[self._vid(symbol)] = Book(Decimal(bid), Decimal(ask), Decimal(bid_qty), Decimal(ask_qty))

    def rate_limit_next(self, n: int) -> None:
        self.rate_limited = n

    def reject_next(self, n: int) -> None:
        self.rejects = n

    def drop_next(self, n: int) -> None:
        self.drops = n

    def lose_answers_next(self, n: int) -> None:
        """The next n signed requests are carried out, then the connection closes without the answer."""
        self.lost_answers = n

    def trade(self, symbol: str, price: str, qty: str) -> None:
        """A public print at `price` for `qty`: resting orders strictly through it fill at their limit."""
        px, budget = Decimal(price), Decimal(qty)
        with self._lock:
            vid = self._vid(symbol)
            crossed = [
                o
                for o in self.orders.values()
                if o.symbol == vid
                and o.is_open
                and ((o.side == "BUY" and px < o.price) or (o.side == "SELL" and px > o.price))
            ]
            crossed.sort(key=lambda o: (-o.price if o.side == "BUY" else o.price, o.order_id))
            for order in crossed:
                take = min(order.remaining, budget)
                if take <= 0:
                    break
                budget -= take
                self._fill(order, take, order.price, maker=True)

    def place_foreign_order(self, symbol: str, side: str, price: str, qty: str, client_order_id: str) -> int:
        """An order left on the account by someone else (or a previous session)."""
        with self._lock:
            order = self._new_order(
                self._vid(symbol), side, "LIMIT", "GTC", Decimal(price), Decimal(qty), client_order_id
            )
            self._lock_funds(order)
            return order.order_id

    def open_orders(self) -> list[VenueOrder]:
        with self._lock:
            return [o for o in self.orders.values() if o.is_open]

    def balance(self, asset: str) -> Decimal:
        with self._lock:
            return self.free.get(asset, Decimal(0)) + self.locked.get(asset, Decimal(0))

    def set_balance(self, asset: str, amount: Decimal) -> None:
        """Overwrite an asset's free balance (a deposit, or a position changed outside the engine)."""
        with self._lock:
            self.free[asset] = amount

    def order_by_client_id(self, client_order_id: str) -> VenueOrder | None:
        with self._lock:
            return next((o for o in self.orders.values() if o.client_order_id == client_order_id), None)

    # ---- request handling -----------------------------------------------------------------------
    def handle(self, method: str, path: str, raw: str, api_key: str | None) -> tuple[int, Any]:
        params = dict(parse_qsl(raw, keep_blank_values=True))
        with self._lock:
            self.requests.append((method, path, params))
            if path == "/api/v3/time":
                return 200, {"serverTime": int(time.time() * 1000)}
            if path == "/api/v3/ping":
                return 200, {}
            if path == "/api/v3/exchangeInfo":
                return 200, {
                    "timezone": "UTC",
                    "serverTime": int(time.time() * 1000),
                    "rateLimits": [],
                    "symbols": self._symbols(),
                }
            if self.drops > 0:
                self.drops -= 1
                return DROP, None
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return 429, {
                    "code": -1003,
                    "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE.",
                }
            problem = auth_problem(raw, api_key, self.api_key, self.api_secret)
            if problem is not None:
                return problem
            route = {
                ("POST", "/api/v3/order"): self._place,
                ("GET", "/api/v3/order"): self._query,
                ("DELETE", "/api/v3/order"): self._cancel,
                ("GET", "/api/v3/openOrders"): self._open_orders,
                ("DELETE", "/api/v3/openOrders"): self._cancel_all,
                ("GET", "/api/v3/account"): self._account,
                ("GET", "/api/v3/myTrades"): self._my_trades,
            }.get((method, path))
            if route is None:
                return 404, {"code": -1, "msg": f"no route {method} {path}"}
            answer = route(params)
            if self.lost_answers > 0:
                self.lost_answers -= 1
                return DROP, None
            return answer

    def _vid(self, symbol: str) -> str:
        return symbol.replace("/", "")

    def _new_order(
        self, vid: str, side: str, type_: str, tif: str, price: Decimal, qty: Decimal, cid: str
    ) -> VenueOrder:
        now = int(time.time() * 1000)
        order = VenueOrder(next(self._ids), cid, vid, side, type_, tif, price, qty, now, update_ms=now)
        self.orders[order.order_id] = order
        self._emit(order, "NEW")
        return order

    def _emit(self, order: VenueOrder, execution: str, trade: dict[str, Any] | None = None) -> None:
        for listener in list(self.listeners):
            listener(order, execution, trade)

    def _lock_funds(self, order: VenueOrder) -> None:
        base, quote = self.markets[order.symbol]
        asset, amount = (quote, order.price * order.remaining) if order.side == "BUY" else (base, order.remaining)
        self.free[asset] = self.free.get(asset, Decimal(0)) - amount
        self.locked[asset] = self.locked.get(asset, Decimal(0)) + amount

    def _unlock_rest(self, order: VenueOrder) -> None:
        base, quote = self.markets[order.symbol]
        asset, amount = (quote, order.price * order.remaining) if order.side == "BUY" else (base, order.remaining)
        self.free[asset] = self.free.get(asset, Decimal(0)) + amount
        self.locked[asset] = self.locked.get(asset, Decimal(0)) - amount

    def _fill(self, order: VenueOrder, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        base, quote = self.markets[order.symbol]
        if self.fill_slippage:
            worse = 1 + self.fill_slippage if order.side == "BUY" else 1 - self.fill_slippage
            price = (price * worse).quantize(Decimal(self.tick_size))
        notional = qty * price
        commission = notional * FEE_RATE
        if order.side == "BUY":
            self.locked[quote] -= order.price * qty  # locked at the limit; any improvement is refunded
            self.free[quote] = self.free.get(quote, Decimal(0)) + order.price * qty - notional - commission
            self.free[base] = self.free.get(base, Decimal(0)) + qty
        else:
            self.locked[base] -= qty
            self.free[quote] = self.free.get(quote, Decimal(0)) + notional - commission
        order.executed_qty += qty
        order.quote_qty += notional
        order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
        order.update_ms = int(time.time() * 1000)
        trade = {
            "symbol": order.symbol,
            "id": next(self._trade_ids),
            "orderId": order.order_id,
            "orderListId": -1,
            "price": fmt(price),
            "qty": fmt(qty),
            "quoteQty": fmt(notional),
            "commission": fmt(commission),
            "commissionAsset": quote,
            "time": order.update_ms,
            "isBuyer": order.side == "BUY",
            "isMaker": maker,
            "isBestMatch": True,
        }
        self.trades.append(trade)
        order.fills.append(
            {
                "price": trade["price"],
                "qty": trade["qty"],
                "commission": trade["commission"],
                "commissionAsset": quote,
                "tradeId": trade["id"],
            }
        )
        self._emit(order, "TRADE", trade)

    def _place(self, p: dict[str, str]) -> tuple[int, Any]:
        vid = p.get("symbol", "")
        if vid not in self.markets:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if self.rejects > 0:
            self.rejects -= 1
            return 400, {"code": -2010, "msg": "Order rejected by the venue (scripted)."}
        cid = p.get("newClientOrderId") or f"venue{next(self._ids)}"
        if any(o.client_order_id == cid and o.is_open for o in self.orders.values()):
            return 400, {"code": -2010, "msg": "Duplicate order sent."}
        try:
            price, qty = Decimal(p["price"]), Decimal(p["quantity"])
        except (KeyError, ArithmeticError):
            return 400, {"code": -1102, "msg": "Mandatory parameter 'price'/'quantity' was not sent or malformed."}
        if price % Decimal(self.tick_size) != 0:
            return 400, {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}
        if qty <= 0 or qty % Decimal(self.step_size) != 0:
            return 400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}
        if price * qty < Decimal(self.min_notional):
            return 400, {"code": -1013, "msg": "Filter failure: NOTIONAL"}
        side, type_ = p.get("side", ""), p.get("type", "")
        base, quote = self.markets[vid]
        need_asset, need = (quote, price * qty * (1 + FEE_RATE)) if side == "BUY" else (base, qty)
        if self.free.get(need_asset, Decimal(0)) < need:
            return 400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}
        book = self.books.get(vid)
        crosses = book is not None and ((side == "BUY" and price >= book.ask) or (side == "SELL" and price <= book.bid))
        if type_ == "LIMIT_MAKER" and crosses:
            return 400, {"code": -2010, "msg": "Order would immediately match and take."}
        tif = p.get("timeInForce", "GTC")
        order = self._new_order(vid, side, type_, tif, price, qty, cid)
        self._lock_funds(order)
        if crosses and book is not None:
            top = book.ask_qty if side == "BUY" else book.bid_qty
            take = min(qty, top)
            touch = book.ask if side == "BUY" else book.bid
            if take > 0:
                self._fill(order, take, touch, maker=False)
                if side == "BUY":
                    book.ask_qty -= take
                else:
                    book.bid_qty -= take
        if tif == "IOC" and order.is_open:
            self._unlock_rest(order)
            order.status = "EXPIRED"
            self._emit(order, "EXPIRED")
        return 200, order_json(order, full=True)

    def _find(self, p: dict[str, str]) -> VenueOrder | None:
        vid = p.get("symbol")
        if "orderId" in p:
            order = self.orders.get(int(p["orderId"]))
        else:
            cid = p.get("origClientOrderId")
            order = next((o for o in self.orders.values() if o.client_order_id == cid), None)
        return order if order is not None and order.symbol == vid else None

    def _query(self, p: dict[str, str]) -> tuple[int, Any]:
        order = self._find(p)
        if order is None:
            return 400, {"code": -2013, "msg": "Order does not exist."}
        return 200, order_json(order)

    def _cancel(self, p: dict[str, str]) -> tuple[int, Any]:
        order = self._find(p)
        if order is None or not order.is_open:
            return 400, {"code": -2011, "msg": "Unknown order sent."}
        self._unlock_rest(order)
        order.status = "CANCELED"
        order.update_ms = int(time.time() * 1000)
        self._emit(order, "CANCELED")
        return 200, order_json(order)

    def _open_orders(self, p: dict[str, str]) -> tuple[int, Any]:
        vid = p.get("symbol")
        return 200, [order_json(o) for o in self.orders.values() if o.is_open and vid in (None, o.symbol)]

    def _cancel_all(self, p: dict[str, str]) -> tuple[int, Any]:
        out = []
        for order in self.orders.values():
            if order.is_open and order.symbol == p.get("symbol"):
                self._unlock_rest(order)
                order.status = "CANCELED"
                self._emit(order, "CANCELED")
                out.append(order_json(order))
        return 200, out

    def _account(self, p: dict[str, str]) -> tuple[int, Any]:
        return 200, account_json(self.free, self.locked)

    def _my_trades(self, p: dict[str, str]) -> tuple[int, Any]:
        vid = p.get("symbol")
        since = int(p.get("startTime", 0))
        rows = [t for t in self.trades if t["symbol"] == vid and t["time"] >= since]
        if "orderId" in p:
            rows = [t for t in rows if t["orderId"] == int(p["orderId"])]
        return 200, rows[: int(p.get("limit", 1000))]

    def _symbols(self) -> list[dict[str, Any]]:
        return [
            spot_symbol_info(
                base, quote, tick_size=self.tick_size, step_size=self.step_size, min_notional=self.min_notional
            )
            for _, (base, quote) in sorted(self.markets.items())
        ]
