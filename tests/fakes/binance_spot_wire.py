"""The wire vocabulary of the fake Binance spot venue (`tests.fakes.trading_venue`): the test keys, the
fee rate, the order and book records, and the JSON shapes Binance answers with (orders, account), plus
its request signature check. Prices and sizes are `Decimal`; times are epoch milliseconds (UTC).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.fakes.matching import fmt

TEST_API_KEY = "test-key-0123456789"
TEST_API_SECRET = "test-secret-abcdefghij"
FEE_RATE = Decimal("0.001")


@dataclass
class VenueOrder:
    order_id: int
    client_order_id: str
    symbol: str  # venue id, e.g. BTCUSDT
    side: str  # BUY / SELL
    type: str  # LIMIT / LIMIT_MAKER
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    time_ms: int
    executed_qty: Decimal = Decimal(0)
    quote_qty: Decimal = Decimal(0)
    status: str = "NEW"
    update_ms: int = 0
    fills: list[dict[str, Any]] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass
class Book:
    bid: Decimal
    ask: Decimal
    bid_qty: Decimal
    ask_qty: Decimal


def order_json(order: VenueOrder, *, full: bool = False) -> dict[str, Any]:
    """An order as Binance's /api/v3/order answers it (`full`: with the placement's fills)."""
    out: dict[str, Any] = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": fmt(order.price),
        "origQty": fmt(order.orig_qty),
        "executedQty": fmt(order.executed_qty),
        "cummulativeQuoteQty": fmt(order.quote_qty),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
        "time": order.time_ms,
        "updateTime": order.update_ms,
        "workingTime": order.time_ms,
        "isWorking": order.is_open,
        "origQuoteOrderQty": "0",
        "selfTradePreventionMode": "NONE",
    }
    if full:
        out["transactTime"] = order.update_ms
        out["fills"] = list(order.fills)
    return out


def account_json(free: dict[str, Decimal], locked: dict[str, Decimal]) -> dict[str, Any]:
    """GET /api/v3/account for these free and locked balances (by asset)."""
    assets = sorted(set(free) | set(locked))
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "canTrade": True,
        "accountType": "SPOT",
        "updateTime": int(time.time() * 1000),
        "balances": [
            {
                "asset": a,
                "free": fmt(free.get(a, Decimal(0))),
                "locked": fmt(locked.get(a, Decimal(0))),
            }
            for a in assets
        ],
        "permissions": ["SPOT"],
    }


def auth_problem(raw: str, api_key: str | None, key: str, secret: str) -> tuple[int, Any] | None:
    """Binance's answer to a signed request whose key or HMAC-SHA256 `signature` (over the rest of `raw`)
    is wrong; None when both are right."""
    if api_key != key:
        return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
    payload, sep, signature = raw.rpartition("&signature=")
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not sep or not hmac.compare_digest(signature, expected):
        return 400, {"code": -1022, "msg": "Signature for this request is not valid."}
    return None
