"""A fake Backpack exchange (REST + WebSocket) on 127.0.0.1 for the real ccxt / ccxt.pro backpack clients.

Point a client at it with `venue.ccxt_config()` (keys and `urls`). Requests are signed as Backpack does
and checked like Backpack: `X-API-Key` is the base64 ed25519 public key, `X-Signature` the ed25519
signature of `instruction=<name>&<sorted params>&timestamp=<ms>&window=<ms>` under the key's secret
seed, `X-Timestamp` within `X-Window` of the venue's clock; otherwise 401 `UNAUTHORIZED` /
`INVALID_SIGNATURE`. The WebSocket subscription carries the same signature over `instruction=subscribe`.

REST: `GET /api/v1/markets | assets | securities | time | depth` (public); `POST|DELETE /api/v1/order`,
`GET /api/v1/order`, `GET|DELETE /api/v1/orders`, `GET /api/v1/capital`, `GET /api/v1/position`,
`GET /wapi/v1/history/orders`, `GET /wapi/v1/history/fills` (signed). WebSocket (any path):
`{"method": "SUBSCRIBE", "params": ["account.orderUpdate[.<symbol>]"], "signature": [...]}`, then
`{"stream": ..., "data": {"e": "orderAccepted" | "orderFill" | "orderCancelled" | "orderExpired", ...}}`
in Backpack's field letters (i order id, c client id, s symbol, S Bid/Ask, X status, q quantity,
p price, z executed quantity, Z executed quote quantity, l/L last fill quantity/price, m maker,
n fee, N fee asset, t trade id, E/T microseconds). Backpack has no private trade stream
(`watchMyTrades`): a client that missed an update polls `/wapi/v1/history/fills`.

Markets (venue ids): `BTC_USDC` spot and `BTC_USDC_PERP` perpetual, tick 0.1, step 0.00001.
Matching, balances and faults: `tests.fakes.matching.Matcher` (`venue.matcher`) and
`tests.fakes.aio_venue.AioVenue` (hang, drop WebSocket, delay or drop updates).
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.fakes.aio_venue import AioVenue, WsConn
from tests.fakes.matching import Matcher, MFill, MOrder, fmt

SEED = bytes(range(1, 33))  # the test account's ed25519 secret seed
TICK, STEP = Decimal("0.1"), Decimal("0.00001")
INSTRUCTIONS = {
    ("GET", "/api/v1/capital"): "balanceQuery",
    ("GET", "/api/v1/position"): "positionQuery",
    ("POST", "/api/v1/order"): "orderExecute",
    ("GET", "/api/v1/order"): "orderQuery",
    ("DELETE", "/api/v1/order"): "orderCancel",
    ("GET", "/api/v1/orders"): "orderQueryAll",
    ("DELETE", "/api/v1/orders"): "orderCancelAll",
    ("GET", "/wapi/v1/history/orders"): "orderHistoryQueryAll",
    ("GET", "/wapi/v1/history/fills"): "fillHistoryQueryAll",
}
ERRORS = {
    "post_only_cross": (400, "INVALID_ORDER", "Order would immediately match and take."),
    "insufficient": (400, "INSUFFICIENT_FUNDS", "Insufficient funds"),
    "bad_size": (400, "INVALID_QUANTITY", "Quantity is not a multiple of the step size"),
    "bad_price": (400, "INVALID_PRICE", "Price is not a multiple of the tick size"),
    "no_liquidity": (400, "INVALID_ORDER", "Order would not match"),
}
STATUS = {"canceled": "Cancelled", "expired": "Expired", "filled": "Filled"}
EVENTS = {"accepted": "orderAccepted", "fill": "orderFill", "canceled": "orderCancelled", "expired": "orderExpired"}


def signing_payload(instruction: str, params: dict[str, Any], ts: str, window: str) -> str:
    values = {k: ("true" if v is True else "false" if v is False else str(v)) for k, v in sorted(params.items())}
    query = urlencode(values, quote_via=quote)
    return f"instruction={instruction}&" + (f"{query}&" if query else "") + f"timestamp={ts}&window={window}"


class FakeBackpack(AioVenue):
    def __init__(self, cash: Decimal = Decimal(10_000), **matcher_args: Any) -> None:
        super().__init__()
        private = Ed25519PrivateKey.from_private_bytes(SEED)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.api_key = base64.b64encode(public).decode()
        self.api_secret = base64.b64encode(SEED).decode()
        self.markets = {"BTC_USDC": ("BTC", "USDC", "SPOT"), "BTC_USDC_PERP": ("BTC", "USDC", "PERP")}
        self.matcher = Matcher(
            spot={"BTC_USDC"},
            cash=cash,
            lot={m: STEP for m in self.markets},
            tick={m: TICK for m in self.markets},
            ioc_without_match_expires=True,
            **matcher_args,
        )
        self.matcher.listeners.append(self._on_event)

    def ccxt_config(self) -> dict[str, Any]:
        urls = {
            "public": self.base_url,
            "private": self.base_url,
            "ws": {"public": self.ws_url, "private": self.ws_url},
        }
        return {"apiKey": self.api_key, "secret": self.api_secret, "urls": {"api": urls}}

    # ---- REST ----------------------------------------------------------------------------------------
    def handle_http(
        self, method: str, path: str, query: dict[str, str], body: str, headers: dict[str, str]
    ) -> tuple[int, Any]:
        params: dict[str, Any] = dict(query) if method == "GET" else (json.loads(body) if body else {})
        self.requests.append((method, path, params))
        public = {
            "/api/v1/markets": lambda: [self._market(m) for m in self.markets],
            "/api/v1/assets": lambda: [
                {"symbol": a, "displayName": a, "coingeckoId": None, "tokens": []} for a in ("BTC", "USDC")
            ],
            "/api/v1/securities": lambda: [],
            "/api/v1/time": lambda: int(time.time() * 1000),
            "/api/v1/depth": lambda: self._depth(params.get("symbol", "")),
        }
        if method == "GET" and path in public:
            return 200, public[path]()
        instruction = INSTRUCTIONS.get((method, path))
        if instruction is None:
            return 404, {"code": "RESOURCE_NOT_FOUND", "message": f"no route {method} {path}"}
        problem = self._auth(instruction, params, headers)
        if problem is not None:
            return problem
        with self.matcher.lock:
            return self._private(instruction, params)

    def _auth(self, instruction: str, params: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any] | None:
        key, ts, window = headers.get("x-api-key"), headers.get("x-timestamp", "0"), headers.get("x-window", "5000")
        if key != self.api_key:
            return 401, {"code": "UNAUTHORIZED", "message": "API key is not valid"}
        if abs(time.time() * 1000 - int(ts)) > int(window):
            return 400, {"code": "INVALID_CLIENT_REQUEST", "message": "Request has expired"}
        if not self._signed(signing_payload(instruction, params, ts, window), headers.get("x-signature", "")):
            return 401, {"code": "INVALID_SIGNATURE", "message": "Signature is not valid"}
        return None

    def _signed(self, payload: str, signature: str) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(base64.b64decode(self.api_key)).verify(
                base64.b64decode(signature), payload.encode()
            )
        except (InvalidSignature, ValueError):
            return False
        return True

    def _private(self, instruction: str, p: dict[str, Any]) -> tuple[int, Any]:
        m = self.matcher
        if instruction == "orderExecute":
            return self._execute(p)
        if instruction == "orderCancel":
            order = m.cancel(int(p.get("orderId", 0)))
            if order is None:
                return 404, {"code": "RESOURCE_NOT_FOUND", "message": "Order not found"}
            return 200, self._order(order)
        if instruction == "orderCancelAll":
            return 200, [self._order(o) for o in m.cancel_all(p.get("symbol"))]
        if instruction == "orderQueryAll":
            return 200, [self._order(o) for o in m.open_orders(p.get("symbol"))]
        if instruction == "orderQuery":
            order = m.orders.get(int(p.get("orderId", 0)))
            if order is None or not order.is_open:
                return 404, {"code": "RESOURCE_NOT_FOUND", "message": "Order not found"}
            return 200, self._order(order)
        if instruction == "orderHistoryQueryAll":
            rows = [o for o in m.orders.values() if p.get("symbol") in (None, o.symbol)]
            rows = [o for o in rows if p.get("orderId") in (None, str(o.order_id))]
            return 200, [self._order(o) for o in rows]
        if instruction == "fillHistoryQueryAll":
            fills = [f for f in m.fills if p.get("symbol") in (None, f.symbol)]
            return 200, [self._fill(f) for f in fills if p.get("orderId") in (None, str(f.order_id))]
        if instruction == "balanceQuery":
            return 200, self._capital()
        return 200, self._positions()

    def _execute(self, p: dict[str, Any]) -> tuple[int, Any]:
        symbol = p.get("symbol", "")
        if symbol not in self.markets:
            return 400, {"code": "INVALID_MARKET", "message": "Invalid market"}
        tif = str(p.get("timeInForce", "GTC")).upper()
        post_only = bool(p.get("postOnly")) or tif == "PO"
        client_id = p.get("clientId")
        result = self.matcher.place(
            symbol,
            "buy" if p.get("side") == "Bid" else "sell",
            Decimal(str(p.get("price"))),
            Decimal(str(p.get("quantity"))),
            "ioc" if tif in ("IOC", "FOK") else "gtc",
            post_only,
            None if client_id is None else str(client_id),
        )
        if isinstance(result, str):
            status, code, message = ERRORS[result]
            return status, {"code": code, "message": message}
        return 200, self._order(result)

    # ---- wire formats ------------------------------------------------------------------------------
    def _market(self, venue_id: str) -> dict[str, Any]:
        base, quote_, kind = self.markets[venue_id]
        return {
            "symbol": venue_id,
            "baseSymbol": base,
            "quoteSymbol": quote_,
            "marketType": kind,
            "orderBookState": "Open",
            "createdAt": "2025-01-21T06:34:54.691858",
            "filters": {
                "price": {"tickSize": fmt(TICK), "minPrice": fmt(TICK), "maxPrice": None},
                "quantity": {"stepSize": fmt(STEP), "minQuantity": fmt(STEP), "maxQuantity": None},
            },
        }

    def _depth(self, symbol: str) -> dict[str, Any]:
        bids, asks = self.matcher.depth(symbol)
        return {"asks": asks, "bids": bids, "lastUpdateId": "1", "timestamp": int(time.time() * 1_000_000)}

    @staticmethod
    def _status(o: MOrder) -> str:
        if o.status == "open":
            return "PartiallyFilled" if o.filled > 0 else "New"
        return STATUS[o.status]

    def _order(self, o: MOrder) -> dict[str, Any]:
        return {
            "id": str(o.order_id),
            "clientId": None if o.client_id is None else int(o.client_id),
            "createdAt": o.created_ms,
            "executedQuantity": fmt(o.filled),
            "executedQuoteQuantity": fmt(o.notional),
            "orderType": "Limit",
            "postOnly": o.post_only,
            "price": fmt(o.price),
            "quantity": fmt(o.size),
            "reduceOnly": None,
            "selfTradePrevention": "RejectTaker",
            "side": "Bid" if o.side == "buy" else "Ask",
            "status": self._status(o),
            "symbol": o.symbol,
            "timeInForce": "IOC" if o.tif == "ioc" else "GTC",
            "triggerPrice": None,
        }

    def _fill(self, f: MFill) -> dict[str, Any]:
        order = self.matcher.orders[f.order_id]
        stamp = datetime.fromtimestamp(f.ts_ms / 1000, UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")
        return {
            "clientId": order.client_id,
            "fee": fmt(f.fee),
            "feeSymbol": "USDC",
            "isMaker": f.maker,
            "orderId": str(f.order_id),
            "price": fmt(f.price),
            "quantity": fmt(f.size),
            "side": "Bid" if f.side == "buy" else "Ask",
            "symbol": f.symbol,
            "systemOrderType": None,
            "timestamp": stamp,
            "tradeId": f.trade_id,
        }

    def _capital(self) -> dict[str, Any]:
        m = self.matcher
        locked = m.cash - m.available()
        btc = m.positions.get("BTC_USDC", Decimal(0))
        return {
            "USDC": {"available": fmt(m.available()), "locked": fmt(locked), "staked": "0"},
            "BTC": {"available": fmt(btc), "locked": "0", "staked": "0"},
        }

    def _positions(self) -> list[dict[str, Any]]:
        out = []
        for symbol, size in self.matcher.positions.items():
            if symbol in self.matcher.spot or size == 0:
                continue
            entry = self.matcher.entry.get(symbol, Decimal(0))
            mark = self.matcher.mark(symbol, entry)
            out.append(
                {
                    "symbol": symbol,
                    "positionId": "1",
                    "entryPrice": fmt(entry),
                    "breakEvenPrice": fmt(entry),
                    "markPrice": fmt(mark),
                    "estLiquidationPrice": "0",
                    "netQuantity": fmt(size),
                    "netExposureQuantity": fmt(abs(size)),
                    "netExposureNotional": fmt(abs(size) * mark),
                    "netCost": fmt(size * entry),
                    "pnlRealized": "0",
                    "pnlUnrealized": fmt((mark - entry) * size),
                    "imf": "0.02",
                    "mmf": "0.0125",
                    "cumulativeFundingPayment": "0",
                    "cumulativeInterest": "0",
                }
            )
        return out

    # ---- WebSocket -------------------------------------------------------------------------------
    def handle_ws(self, conn: WsConn, message: Any) -> list[Any]:
        if message.get("method") not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            return []
        topics = [str(t) for t in message.get("params", [])]
        if any(t.startswith("account.") for t in topics):
            signature = message.get("signature") or ["", "", "0", "5000"]
            key, sig, ts, window = (str(x) for x in signature)
            if key != self.api_key or not self._signed(f"instruction=subscribe&timestamp={ts}&window={window}", sig):
                return [{"id": None, "error": {"code": 4006, "message": "Invalid signature"}}]
        if message["method"] == "SUBSCRIBE":
            conn.subscriptions.update(topics)
        else:
            conn.subscriptions.difference_update(topics)
        return []

    def _on_event(self, kind: str, order: MOrder, fill: MFill | None) -> None:
        micros = str(int(time.time() * 1_000_000))
        data: dict[str, Any] = {
            "e": EVENTS[kind],
            "E": micros,
            "T": micros,
            "s": order.symbol,
            "c": None if order.client_id is None else int(order.client_id),
            "S": "Bid" if order.side == "buy" else "Ask",
            "o": "LIMIT",
            "f": "IOC" if order.tif == "ioc" else "GTC",
            "q": fmt(order.size),
            "p": fmt(order.price),
            "X": self._status(order),
            "i": str(order.order_id),
            "z": fmt(order.filled),
            "Z": fmt(order.notional),
            "V": "RejectTaker",
            "O": "USER",
            "r": False,
        }
        if fill is not None:
            data.update(
                {
                    "l": fmt(fill.size),
                    "L": fmt(fill.price),
                    "m": fill.maker,
                    "n": fmt(fill.fee),
                    "N": "USDC",
                    "t": fill.trade_id,
                }
            )
        for conn in list(self.conns):
            for topic in (f"account.orderUpdate.{order.symbol}", "account.orderUpdate"):
                if topic in conn.subscriptions:
                    self.push(conn, {"stream": topic, "data": data})
                    break
