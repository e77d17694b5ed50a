"""Binance spot's user data stream over its WebSocket API, for a `FakeTradingVenue` (the spot REST fake).

ccxt 4.5's `binance.watch_orders` on spot does not use a listenKey: it opens the WebSocket API
(`urls['api']['ws']['ws-api']['spot']`, here `ws://127.0.0.1:<port>/ws-api/v3`) and sends
`{"id": ..., "method": "userDataStream.subscribe.signature", "params": {"apiKey", "timestamp",
"signature"}}`, signed like a REST request (HMAC-SHA256 hex of the sorted, unquoted `k=v&...` under the
secret). The stream checks the key and the signature as Binance does (-2015 / -1022 in an error
reply), answers `{"id", "status": 200, "result": {"subscriptionId": n}}`, then sends every execution
report of the account as `{"subscriptionId": n, "event": {"e": "executionReport", ...}}` in Binance's
field letters (s, c, S, o, f, q, p, x execution type, X status, i, l, z, L, n, N, T, t, w, m, O, Z, Y).

Use: `with FakeTradingVenue(...) as rest, BinanceSpotStream(rest) as stream:` and give ccxt.pro
`stream.ccxt_config()`. Faults (from `AioVenue`): `drop_websockets()`, `update_delay`, `drop_updates(n)`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlencode

from tests.fakes.aio_venue import AioVenue, WsConn
from tests.fakes.trading_venue import FakeTradingVenue, VenueOrder, _fmt


class BinanceSpotStream(AioVenue):
    def __init__(self, venue: FakeTradingVenue) -> None:
        super().__init__()
        self.venue = venue
        self._subscription_ids = itertools.count(0)
        venue.listeners.append(self._on_report)

    def ccxt_config(self) -> dict[str, Any]:
        """Keys and `urls` for ccxt.pro binance: REST to the spot fake, the WebSocket API to this stream."""
        rest = self.venue.ccxt_urls()
        ws = {"spot": f"{self.ws_url}/ws", "ws-api": {"spot": f"{self.ws_url}/ws-api/v3"}}
        return {
            "apiKey": self.venue.api_key,
            "secret": self.venue.api_secret,
            "urls": {"api": {**rest, "ws": ws}},
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
        }

    def streams(self) -> list[WsConn]:
        return [c for c in list(self.conns) if c.subscriptions]

    # ---- WebSocket API -------------------------------------------------------------------------------
    def handle_http(
        self, method: str, path: str, query: dict[str, str], body: str, headers: dict[str, str]
    ) -> tuple[int, Any]:
        return 404, {"code": -1, "msg": "REST is served by the spot venue"}

    def handle_ws(self, conn: WsConn, message: Any) -> list[Any]:
        request_id = message.get("id")
        if message.get("method") != "userDataStream.subscribe.signature":
            return [{"id": request_id, "status": 400, "error": {"code": -1100, "msg": "Unknown method."}}]
        params = dict(message.get("params") or {})
        signature = str(params.pop("signature", ""))
        if params.get("apiKey") != self.venue.api_key:
            return [{"id": request_id, "status": 401, "error": {"code": -2015, "msg": "Invalid API-key."}}]
        payload = unquote(urlencode(sorted((k, str(v)) for k, v in params.items())))
        expected = hmac.new(self.venue.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            error = {"code": -1022, "msg": "Signature for this request is not valid."}
            return [{"id": request_id, "status": 400, "error": error}]
        subscription = next(self._subscription_ids)
        conn.subscriptions.add(str(subscription))
        return [{"id": request_id, "status": 200, "result": {"subscriptionId": subscription}}]

    def _on_report(self, order: VenueOrder, execution: str, trade: dict[str, Any] | None) -> None:
        now = int(time.time() * 1000)
        event: dict[str, Any] = {
            "e": "executionReport",
            "E": now,
            "s": order.symbol,
            "c": order.client_order_id,
            "S": order.side,
            "o": order.type,
            "f": order.time_in_force,
            "q": _fmt(order.orig_qty),
            "p": _fmt(order.price),
            "P": "0",
            "F": "0",
            "g": -1,
            "C": "",
            "x": execution,
            "X": order.status,
            "r": "NONE",
            "i": order.order_id,
            "l": trade["qty"] if trade else "0",
            "z": _fmt(order.executed_qty),
            "L": trade["price"] if trade else "0",
            "n": trade["commission"] if trade else "0",
            "N": trade["commissionAsset"] if trade else None,
            "T": trade["time"] if trade else now,
            "t": trade["id"] if trade else -1,
            "I": now,
            "w": order.is_open,
            "m": bool(trade["isMaker"]) if trade else False,
            "M": False,
            "O": order.time_ms,
            "Z": _fmt(order.quote_qty),
            "Y": _fmt(Decimal(trade["quoteQty"])) if trade else "0",
            "Q": "0",
            "W": order.time_ms,
            "V": "NONE",
        }
        for conn in self.streams():
            for subscription in conn.subscriptions:
                self.push(conn, {"subscriptionId": int(subscription), "event": event})
