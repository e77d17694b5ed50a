"""A fake Binance USD-M futures venue (REST + user data stream) on 127.0.0.1 for the real ccxt binanceusdm.

Point a client at it with `venue.ccxt_config()` (keys and `urls`), or the engine's live broker with
`api_url=venue.base_url` (it rewrites the fapi hosts). Signed requests are checked like Binance does:
the `X-MBX-APIKEY` header must be the test key and `signature` the HMAC-SHA256 (hex) of the rest of the
query string (GET/DELETE/PUT) or form body (POST) under the secret; otherwise 401 (-2015) / 400 (-1022).
The listenKey endpoints need only the key header, as on Binance.

REST (the endpoints ccxt 4.5 calls): `GET /fapi/v1/time | ping | exchangeInfo | depth` (public);
`POST|GET|DELETE /fapi/v1/order`, `GET /fapi/v1/openOrders`, `DELETE /fapi/v1/allOpenOrders`,
`GET /fapi/v1/userTrades`, `GET /fapi/v2|v3/account`, `GET /fapi/v2|v3/balance`,
`GET /fapi/v2|v3/positionRisk`, `GET /fapi/v1/leverageBracket` (signed); `POST|PUT|DELETE
/fapi/v1/listenKey`. Orders: `timeInForce` GTC, IOC, GTX (post-only: refused with -5022 when it would
take); an IOC that cannot match is accepted and EXPIRED with nothing filled, as on Binance.
Insufficient margin: -2019.

User data stream: a WebSocket on `/private/ws?listenKey=<key>` (ccxt's linear private URL) or
`/ws/<key>`; no subscription message: every order event goes to each connection holding a live
listenKey as `ORDER_TRADE_UPDATE` (`o`: s, c, S, o, f, q, p, ap, x execution type NEW / TRADE /
CANCELED / EXPIRED, X status, i, l, z, L, n, N, T, t trade id, m maker, ps BOTH, ...).

Markets (venue id -> base): `BTCUSDT` perpetual, tick 0.1, step 0.001, minimum notional 5 USDT (Binance's
own BTCUSDT filters are tick 0.1 / step 0.001 / notional 100; the minimum is lowered to fit $10 phases).
Matching and faults: `tests.fakes.matching.Matcher` (`venue.matcher`: books, prints, partial IOC,
scripted rejects) and `tests.fakes.aio_venue.AioVenue` (hang, drop the WebSocket, delay or lose updates).
`unknown_next(n, executed=...)`: the next n new orders answer Binance's 503 -1007 "execution status
unknown", after executing the order (`executed=True`) or without it ever reaching the book.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from pipelines.marketdata.binance_wire import usdm_symbol_info
from tests.fakes.aio_venue import AioVenue, WsConn
from tests.fakes.matching import Matcher, MFill, MOrder, fmt

TEST_USDM_KEY = "usdm-test-key-0123456789"
TEST_USDM_SECRET = "usdm-test-secret-abcdefghij"
TICK, STEP = Decimal("0.1"), Decimal("0.001")
MAKER_FEE, TAKER_FEE = Decimal("0.0002"), Decimal("0.0005")
ERRORS = {
    "post_only_cross": (
        -5022,
        "Due to the order could not be executed as maker, the Post Only order will be rejected.",
    ),
    "insufficient": (-2019, "Margin is insufficient."),
    "bad_size": (-1111, "Precision is over the maximum defined for this asset."),
    "bad_price": (-4014, "Price not increased by tick size."),
    "rejected": (-2010, "Order rejected by the venue (scripted)."),
}
_UNKNOWN = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
STATUS = {"canceled": "CANCELED", "expired": "EXPIRED", "filled": "FILLED"}
EXEC = {"accepted": "NEW", "fill": "TRADE", "canceled": "CANCELED", "expired": "EXPIRED"}


class FakeBinanceUsdm(AioVenue):
    def __init__(self, cash: Decimal = Decimal(10_000), *, leverage: int = 20, min_notional: str = "5") -> None:
        super().__init__()
        self.api_key, self.api_secret = TEST_USDM_KEY, TEST_USDM_SECRET
        self.markets = {"BTCUSDT": "BTC"}
        self.min_notional = min_notional
        self.leverage = leverage
        self.matcher = Matcher(
            spot=set(),
            cash=cash,
            maker_fee=MAKER_FEE,
            taker_fee=TAKER_FEE,
            margin_per_notional=Decimal(1) / leverage,
            lot={m: STEP for m in self.markets},
            tick={m: TICK for m in self.markets},
            ioc_without_match_expires=True,
        )
        self.matcher.listeners.append(self._on_event)
        self.listen_keys: set[str] = set()
        self._keys = itertools.count(1)
        self._unknown: list[bool] = []

    def unknown_next(self, n: int, *, executed: bool) -> None:
        self._unknown = [executed] * n

    def ccxt_config(self) -> dict[str, Any]:
        """Keys and `urls` that send a ccxt binanceusdm client's REST and WebSocket calls here."""
        rest = {k: f"{self.base_url}/fapi/{v}" for k, v in _FAPI.items()}
        return {
            "apiKey": self.api_key,
            "secret": self.api_secret,
            "urls": {"api": {**rest, "ws": {"future": f"{self.ws_url}/ws", "linear": f"{self.ws_url}/ws"}}},
            "options": {"fetchCurrencies": False, "fetchMargins": False},
        }

    def position(self, venue_id: str = "BTCUSDT") -> Decimal:
        return self.matcher.position(venue_id)

    # ---- REST ----------------------------------------------------------------------------------------
    def handle_http(
        self, method: str, path: str, query: dict[str, str], body: str, headers: dict[str, str]
    ) -> tuple[int, Any]:
        raw = body if method == "POST" else headers.get(":query", "")
        params = dict(parse_qsl(raw, keep_blank_values=True))
        self.requests.append((method, path, params))
        public = {
            "/fapi/v1/time": lambda: {"serverTime": int(time.time() * 1000)},
            "/fapi/v1/ping": lambda: {},
            "/fapi/v1/exchangeInfo": self._exchange_info,
            "/fapi/v1/depth": lambda: self._depth(params.get("symbol", "")),
        }
        if method == "GET" and path in public:
            return 200, public[path]()
        if headers.get("x-mbx-apikey") != self.api_key:
            return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        if path == "/fapi/v1/listenKey":
            return self._listen_key(method, params)
        payload, sep, signature = raw.rpartition("&signature=")
        expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not sep or not hmac.compare_digest(signature, expected):
            return 400, {"code": -1022, "msg": "Signature for this request is not valid."}
        route = _ROUTES.get((method, path.replace("/fapi/v3/", "/fapi/v2/")))
        if route is None:
            return 404, {"code": -1, "msg": f"no route {method} {path}"}
        with self.matcher.lock:
            if route == "_place" and self._unknown:
                if self._unknown.pop(0):
                    self._place(params)
                return 503, {"code": -1007, "msg": _UNKNOWN}
            return getattr(self, route)(params)

    def _listen_key(self, method: str, params: dict[str, str]) -> tuple[int, Any]:
        if method == "POST":
            key = f"lk{next(self._keys):04d}" + "x" * 54
            self.listen_keys.add(key)
            return 200, {"listenKey": key}
        if method == "DELETE":
            self.listen_keys.discard(params.get("listenKey", ""))
        return 200, {}

    def _place(self, p: dict[str, str]) -> tuple[int, Any]:
        symbol = p.get("symbol", "")
        if symbol not in self.markets:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if p.get("type") != "LIMIT":
            return 400, {"code": -1116, "msg": "Invalid orderType."}
        tif = p.get("timeInForce", "GTC")
        price, size = Decimal(p.get("price", "0")), Decimal(p.get("quantity", "0"))
        if price * size < Decimal(self.min_notional) and p.get("reduceOnly") != "true":
            return 400, {"code": -4164, "msg": f"Order's notional must be no smaller than {self.min_notional}."}
        cid = p.get("newClientOrderId") or f"web_{next(self._keys)}"
        if any(o.client_id == cid and o.is_open for o in self.matcher.orders.values()):  # unique among open
            return 400, {"code": -4116, "msg": "ClientOrderId is duplicated."}
        result = self.matcher.place(
            symbol, p.get("side", "").lower(), price, size, "ioc" if tif in ("IOC", "FOK") else "gtc", tif == "GTX", cid
        )
        if isinstance(result, str):
            code, msg = ERRORS.get(result, ERRORS["rejected"])
            return 400, {"code": code, "msg": msg}
        return 200, self._order(result, tif)

    def _find(self, p: dict[str, str]) -> MOrder | None:
        orders = self.matcher.orders.values()
        if "orderId" in p:
            order = self.matcher.orders.get(int(p["orderId"]))
        else:
            order = next((o for o in orders if o.client_id == p.get("origClientOrderId")), None)
        return order if order is not None and order.symbol == p.get("symbol") else None

    def _query(self, p: dict[str, str]) -> tuple[int, Any]:
        order = self._find(p)
        if order is None:
            return 400, {"code": -2013, "msg": "Order does not exist."}
        return 200, self._order(order)

    def _cancel(self, p: dict[str, str]) -> tuple[int, Any]:
        order = self._find(p)
        if order is None or self.matcher.cancel(order.order_id) is None:
            return 400, {"code": -2011, "msg": "Unknown order sent."}
        return 200, self._order(order)

    def _open_orders(self, p: dict[str, str]) -> tuple[int, Any]:
        return 200, [self._order(o) for o in self.matcher.open_orders(p.get("symbol"))]

    def _cancel_all(self, p: dict[str, str]) -> tuple[int, Any]:
        self.matcher.cancel_all(p.get("symbol"))
        return 200, {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _user_trades(self, p: dict[str, str]) -> tuple[int, Any]:
        fills = [f for f in self.matcher.fills if f.symbol == p.get("symbol")]
        if "orderId" in p:
            fills = [f for f in fills if f.order_id == int(p["orderId"])]
        return 200, [self._trade(f) for f in fills][-int(p.get("limit", 500)) :]

    def _balance(self, p: dict[str, str]) -> tuple[int, Any]:
        m = self.matcher
        return 200, [
            {
                "accountAlias": "SgsR",
                "asset": "USDT",
                "balance": fmt(m.cash),
                "crossWalletBalance": fmt(m.cash),
                "crossUnPnl": "0",
                "availableBalance": fmt(m.available()),
                "maxWithdrawAmount": fmt(m.available()),
                "marginAvailable": True,
                "updateTime": int(time.time() * 1000),
            }
        ]

    def _account(self, p: dict[str, str]) -> tuple[int, Any]:
        m = self.matcher
        cash, free = fmt(m.cash), fmt(m.available())
        asset = {
            "asset": "USDT",
            "walletBalance": cash,
            "unrealizedProfit": "0",
            "marginBalance": cash,
            "maintMargin": "0",
            "initialMargin": fmt(m.cash - m.available()),
            "positionInitialMargin": "0",
            "openOrderInitialMargin": "0",
            "crossWalletBalance": cash,
            "crossUnPnl": "0",
            "availableBalance": free,
            "maxWithdrawAmount": free,
            "updateTime": int(time.time() * 1000),
        }
        return 200, {
            "totalWalletBalance": cash,
            "totalMarginBalance": cash,
            "availableBalance": free,
            "maxWithdrawAmount": free,
            "assets": [asset],
            "positions": [],
        }

    def _position_risk(self, p: dict[str, str]) -> tuple[int, Any]:
        out = []
        for symbol in self.markets:
            if p.get("symbol") not in (None, symbol):
                continue
            size = self.matcher.positions.get(symbol, Decimal(0))
            entry = self.matcher.entry.get(symbol, Decimal(0))
            mark = self.matcher.mark(symbol, entry)
            out.append(
                {
                    "symbol": symbol,
                    "positionSide": "BOTH",
                    "positionAmt": fmt(size),
                    "entryPrice": fmt(entry),
                    "breakEvenPrice": fmt(entry),
                    "markPrice": fmt(mark),
                    "unRealizedProfit": fmt((mark - entry) * size),
                    "liquidationPrice": "0",
                    "isolatedMargin": "0",
                    "notional": fmt(size * mark),
                    "marginAsset": "USDT",
                    "isolatedWallet": "0",
                    "initialMargin": fmt(abs(size) * mark / self.leverage),
                    "maintMargin": "0",
                    "positionInitialMargin": fmt(abs(size) * mark / self.leverage),
                    "openOrderInitialMargin": "0",
                    "adl": 0,
                    "bidNotional": "0",
                    "askNotional": "0",
                    "leverage": str(self.leverage),
                    "marginType": "cross",
                    "updateTime": int(time.time() * 1000),
                }
            )
        return 200, out

    def _brackets(self, p: dict[str, str]) -> tuple[int, Any]:
        bracket = {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
                   "maintMarginRatio": 0.004, "cum": 0.0}  # fmt: skip
        return 200, [{"symbol": s, "brackets": [bracket]} for s in self.markets]

    # ---- wire formats ------------------------------------------------------------------------------
    def _exchange_info(self) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "futuresType": "U_MARGINED",
            "rateLimits": [],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [
                usdm_symbol_info(base, tick_size=fmt(TICK), step_size=fmt(STEP), min_notional=self.min_notional)
                for base in self.markets.values()
            ],
        }

    def _depth(self, symbol: str) -> dict[str, Any]:
        bids, asks = self.matcher.depth(symbol)
        now = int(time.time() * 1000)
        return {"lastUpdateId": 1, "E": now, "T": now, "bids": bids, "asks": asks}

    @staticmethod
    def _status(o: MOrder) -> str:
        if o.status == "open":
            return "PARTIALLY_FILLED" if o.filled > 0 else "NEW"
        return STATUS[o.status]

    def _order(self, o: MOrder, tif: str | None = None) -> dict[str, Any]:
        avg = o.notional / o.filled if o.filled else Decimal(0)
        return {
            "orderId": o.order_id,
            "symbol": o.symbol,
            "status": self._status(o),
            "clientOrderId": o.client_id,
            "price": fmt(o.price),
            "avgPrice": fmt(avg),
            "origQty": fmt(o.size),
            "executedQty": fmt(o.filled),
            "cumQty": fmt(o.filled),
            "cumQuote": fmt(o.notional),
            "timeInForce": tif or ("GTX" if o.post_only else "IOC" if o.tif == "ioc" else "GTC"),
            "type": "LIMIT",
            "reduceOnly": False,
            "closePosition": False,
            "side": o.side.upper(),
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": "LIMIT",
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "time": o.created_ms,
            "updateTime": o.updated_ms,
        }

    @staticmethod
    def _trade(f: MFill) -> dict[str, Any]:
        return {
            "buyer": f.side == "buy",
            "commission": fmt(f.fee),
            "commissionAsset": "USDT",
            "id": f.trade_id,
            "maker": f.maker,
            "orderId": f.order_id,
            "price": fmt(f.price),
            "qty": fmt(f.size),
            "quoteQty": fmt(f.price * f.size),
            "realizedPnl": "0",
            "side": f.side.upper(),
            "positionSide": "BOTH",
            "symbol": f.symbol,
            "time": f.ts_ms,
        }

    # ---- user data stream ----------------------------------------------------------------------------
    def handle_ws(self, conn: WsConn, message: Any) -> list[Any]:
        return []  # the user data stream takes no requests; ccxt sends none on it

    def stream_conns(self) -> list[WsConn]:
        """Connections holding a live listenKey (the user data streams)."""
        out = []
        for conn in list(self.conns):
            key = conn.request.query.get("listenKey") or conn.request.path.rsplit("/", 1)[-1]
            if key in self.listen_keys:
                out.append(conn)
        return out

    def _on_event(self, kind: str, order: MOrder, fill: MFill | None) -> None:
        now = int(time.time() * 1000)
        avg = order.notional / order.filled if order.filled else Decimal(0)
        o: dict[str, Any] = {
            "s": order.symbol,
            "c": order.client_id,
            "S": order.side.upper(),
            "o": "LIMIT",
            "f": "GTX" if order.post_only else "IOC" if order.tif == "ioc" else "GTC",
            "q": fmt(order.size),
            "p": fmt(order.price),
            "ap": fmt(avg),
            "sp": "0",
            "x": EXEC[kind],
            "X": self._status(order),
            "i": order.order_id,
            "l": fmt(fill.size) if fill else "0",
            "z": fmt(order.filled),
            "L": fmt(fill.price) if fill else "0",
            "T": now,
            "t": fill.trade_id if fill else 0,
            "b": "0",
            "a": "0",
            "m": fill.maker if fill else False,
            "R": False,
            "wt": "CONTRACT_PRICE",
            "ot": "LIMIT",
            "ps": "BOTH",
            "cp": False,
            "rp": "0",
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": "NONE",
            "gtd": 0,
        }
        if fill is not None:
            o.update({"N": "USDT", "n": fmt(fill.fee)})
        event = {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": o}
        for conn in self.stream_conns():
            self.push(conn, event)


_FAPI = {
    "fapiPublic": "v1",
    "fapiPublicV2": "v2",
    "fapiPublicV3": "v3",
    "fapiPrivate": "v1",
    "fapiPrivateV2": "v2",
    "fapiPrivateV3": "v3",
}
_ROUTES = {
    ("POST", "/fapi/v1/order"): "_place",
    ("GET", "/fapi/v1/order"): "_query",
    ("DELETE", "/fapi/v1/order"): "_cancel",
    ("GET", "/fapi/v1/openOrders"): "_open_orders",
    ("DELETE", "/fapi/v1/allOpenOrders"): "_cancel_all",
    ("GET", "/fapi/v1/userTrades"): "_user_trades",
    ("GET", "/fapi/v2/balance"): "_balance",
    ("GET", "/fapi/v2/account"): "_account",
    ("GET", "/fapi/v2/positionRisk"): "_position_risk",
    ("GET", "/fapi/v1/leverageBracket"): "_brackets",
}
