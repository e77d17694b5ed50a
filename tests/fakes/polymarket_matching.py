"""Order matching and balances of the fake Polymarket CLOB (`FakePolymarketVenue`'s exchange side).

A mixin rather than a separate object so the venue's routes keep calling `self._place`/`self._cancel`
and tests keep calling `venue.trade(...)`; the rules (crossing at the book's prices, the taker fee
shares x price x rate x (price x (1 - price))^2, post-only rejection, GTC orders resting until a
`trade` prints through them, balances locked at the limit) are described in `polymarket_venue`.
Amounts: Decimal USDC and tokens; on the wire 6-decimal integers (`UNIT`).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable
from decimal import ROUND_CEILING, Decimal
from typing import Any

from tests.fakes.polymarket_markets import FakeOrder, Window
from tests.fakes.polymarket_ws import MarketChannel

UNIT = Decimal(1_000_000)
FEE_EXPONENT = 2


class PolymarketMatching:
    """Matching and balances; the venue provides the state below and `_window_of`/`_resolve_due`."""

    clock: Callable[[], float]
    lock: threading.RLock
    orders: dict[str, FakeOrder]
    public_trades: list[dict[str, Any]]
    my_trades: list[dict[str, Any]]
    usdc: Decimal
    tokens: dict[str, Decimal]
    owner_address: str | None
    ws: MarketChannel
    _ids: itertools.count[int]
    _window_of: Callable[[str], Window | None]
    _resolve_due: Callable[[], None]

    def _place(self, body: dict[str, Any]) -> tuple[int, Any]:
        signed = body.get("order", {})
        if signed.get("signer") != self.owner_address and signed.get("maker") != self.owner_address:
            return 401, {"error": "invalid signature"}
        token, side = str(signed["tokenId"]), str(signed["side"])
        maker_amt, taker_amt = Decimal(signed["makerAmount"]) / UNIT, Decimal(signed["takerAmount"]) / UNIT
        size = taker_amt if side == "BUY" else maker_amt
        price = (maker_amt / taker_amt) if side == "BUY" else (taker_amt / maker_amt)
        w = self._window_of(token)
        if w is None or w.winner is not None:
            return 400, {"error": "market not accepting orders", "success": False}
        price = price.quantize(w.tick) if (price / w.tick) == (price / w.tick).to_integral_value() else price
        if price % w.tick != 0:
            return 400, {"error": f"invalid price ({price}), minimum tick size {w.tick}", "success": False}
        if side == "BUY" and price * size > self.usdc:
            return 400, {"error": "not enough balance / allowance", "success": False}
        if side == "SELL" and size > self.tokens.get(token, Decimal(0)):
            return 400, {"error": "not enough balance / allowance", "success": False}
        crosses = self._crossing(w, token, side, price)
        if body.get("postOnly") and crosses:
            return 400, {"error": "invalid post-only order: order crosses book", "success": False}
        order = FakeOrder(
            f"0x{next(self._ids):064x}", token, side, price, size, str(body.get("owner")), int(self.clock())
        )
        self.orders[order.order_id] = order
        self._lock(order)
        self._take(w, order)
        if order.matched < order.size and body.get("orderType") in ("FAK", "FOK"):
            self._release(order)
            order.status = "CANCELED"
        elif order.matched >= order.size:
            order.status = "MATCHED"
        return 200, {"success": True, "orderID": order.order_id, "status": order.status.lower(), "errorMsg": ""}

    def _crossing(self, w: Window, token: str, side: str, price: Decimal) -> list[list[Decimal]]:
        book = w.books[token]
        if side == "BUY":
            return sorted((lvl for lvl in book["asks"] if lvl[0] <= price and lvl[1] > 0), key=lambda lvl: lvl[0])
        return sorted((lvl for lvl in book["bids"] if lvl[0] >= price and lvl[1] > 0), key=lambda lvl: -lvl[0])

    def _lock(self, o: FakeOrder) -> None:
        if o.side == "BUY":
            self.usdc -= o.price * o.size
        else:
            self.tokens[o.token_id] = self.tokens.get(o.token_id, Decimal(0)) - o.size

    def _release(self, o: FakeOrder) -> None:
        rest = o.size - o.matched
        if o.side == "BUY":
            self.usdc += o.price * rest
        else:
            self.tokens[o.token_id] = self.tokens.get(o.token_id, Decimal(0)) + rest

    def _take(self, w: Window, o: FakeOrder) -> None:
        for level in self._crossing(w, o.token_id, o.side, o.price):
            qty = min(level[1], o.size - o.matched)
            if qty <= 0:
                break
            level[1] -= qty
            self._fill(w, o, level[0], qty, taker=True)
            change = {"asset_id": o.token_id, "price": str(level[0]), "size": str(level[1])}
            change["side"] = "SELL" if o.side == "BUY" else "BUY"  # an ask level is taken by a buy
            ts = str(int(self.clock() * 1000))
            self.ws.publish(o.token_id, [{"event_type": "price_change", "timestamp": ts, "price_changes": [change]}])

    def _fill(self, w: Window, o: FakeOrder, price: Decimal, qty: Decimal, *, taker: bool) -> None:
        rate = Decimal(w.base_fee_bps) / Decimal(10_000) if taker else Decimal(0)
        fee_usdc = qty * price * rate * (price * (1 - price)) ** FEE_EXPONENT
        o.matched += qty
        if o.side == "BUY":
            self.usdc += (o.price - price) * qty  # locked at the limit, paid at the fill price
            fee_tokens = (fee_usdc / price).quantize(Decimal("0.000001"), rounding=ROUND_CEILING)
            self.tokens[o.token_id] = self.tokens.get(o.token_id, Decimal(0)) + qty - fee_tokens
        else:
            self.usdc += qty * price - fee_usdc.quantize(Decimal("0.000001"), rounding=ROUND_CEILING)
        trade_id = f"t{next(self._ids)}"
        ts = int(self.clock())
        other = "SELL" if o.side == "BUY" else "BUY"
        # as the CLOB reports it: `side` is the taker's side; a maker finds its own in `maker_orders`
        mine = {"order_id": o.order_id, "side": o.side, "matched_amount": str(qty), "price": str(price)}
        self.my_trades.append(
            {
                "id": trade_id,
                "taker_order_id": o.order_id if taker else f"0x{next(self._ids):064x}",
                "asset_id": o.token_id,
                "side": o.side if taker else other,
                "price": str(price),
                "size": str(qty),
                "match_time": str(ts),
                "trader_side": "TAKER" if taker else "MAKER",
                "fee_rate_bps": str(w.base_fee_bps if taker else 0),
                "maker_orders": [] if taker else [{**mine, "asset_id": o.token_id}],
                "status": "MATCHED",
            }
        )
        self._print(w, o.token_id, price, qty, o.side if taker else ("SELL" if o.side == "BUY" else "BUY"))

    def _print(self, w: Window, token: str, price: Decimal, size: Decimal, aggressor: str) -> None:
        condition = "0x" + hashlib.sha256(f"btc-updown-5m-{w.start}".encode()).hexdigest()
        self.public_trades.append(
            {
                "asset": token,
                "conditionId": condition,
                "price": float(price),
                "size": float(size),
                "side": aggressor,
                "timestamp": int(self.clock()),
                "transactionHash": f"0x{next(self._ids):064x}",
            }
        )
        last = {"event_type": "last_trade_price", "asset_id": token, "price": str(price), "size": str(size)}
        last |= {
            "side": aggressor,
            "timestamp": str(int(self.clock() * 1000)),
            "transaction_hash": f"0x{next(self._ids):064x}",
        }
        self.ws.publish(token, [last])

    def trade(self, token_id: str, price: str, size: str) -> None:
        """Another participant's aggressive trade printing `size` at `price`: fills our resting orders."""
        with self.lock:
            self._resolve_due()
            w = self._window_of(token_id)
            assert w is not None
            px, left = Decimal(price), Decimal(size)
            for o in sorted(self.orders.values(), key=lambda o: o.created_s):
                through = (o.side == "BUY" and px <= o.price) or (o.side == "SELL" and px >= o.price)
                if o.token_id != token_id or o.status != "LIVE" or not through or left <= 0:
                    continue
                qty = min(left, o.size - o.matched)
                left -= qty
                self._fill(w, o, o.price, qty, taker=False)
                if o.matched >= o.size:
                    o.status = "MATCHED"
            if left > 0:
                self._print(w, token_id, px, left, "SELL")

    def _cancel(self, ids: list[Any]) -> tuple[int, Any]:
        canceled, not_canceled = [], {}
        for order_id in ids:
            order = self.orders.get(str(order_id))
            if order is None or order.status != "LIVE":
                not_canceled[str(order_id)] = "order not found or not live"
                continue
            self._release(order)
            order.status = "CANCELED"
            canceled.append(order.order_id)
        return 200, {"canceled": canceled, "not_canceled": not_canceled}
