"""A fake Hyperliquid (REST `/info` + `/exchange`, WebSocket `/ws`) on 127.0.0.1 for the real ccxt /
ccxt.pro hyperliquid clients.

Point a client at it with `venue.ccxt_config()` (wallet address, private key, `urls`, and the options
that turn ccxt's builder fee and referrer off: see `pipelines.trading.hedge.venues`). Every L1 action
posted to `/exchange` is checked like Hyperliquid does: the signature must recover (EIP-712 "Agent"
struct over keccak(msgpack(action) | nonce | vault flag), domain "Exchange", chainId 1337) to the
account's wallet address, and nonces must increase; otherwise `{"status": "err", "response": ...}`.
Builder attachments on orders are recorded in `builder_fees` (tests assert they charge nothing).

`/info` types: `metaAndAssetCtxs`, `spotMeta`, `spotMetaAndAssetCtxs`, `perpDexs`, `userAbstraction`,
`exchangeStatus`, `clearinghouseState`, `spotClearinghouseState`, `frontendOpenOrders` / `openOrders`,
`orderStatus`, `userFills` / `userFillsByTime`, `l2Book`. `/exchange` actions: `order` (statuses
`resting` / `filled` / `error` with Hyperliquid's messages), `cancel`, `cancelByCloid`,
`approveBuilderFee`, `setReferrer`. WebSocket: `{"method": "subscribe", "subscription": {"type":
"orderUpdates" | "userFills", "user": ...}}` answered with `subscriptionResponse`; then `orderUpdates`
(status changes: open, filled, canceled) and `userFills` (every fill, with `tid`); `{"method": "ping"}`
-> `{"channel": "pong"}`.

One perpetual market, coin `BTC` (asset 0, szDecimals 5, mark 60,000, hence ccxt's tick of 1), margin
in USDC. Matching, balances and faults: `tests.fakes.matching.Matcher` (`venue.matcher`) and
`tests.fakes.aio_venue.AioVenue` (hang, drop WebSocket, delay or drop updates).
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import coincurve
from ccxt.static_dependencies import keccak
from ccxt.static_dependencies.msgpack import packb

from tests.fakes.aio_venue import AioVenue, WsConn
from tests.fakes.backpack_venue import fmt
from tests.fakes.matching import Matcher, MFill, MOrder

PRIVATE_KEY = "0x" + "11" * 32  # the test account's key
COIN, ASSET, SZ_DECIMALS, MARK = "BTC", 0, 5, Decimal(60000)
ERRORS = {
    "post_only_cross": "Post only order would have immediately matched, bbo was {bbo}. asset=0",
    "insufficient": "Insufficient margin to place order. asset=0",
    "no_liquidity": "Order could not immediately match against any resting orders. asset=0",
    "bad_size": "Order has invalid size.",
    "bad_price": "Price must be divisible by tick size. asset=0",
}


def _k(data: bytes) -> bytes:
    return bytes(keccak.SHA3(data))


def address_of(private_key_hex: str) -> str:
    public = coincurve.PrivateKey(bytes.fromhex(private_key_hex[2:])).public_key.format(compressed=False)
    return "0x" + _k(public[1:])[-20:].hex()


def l1_digest(action: dict[str, Any], nonce: int, vault: str | None, mainnet: bool = True) -> bytes:
    """The EIP-712 digest Hyperliquid's L1 actions are signed over (independent of ccxt's signer)."""
    data = packb(action) + nonce.to_bytes(8, "big") + (b"\x00" if vault is None else b"\x01" + bytes.fromhex(vault))
    connection_id = _k(data)
    domain_type = _k(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    domain = _k(domain_type + _k(b"Exchange") + _k(b"1") + (1337).to_bytes(32, "big") + bytes(32))
    agent_type = _k(b"Agent(string source,bytes32 connectionId)")
    struct = _k(agent_type + _k(b"a" if mainnet else b"b") + connection_id)
    return _k(b"\x19\x01" + domain + struct)


def recover(digest: bytes, signature: dict[str, Any]) -> str:
    r, s, v = int(signature["r"], 16), int(signature["s"], 16), int(signature["v"])
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v - 27])
    public = coincurve.PublicKey.from_signature_and_message(raw, digest, hasher=None).format(compressed=False)
    return "0x" + _k(public[1:])[-20:].hex()


class FakeHyperliquid(AioVenue):
    def __init__(self, cash: Decimal = Decimal(10_000), **matcher_args: Any) -> None:
        super().__init__()
        self.private_key = PRIVATE_KEY
        self.wallet = address_of(PRIVATE_KEY)
        self.matcher = Matcher(
            spot=set(),
            cash=cash,
            lot={COIN: Decimal(1).scaleb(-SZ_DECIMALS)},
            tick={COIN: Decimal(1)},
            maker_fee=Decimal("0.00015"),
            taker_fee=Decimal("0.00045"),
            **matcher_args,
        )
        self.matcher.listeners.append(self._on_event)
        self.builder_fees: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self._last_nonce = 0

    def ccxt_config(self) -> dict[str, Any]:
        from pipelines.trading.hedge.venues import ccxt_options

        return {
            "walletAddress": self.wallet,
            "privateKey": self.private_key,
            "urls": {"api": {"public": self.base_url, "private": self.base_url, "ws": {"public": f"{self.ws_url}/ws"}}},
            "options": ccxt_options("hyperliquid"),
        }

    # ---- REST ----------------------------------------------------------------------------------------
    def handle_http(
        self, method: str, path: str, query: dict[str, str], body: str, headers: dict[str, str]
    ) -> tuple[int, Any]:
        payload = json.loads(body) if body else {}
        self.requests.append((method, path, payload))
        with self.matcher.lock:
            if method == "POST" and path == "/info":
                return 200, self._info(payload)
            if method == "POST" and path == "/exchange":
                return 200, self._exchange(payload)
        return 404, {"status": "err", "response": f"no route {method} {path}"}

    def _info(self, p: dict[str, Any]) -> Any:
        kind, m = p.get("type"), self.matcher
        if kind == "metaAndAssetCtxs":
            universe = [{"name": COIN, "szDecimals": SZ_DECIMALS, "maxLeverage": 40, "onlyIsolated": False}]
            ctx = {"markPx": fmt(MARK), "midPx": fmt(MARK), "oraclePx": fmt(MARK), "funding": "0.0000125",
                   "openInterest": "100", "dayNtlVlm": "1000000", "prevDayPx": fmt(MARK), "premium": "0",
                   "impactPxs": [fmt(MARK), fmt(MARK)]}  # fmt: skip
            return [{"universe": universe}, [ctx]]
        if kind == "spotMeta":
            return {"universe": [], "tokens": [{"name": "USDC", "index": 0, "szDecimals": 8, "weiDecimals": 8}]}
        if kind == "spotMetaAndAssetCtxs":
            return [{"universe": [], "tokens": []}, []]
        if kind == "perpDexs":
            return [None]
        if kind == "userAbstraction":
            return "disabled"
        if kind == "exchangeStatus":
            return {"time": str(int(time.time() * 1000)), "specialStatuses": None}
        if kind == "clearinghouseState":
            return self._clearinghouse()
        if kind == "spotClearinghouseState":
            return {"balances": [{"coin": "USDC", "token": 0, "hold": "0", "total": fmt(m.cash)}]}
        if kind in ("frontendOpenOrders", "openOrders"):
            return [self._wire_order(o) for o in m.open_orders()]
        if kind == "orderStatus":
            return self._order_status(p.get("oid"))
        if kind in ("userFills", "userFillsByTime"):
            since = int(p.get("startTime", 0))
            return [self._wire_fill(f) for f in m.fills if f.ts_ms >= since]
        if kind == "l2Book":
            top = m.books.get(COIN)
            levels: list[list[dict[str, Any]]] = [[], []]
            if top is not None:
                levels = [
                    [{"px": fmt(top.bid), "sz": fmt(top.bid_qty), "n": 1}],
                    [{"px": fmt(top.ask), "sz": fmt(top.ask_qty), "n": 1}],
                ]
            return {"coin": COIN, "time": int(time.time() * 1000), "levels": levels}
        return {"status": "err", "response": f"unknown info type {kind}"}

    def _exchange(self, p: dict[str, Any]) -> Any:
        action, nonce = p.get("action", {}), int(p.get("nonce", 0))
        self.actions.append(action)
        if action.get("type") == "approveBuilderFee":  # a user-signed action (another domain): recorded
            self.builder_fees.append({"approved": action.get("maxFeeRate"), "builder": action.get("builder")})
            return {"status": "ok", "response": {"type": "default"}}
        try:
            signer = recover(l1_digest(action, nonce, p.get("vaultAddress")), p.get("signature", {}))
        except (KeyError, ValueError, TypeError) as exc:
            return {"status": "err", "response": f"Invalid signature: {exc}"}
        if signer != self.wallet.lower():
            return {"status": "err", "response": f"User or API Wallet {signer} does not exist."}
        if nonce <= self._last_nonce:
            return {"status": "err", "response": f"Invalid nonce: {nonce} is not above {self._last_nonce}"}
        self._last_nonce = nonce
        kind = action.get("type")
        if kind == "order":
            if "builder" in action:
                self.builder_fees.append(dict(action["builder"]))
            statuses = [self._place(o) for o in action.get("orders", [])]
            return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}
        if kind in ("cancel", "cancelByCloid"):
            statuses = [self._cancel(c) for c in action.get("cancels", [])]
            return {"status": "ok", "response": {"type": "cancel", "data": {"statuses": statuses}}}
        if kind == "setReferrer":
            return {"status": "err", "response": "Referrer already set"}
        return {"status": "err", "response": f"unsupported action {kind}"}

    def _place(self, o: dict[str, Any]) -> dict[str, Any]:
        if int(o.get("a", -1)) != ASSET:
            return {"error": "Invalid asset"}
        tif = str(o.get("t", {}).get("limit", {}).get("tif", "Gtc"))
        result = self.matcher.place(
            COIN, "buy" if o.get("b") else "sell", Decimal(str(o["p"])), Decimal(str(o["s"])),
            "ioc" if tif == "Ioc" else "gtc", tif == "Alo", o.get("c"),
        )  # fmt: skip
        if isinstance(result, str):
            top = self.matcher.books.get(COIN)
            bbo = f"{fmt(top.bid)}@{fmt(top.ask)}" if top else "none"
            return {"error": ERRORS[result].format(bbo=bbo)}
        if result.status == "filled" or (result.status == "expired" and result.filled > 0):
            avg = result.notional / result.filled
            return {"filled": {"totalSz": fmt(result.filled), "avgPx": fmt(avg), "oid": result.order_id}}
        if result.status == "expired":
            return {"error": ERRORS["no_liquidity"]}
        return {"resting": {"oid": result.order_id, **({"cloid": result.client_id} if result.client_id else {})}}

    def _cancel(self, c: dict[str, Any]) -> Any:
        m = self.matcher
        if "cloid" in c:
            match = next((o for o in m.orders.values() if o.client_id == c["cloid"]), None)
            oid = match.order_id if match else -1
        else:
            oid = int(c.get("o", -1))
        return (
            "success"
            if m.cancel(oid) is not None
            else {"error": "Order was never placed, already canceled, or filled. asset=0"}
        )

    # ---- wire formats ------------------------------------------------------------------------------
    def _wire_order(self, o: MOrder) -> dict[str, Any]:
        return {
            "coin": COIN, "side": "B" if o.side == "buy" else "A", "limitPx": fmt(o.price), "sz": fmt(o.remaining),
            "oid": o.order_id, "timestamp": o.created_ms, "origSz": fmt(o.size), "cloid": o.client_id,
            "orderType": "Limit", "tif": "Ioc" if o.tif == "ioc" else ("Alo" if o.post_only else "Gtc"),
            "reduceOnly": False, "isTrigger": False, "triggerPx": "0.0", "triggerCondition": "N/A",
            "isPositionTpsl": False, "children": [],
        }  # fmt: skip

    def _order_status(self, oid: Any) -> dict[str, Any]:
        m = self.matcher
        order = next((o for o in m.orders.values() if str(o.order_id) == str(oid) or o.client_id == oid), None)
        if order is None:
            return {"status": "unknownOid"}
        status = {"open": "open", "filled": "filled", "canceled": "canceled", "expired": "canceled"}[order.status]
        return {
            "status": "order",
            "order": {"order": self._wire_order(order), "status": status, "statusTimestamp": order.updated_ms},
        }

    def _wire_fill(self, f: MFill) -> dict[str, Any]:
        order = self.matcher.orders[f.order_id]
        return {
            "coin": COIN, "px": fmt(f.price), "sz": fmt(f.size), "side": "B" if f.side == "buy" else "A",
            "time": f.ts_ms, "startPosition": "0", "dir": "Open Long" if f.side == "buy" else "Open Short",
            "closedPnl": "0", "hash": "0x" + f"{f.trade_id:064x}", "oid": f.order_id, "crossed": not f.maker,
            "fee": fmt(f.fee), "feeToken": "USDC", "tid": f.trade_id, "cloid": order.client_id, "builderFee": "0",
        }  # fmt: skip

    def _clearinghouse(self) -> dict[str, Any]:
        m = self.matcher
        size = m.positions.get(COIN, Decimal(0))
        positions = []
        if size != 0:
            entry = m.entry.get(COIN, MARK)
            positions.append({"type": "oneWay", "position": {
                "coin": COIN, "szi": fmt(size), "entryPx": fmt(entry), "positionValue": fmt(abs(size) * MARK),
                "unrealizedPnl": fmt((MARK - entry) * size), "returnOnEquity": "0", "liquidationPx": None,
                "marginUsed": fmt(abs(size) * entry * m.margin), "leverage": {"type": "cross", "value": 1},
                "maxLeverage": 40, "cumFunding": {"allTime": "0", "sinceOpen": "0", "sinceChange": "0"},
            }})  # fmt: skip
        used = m.cash - m.available()
        summary = {
            "accountValue": fmt(m.cash),
            "totalMarginUsed": fmt(used),
            "totalNtlPos": "0",
            "totalRawUsd": fmt(m.cash),
        }
        return {
            "assetPositions": positions, "marginSummary": summary, "crossMarginSummary": summary,
            "crossMaintenanceMarginUsed": "0", "withdrawable": fmt(m.available()), "time": int(time.time() * 1000),
        }  # fmt: skip

    # ---- WebSocket -------------------------------------------------------------------------------
    def handle_ws(self, conn: WsConn, message: Any) -> list[Any]:
        if message.get("method") == "ping":
            return [{"channel": "pong"}]
        if message.get("method") not in ("subscribe", "unsubscribe"):
            return []
        sub = message.get("subscription", {})
        kind = str(sub.get("type"))
        if message["method"] == "subscribe":
            conn.subscriptions.add(kind)
            conn.user = str(sub.get("user", "")).lower()
        else:
            conn.subscriptions.discard(kind)
        replies: list[Any] = [{"channel": "subscriptionResponse", "data": message}]
        if kind == "userFills" and message["method"] == "subscribe":
            replies.append({"channel": "userFills", "data": {"isSnapshot": True, "user": conn.user, "fills": []}})
        return replies

    def _on_event(self, kind: str, order: MOrder, fill: MFill | None) -> None:
        for conn in list(self.conns):
            if conn.user != self.wallet.lower():
                continue
            if fill is not None and "userFills" in conn.subscriptions:
                self.push(conn, {"channel": "userFills", "data": {"user": conn.user, "fills": [self._wire_fill(fill)]}})
            status = {"accepted": "open", "canceled": "canceled", "expired": "canceled"}.get(kind)
            if kind == "fill" and order.status == "filled":
                status = "filled"
            if status is not None and "orderUpdates" in conn.subscriptions:
                wire = {"order": self._wire_order(order), "status": status, "statusTimestamp": order.updated_ms}
                self.push(conn, {"channel": "orderUpdates", "data": [wire]})
