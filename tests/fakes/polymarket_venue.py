"""A fake Polymarket (gamma + CLOB + data API) on 127.0.0.1 for the real `ccxt.prediction.polymarket`.

Point the client at it with `exchange.urls['api'].update(venue.ccxt_urls())` and a private key; the
client derives its L2 credentials (`GET /auth/derive-api-key`, L1 headers) and signs every private
request with them: the fake checks the HMAC-SHA256 of `timestamp + method + path + body` under the
secret it issued, and that a signed order's signer is the key's owner (401 otherwise).

Windows: a BTC up/down market opens every `window_s` seconds (slug `btc-updown-5m-<unix start>`) on
an injectable clock (`clock() -> unix seconds`); it resolves at its end from `reference_price(t)`
(end >= start is Up): outcome prices become 1/0, open orders are cancelled and the wallet's winning
tokens are redeemed for 1 USDC each. Each window has a per-market fee (`base_fee` bps, default 2500,
`set_fee`) and tick size (default 0.01, `set_tick`; a tick change is what `/tick-size` reports at once).

Market WebSocket (`ccxt_urls()['ws']`, `polymarket_ws.MarketChannel`): book snapshots on subscribe and
on `set_book`, `price_change` when a fill takes from a level, `last_trade_price` for every print.

Matching (deterministic): each token has a book of other participants' liquidity (`set_book`, default
0.48 bid / 0.52 ask x 100 on Up, 0.47 / 0.51 on Down). An order that crosses takes liquidity at the
book's prices (taker fee charged in tokens on a BUY, in USDC on a SELL:
shares x price x rate x (price x (1 - price))^2); a post-only order that would cross is rejected; the
rest of a GTC order rests and fills (as maker, no fee) when `trade(token_id, price, size)` prints at or
through its price. Balances: USDC (default 1,000) and tokens; an order the balance cannot cover is
refused with "not enough balance / allowance".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
from collections.abc import Callable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.polymarket_markets import FakeOrder, Window, event_json
from tests.fakes.polymarket_matching import FEE_EXPONENT, UNIT, PolymarketMatching
from tests.fakes.polymarket_ws import MarketChannel

__all__ = ["FEE_EXPONENT", "UNIT", "FakePolymarketVenue"]


class FakePolymarketVenue(PolymarketMatching):
    """Use as a context manager; `base_url` is where it listens."""

    def __init__(
        self,
        clock: Callable[[], float],
        reference_price: Callable[[int], float],
        *,
        window_s: int = 300,
        usdc: Decimal = Decimal(1000),
    ) -> None:
        self.clock = clock
        self.reference_price = reference_price
        self.window_s = window_s
        self.lock = threading.RLock()
        self.windows: dict[int, Window] = {}
        self.orders: dict[str, FakeOrder] = {}
        self.public_trades: list[dict[str, Any]] = []
        self.my_trades: list[dict[str, Any]] = []
        self.usdc = usdc
        self.tokens: dict[str, Decimal] = {}
        self.api_key, self.secret, self.passphrase = "fake-key-1", base64.urlsafe_b64encode(b"s" * 32).decode(), "pp"
        self.owner_address: str | None = None
        self.requests: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        self.ws = MarketChannel(self._ws_book)
        venue = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                query = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(url.query).items()}
                status, payload = venue.handle(method, url.path, query, body, dict(self.headers))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # ---- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> FakePolymarketVenue:
        self.thread.start()
        self.ws.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ws.stop()
        self.server.shutdown()
        self.server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def ccxt_urls(self) -> dict[str, str]:
        return {
            "gamma": f"{self.base_url}/gamma",
            "clob": f"{self.base_url}/clob",
            "data": f"{self.base_url}/data",
            "ws": f"ws://127.0.0.1:{self.ws.port}/ws/market",
        }

    # ---- windows ------------------------------------------------------------------------------
    def window(self, start: int) -> Window:
        with self.lock:
            if start not in self.windows:
                up, down = (
                    str(int(hashlib.sha256(f"{start}:{o}".encode()).hexdigest(), 16))[:40] for o in ("up", "down")
                )
                w = Window(start, up, down)
                d = Decimal
                w.books[up] = {"bids": [[d("0.48"), d(100)]], "asks": [[d("0.52"), d(100)]]}
                w.books[down] = {"bids": [[d("0.47"), d(100)]], "asks": [[d("0.51"), d(100)]]}
                self.windows[start] = w
            return self.windows[start]

    def current_start(self) -> int:
        now = int(self.clock())
        return now - now % self.window_s

    def _window_of(self, token_id: str) -> Window | None:
        return next((w for w in self.windows.values() if token_id in (w.up, w.down)), None)

    def set_book(self, token_id: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        with self.lock:
            w = self._window_of(token_id)
            assert w is not None, f"unknown token {token_id}"
            w.books[token_id] = {
                "bids": [[Decimal(str(p)), Decimal(str(s))] for p, s in bids],
                "asks": [[Decimal(str(p)), Decimal(str(s))] for p, s in asks],
            }
        book = self._ws_book(token_id)
        if book is not None:
            self.ws.publish(token_id, [book])

    def _ws_book(self, token_id: str) -> dict[str, Any] | None:
        with self.lock:
            w = self._window_of(token_id)
            if w is None:
                return None
            book = w.books[token_id]
            return {
                "event_type": "book",
                "asset_id": token_id,
                "timestamp": str(int(self.clock() * 1000)),
                "bids": [{"price": str(p), "size": str(q)} for p, q in book["bids"] if q > 0],
                "asks": [{"price": str(p), "size": str(q)} for p, q in book["asks"] if q > 0],
            }

    def set_fee(self, start: int, bps: int) -> None:
        self.window(start).base_fee_bps = bps

    def set_tick(self, start: int, tick: str) -> None:
        self.window(start).tick = Decimal(tick)

    def _resolve_due(self) -> None:
        now = self.clock()
        for w in self.windows.values():
            if w.winner is None and w.start + self.window_s <= now:
                up = self.reference_price(w.start + self.window_s) >= self.reference_price(w.start)
                w.winner = w.up if up else w.down
                for order in self.orders.values():
                    if order.token_id in (w.up, w.down) and order.status == "LIVE":
                        self._release(order)
                        order.status = "CANCELED"
                self.usdc += self.tokens.pop(w.winner, Decimal(0))
                self.tokens.pop(w.down if up else w.up, None)

    # ---- request dispatch ---------------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: dict[str, Any], body: str, headers: dict[str, str]
    ) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path))
            self._resolve_due()
            group, _, rest = path.lstrip("/").partition("/")
            if group == "gamma" and method == "GET":
                return self._gamma(rest, query)
            if group == "data" and rest == "trades":
                return 200, [t for t in self.public_trades if t["conditionId"] == query.get("market")]
            if group != "clob":
                return 404, {"error": f"no route {path}"}
            public = {"book": self._book, "fee-rate": self._fee, "tick-size": self._tick}
            if method == "GET" and rest in public:
                return public[rest](query)
            if rest == "auth/derive-api-key":
                return self._derive(headers)
            denied = self._check_l2(method, rest, body, headers)
            if denied:
                return 401, {"error": denied}
            return self._private(method, rest, query, json.loads(body) if body else {})

    def _gamma(self, rest: str, query: dict[str, Any]) -> tuple[int, Any]:
        if rest == "events":
            slug = str(query.get("slug", ""))
            prefix = "btc-updown-5m-"
            if not slug.startswith(prefix) or not slug[len(prefix) :].isdigit():
                return 200, []
            start = int(slug[len(prefix) :])
            if start % self.window_s or start > self.current_start() + self.window_s:
                return 200, []  # not listed (yet)
            return 200, [event_json(self.window_s, self.window(start))]
        if rest == "markets":
            ids = query.get("clob_token_ids", [])
            ids = [ids] if isinstance(ids, str) else ids
            found = [self._window_of(t) for t in ids]
            return 200, [event_json(self.window_s, w)["markets"][0] for w in found if w is not None]
        return 404, {"error": f"no gamma route {rest}"}

    def _book(self, query: dict[str, Any]) -> tuple[int, Any]:
        w = self._window_of(str(query.get("token_id")))
        if w is None:
            return 404, {"error": "No orderbook exists for the requested token id"}
        book = w.books[str(query["token_id"])]
        levels = {
            # the CLOB lists levels away from the touch first: bids ascending, asks descending
            "bids": [{"price": str(p), "size": str(s)} for p, s in sorted(book["bids"])],
            "asks": [{"price": str(p), "size": str(s)} for p, s in sorted(book["asks"], reverse=True)],
        }
        return 200, {
            "market": "",
            "asset_id": query["token_id"],
            "timestamp": str(int(self.clock() * 1000)),
            "hash": "0",
            **levels,
            "min_order_size": "5",
            "tick_size": str(w.tick),
            "neg_risk": False,
        }

    def _fee(self, query: dict[str, Any]) -> tuple[int, Any]:
        w = self._window_of(str(query.get("token_id")))
        return (404, {"error": "unknown token"}) if w is None else (200, {"base_fee": w.base_fee_bps})

    def _tick(self, query: dict[str, Any]) -> tuple[int, Any]:
        w = self._window_of(str(query.get("token_id")))
        return (404, {"error": "unknown token"}) if w is None else (200, {"minimum_tick_size": float(w.tick)})

    # ---- auth -----------------------------------------------------------------------------------
    def _derive(self, headers: dict[str, str]) -> tuple[int, Any]:
        address, signature = headers.get("POLY_ADDRESS"), headers.get("POLY_SIGNATURE", "")
        if not address or not signature.startswith("0x") or len(signature) != 132:
            return 401, {"error": "Unauthorized: bad L1 headers"}
        self.owner_address = address
        return 200, {"apiKey": self.api_key, "secret": self.secret, "passphrase": self.passphrase}

    def _check_l2(self, method: str, rest: str, body: str, headers: dict[str, str]) -> str | None:
        if headers.get("POLY_API_KEY") != self.api_key or headers.get("POLY_PASSPHRASE") != self.passphrase:
            return "Unauthorized: api key not found"
        message = headers.get("POLY_TIMESTAMP", "") + method + "/" + rest + body
        key = base64.urlsafe_b64decode(self.secret)
        expected = base64.urlsafe_b64encode(hmac.new(key, message.encode(), hashlib.sha256).digest()).decode()
        return None if hmac.compare_digest(expected, headers.get("POLY_SIGNATURE", "")) else "invalid signature"

    # ---- private ------------------------------------------------------------------------------
    def _private(self, method: str, rest: str, query: dict[str, Any], body: Any) -> tuple[int, Any]:
        if method == "POST" and rest == "order":
            return self._place(body)
        if method == "DELETE" and rest == "order":
            return self._cancel([body.get("orderID")])
        if method == "DELETE" and rest == "cancel-all":
            return self._cancel([o.order_id for o in self.orders.values() if o.status == "LIVE"])
        if method == "GET" and rest == "data/orders":
            live = [o for o in self.orders.values() if o.status == "LIVE"]
            asset = query.get("asset_id")
            return 200, {"data": [self._order_json(o) for o in live if asset in (None, o.token_id)]}
        if method == "GET" and rest.startswith("data/order/"):
            order = self.orders.get(rest.rsplit("/", 1)[1])
            return (404, {"error": "order not found"}) if order is None else (200, self._order_json(order))
        if method == "GET" and rest == "data/trades":
            asset = query.get("asset_id")
            return 200, {"data": [t for t in self.my_trades if asset in (None, t["asset_id"])]}
        if method == "GET" and rest == "balance-allowance":
            if query.get("asset_type") == "CONDITIONAL":
                return 200, {"balance": str(int(self.tokens.get(str(query.get("token_id")), Decimal(0)) * UNIT))}
            return 200, {"balance": str(int(self.usdc * UNIT))}
        return 404, {"error": f"no clob route {method} {rest}"}

    def _order_json(self, o: FakeOrder) -> dict[str, Any]:
        return {
            "id": o.order_id,
            "status": o.status,
            "asset_id": o.token_id,
            "side": o.side,
            "price": str(o.price),
            "original_size": str(o.size),
            "size_matched": str(o.matched),
            "created_at": o.created_s,
            "owner": o.owner,
            "order_type": "GTC",
        }
