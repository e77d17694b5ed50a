"""The live broker: the real ccxt client (Binance spot by default; any ccxt id with the same unified calls).

- Instruments come from `load_markets` (cached for the process) through `MarketInfo.from_ccxt`; Upbit KRW
  markets get the price-band tick table and the 5,000 KRW minimum. Never a hard-coded map.
- Prices and sizes go out as plain decimal strings made from `Decimal` (`to_venue_str`), already rounded
  by the order manager; an order below the venue minimum never reaches this class (the working-order
  policy refuses it) and is refused here again as a last line.
- Post-only orders are ccxt `postOnly` (Binance `LIMIT_MAKER`); taker legs are IOC limits.
- Rate limits: ccxt's limiter (`enableRateLimit`), plus exponential backoff on 429/418
  (`DDoSProtection`, `RateLimitExceeded`) and network errors, never hammering after an error; every
  request and error is counted for the API-error-rate kill switch. A refusal of an order (`InvalidOrder`
  and its subclasses) is an order event, not an API error.
- Fills come from `myTrades` of the order's venue id (one id per execution, so a fill seen twice is
  applied once); order states from the order query by client id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import ccxt
from pydantic import SecretStr

from pipelines.trading.config import OrderConfig, require_utc
from pipelines.trading.instruments import (
    UPBIT_KRW_MIN_ORDER,
    UPBIT_KRW_TICKS_2025_07_31,
    MarketInfo,
    Side,
    rejection_reason,
    to_decimal,
    to_venue_str,
)
from pipelines.trading.orders import (
    Accepted,
    BookTop,
    Cancelled,
    CancelRefused,
    Expired,
    Fill,
    Filled,
    Liquidity,
    Order,
    OrderKind,
    OrderState,
    Rejected,
    VenueEvent,
)
from pipelines.trading.paper import Trade
from serving.engine.broker import BrokerError, RequestWindow, VenueOrderView, base_quote
from serving.engine.ccxt_factory import ccxt_client, exchange_options, point_at  # noqa: F401 (re-exported)
from serving.engine.order_stream import OrderStream, update_fill

_TRANSIENT = (ccxt.DDoSProtection, ccxt.RateLimitExceeded, ccxt.NetworkError, ccxt.ExchangeNotAvailable)


def market_info(exchange: Any, venue: str, symbol: str) -> MarketInfo:
    """`MarketInfo` of `symbol` from a ccxt exchange whose markets are loaded (Upbit KRW: band ticks)."""
    raw = exchange.markets.get(symbol) if exchange.markets else None
    if raw is None:
        raise BrokerError(f"{venue}: {symbol} is not a market of the venue")
    mode = "tick_size" if exchange.precisionMode == ccxt.TICK_SIZE else "decimal_places"
    upbit_krw = venue == "upbit" and symbol.endswith("/KRW")
    return MarketInfo.from_ccxt(
        raw,
        precision_mode=mode,
        tick_table=UPBIT_KRW_TICKS_2025_07_31 if upbit_krw else None,
        min_notional_override=UPBIT_KRW_MIN_ORDER if upbit_krw else None,
    )


class CcxtMarkets:
    """Instrument metadata through the venue's public `load_markets`, loaded once and cached.

    The paper broker's market source: no keys, nothing but public market metadata is requested.
    """

    def __init__(self, venue: str, api_url: str | None = None, timeout_s: float = 10.0) -> None:
        self.venue = venue
        self.exchange = ccxt_client(venue, api_url=api_url, timeout_s=timeout_s)
        self._cache: dict[str, MarketInfo] = {}
        self._retry_at = 0.0
        self._cooldown_s = 5.0

    def __call__(self, symbol: str) -> MarketInfo:
        if symbol not in self._cache:
            if not self.exchange.markets:
                # Never hammer a venue that just failed: wait 5 s, doubling up to 5 min, between tries.
                if time.monotonic() < self._retry_at:
                    raise BrokerError(f"{self.venue}: markets unavailable (retrying later)")
                try:
                    self.exchange.load_markets()
                except ccxt.BaseError as exc:
                    self._retry_at = time.monotonic() + self._cooldown_s
                    self._cooldown_s = min(self._cooldown_s * 2, 300.0)
                    raise BrokerError(f"{self.venue}: load_markets failed: {type(exc).__name__}: {exc}") from exc
            self._cache[symbol] = market_info(self.exchange, self.venue, symbol)
        return self._cache[symbol]


def _dec(value: Any, name: str) -> Decimal:
    return Decimal(0) if value is None else to_decimal(value if not isinstance(value, float) else repr(value), name)


class LiveBroker:
    """See the module docstring. Not thread-safe by itself: the runtime calls it from its one worker."""

    def __init__(
        self,
        venue: str,
        api_key: SecretStr | None,
        api_secret: SecretStr | None,
        *,
        credentials: Mapping[str, SecretStr] | None = None,
        order_cfg: OrderConfig,
        api_url: str | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        error_window_s: float = 300.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        timeout_s: float = 10.0,
        order_stream: bool = False,
        ws_url: str | None = None,
    ) -> None:
        make = partial(ccxt_client, venue, api_key=api_key, api_secret=api_secret, credentials=credentials)
        self.exchange = make(api_url=api_url, timeout_s=timeout_s)
        self._stream: OrderStream | None = None
        if order_stream:
            make = partial(make, api_url=api_url, pro=True)
            self._stream = OrderStream(partial(make, timeout_s=timeout_s, ws_url=ws_url), venue)
        self._stream_started = False
        self.name = f"live:{venue}"
        self.venue = venue
        self._cfg = order_cfg
        self._retries, self._backoff_s = retries, backoff_s
        self._clock, self._sleep = clock, sleep
        self._window = RequestWindow(error_window_s)
        self._markets: dict[str, MarketInfo] = {}
        self._loaded = False

    # ---- plumbing -------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, retry_unknown: bool = True, **kwargs: Any) -> Any:
        """Call ccxt with backoff on rate limits and network errors; count requests and errors.

        `retry_unknown=False` (a new order): only a refusal before execution (429/418) is retried; after a
        timeout or a lost answer the order may exist, and Binance's client ids are unique only among
        open orders, so resending an IOC that already ended could execute it twice: the poll asks instead.
        """
        delay = self._backoff_s
        for attempt in range(self._retries + 1):
            try:
                result = fn(*args, **kwargs)
            except ccxt.InvalidOrder:
                self._window.record(self._clock(), True)  # the venue answered: a refusal, not an outage
                raise
            except _TRANSIENT as exc:
                self._window.record(self._clock(), False)
                refused = isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded))
                if attempt == self._retries or not (retry_unknown or refused):
                    raise BrokerError(f"{self.name} {what}: {type(exc).__name__}: {exc}") from exc
                self._sleep(delay)
                delay *= 2
                continue
            except ccxt.BaseError as exc:
                self._window.record(self._clock(), False)
                raise BrokerError(f"{self.name} {what}: {type(exc).__name__}: {exc}") from exc
            self._window.record(self._clock(), True)
            return result
        raise AssertionError("unreachable")

    def api_health(self, now: datetime) -> tuple[int, int]:
        return self._window.counts(now)

    def market(self, symbol: str) -> MarketInfo:
        if symbol in self._markets:
            return self._markets[symbol]
        if not self._loaded:
            self._call("load_markets", self.exchange.load_markets)
            self._loaded = True
        info = market_info(self.exchange, self.venue, symbol)
        self._markets[symbol] = info
        return info

    # ---- orders ---------------------------------------------------------------------------------
    def place(self, order: Order, now: datetime) -> list[VenueEvent]:
        market = self.market(order.symbol)
        problem = rejection_reason(market, order.price, order.size)
        if problem is not None:
            return [Rejected(order.client_order_id, now, f"not sent: {problem}")]
        params: dict[str, Any] = {"newClientOrderId": order.client_order_id}
        if order.kind is OrderKind.POST_ONLY:
            params["postOnly"] = True
        else:
            params["timeInForce"] = "IOC"
        try:
            raw = self._call(
                "create_order",
                self.exchange.create_order,
                order.symbol,
                "limit",
                order.side.value,
                to_venue_str(order.size),
                to_venue_str(order.price),
                params,
                retry_unknown=False,
            )
        except ccxt.InvalidOrder as exc:
            return [Rejected(order.client_order_id, now, f"{type(exc).__name__}: {exc}")]
        except BrokerError:
            return []  # unknown outcome: poll asks the venue by client id
        return self._events_from_order(order, raw, now)

    def cancel(self, order: Order, now: datetime) -> list[VenueEvent]:
        try:
            raw = self._call(
                "cancel_order",
                self.exchange.cancel_order,
                order.venue_order_id or "",
                order.symbol,
                {"origClientOrderId": order.client_order_id},
            )
        except ccxt.InvalidOrder as exc:  # OrderNotFound: filled or already gone; poll will tell which
            return [CancelRefused(order.client_order_id, now, f"{type(exc).__name__}: {exc}")]
        except BrokerError:
            return []
        return self._events_from_order(order, raw, now)

    def poll(self, orders: Sequence[Order], now: datetime) -> list[VenueEvent]:
        """Fills (myTrades) then states (order query) of our live orders; unreachable venue: no events."""
        events: list[VenueEvent] = []
        by_symbol: dict[str, list[Order]] = {}
        for order in orders:
            by_symbol.setdefault(order.symbol, []).append(order)
        for symbol, group in by_symbol.items():
            try:
                events.extend(self._poll_symbol(symbol, group, now))
            except BrokerError:
                continue
        return events

    def _poll_symbol(self, symbol: str, group: list[Order], now: datetime) -> list[VenueEvent]:
        events: list[VenueEvent] = []
        raws: dict[str, dict[str, Any] | None] = {}
        for order in group:
            try:
                raws[order.client_order_id] = self._call(
                    "fetch_order",
                    self.exchange.fetch_order,
                    order.venue_order_id or "",
                    symbol,
                    {"origClientOrderId": order.client_order_id},
                )
            except ccxt.InvalidOrder:  # OrderNotFound
                raws[order.client_order_id] = None
        for order in group:
            raw = raws.get(order.client_order_id)
            # Executions of this order by its venue id (exact, and independent of either side's clock).
            if raw is not None and _dec(raw.get("filled"), "filled") > order.filled:
                events.extend(self._order_trades(order, str(raw["id"])))
        for order in group:
            raw = raws[order.client_order_id]
            if raw is None:
                age = (now - order.created_at).total_seconds()
                unknown = order.venue_order_id is None and order.filled == 0  # never acknowledged either
                if unknown and age > self._cfg.ack_timeout_seconds:
                    # NEW: rejected; OPEN after a refused cancel of a send whose answer was lost: the venue
                    # has no such order, so it ends (else a zombie would hold the strategy's market).
                    why = "never reached the venue"
                    end = Rejected if order.state is OrderState.NEW else Cancelled
                    events.append(end(order.client_order_id, now, why))
                continue
            events.extend(self._state_events(order, raw, now))
        return events

    def _order_trades(self, order: Order, venue_id: str, now: datetime | None = None) -> list[VenueEvent]:
        trades = self._call(
            "fetch_my_trades", self.exchange.fetch_my_trades, order.symbol, None, None, {"orderId": venue_id}
        )
        return [
            Filled(order.client_order_id, self._fill_from_trade(order, trade, now))
            for trade in trades
            if str(trade.get("order")) == venue_id
        ]

    def _events_from_order(self, order: Order, raw: Mapping[str, Any], now: datetime) -> list[VenueEvent]:
        events: list[VenueEvent] = []
        venue_id = str(raw.get("id") or "")
        if venue_id and order.state is OrderState.NEW:
            events.append(Accepted(order.client_order_id, venue_id, now))
        trades = [t for t in raw.get("trades") or [] if t.get("id") is not None]
        events.extend(Filled(order.client_order_id, self._fill_from_trade(order, t, now)) for t in trades)
        if venue_id and not trades and _dec(raw.get("filled"), "filled") > order.filled:
            # The answer says it executed but lists no trades (USD-M order answers, cancel answers): fetch
            # them now, before a final state ends the order and no poll would ever ask for its fills.
            try:
                events.extend(self._order_trades(order, venue_id, now))
            except BrokerError:
                if raw.get("status") in ("canceled", "expired"):
                    return events  # keep the order live: the next poll asks for its fills and its end
        events.extend(self._state_events(order, raw, now, acked=bool(events)))
        return events

    def _state_events(
        self, order: Order, raw: Mapping[str, Any], now: datetime, *, acked: bool = False
    ) -> list[VenueEvent]:
        status = raw.get("status")
        cid = order.client_order_id
        out: list[VenueEvent] = []
        if not acked and order.state is OrderState.NEW and raw.get("id") is not None:
            out.append(Accepted(cid, str(raw["id"]), now))
        if status == "canceled":
            out.append(Cancelled(cid, now, "cancelled at the venue"))
        elif status == "expired":
            out.append(Expired(cid, now, "expired at the venue (IOC remainder)"))
        elif status == "rejected":
            out.append(Rejected(cid, now, "rejected by the venue"))
        return out

    def _fill_from_trade(self, order: Order, trade: Mapping[str, Any], now: datetime | None = None) -> Fill:
        size = _dec(trade.get("amount"), "trade amount")
        price = _dec(trade.get("price"), "trade price")
        fee_info = trade.get("fee") or {}
        fee_cost = _dec(fee_info.get("cost"), "fee")
        base, quote = base_quote(order.symbol)
        currency = fee_info.get("currency")
        # Fees in quote currency; a fee charged in the base asset is worth cost x price; other assets
        # (e.g. BNB discounts) are not converted here and count as 0 (the balance reconciliation sees them).
        fee = fee_cost if currency in (None, quote) else fee_cost * price if currency == base else Decimal(0)
        ts_ms = trade.get("timestamp")
        ts = datetime.fromtimestamp(ts_ms / 1000, UTC) if ts_ms else (now or self._clock())
        liquidity = Liquidity.MAKER if trade.get("takerOrMaker") == "maker" else Liquidity.TAKER
        return Fill(f"{self.venue}-{trade['id']}", size, price, fee, liquidity, require_utc(ts))

    def stream_events(self, orders: Sequence[Order], now: datetime) -> list[VenueEvent]:
        """Events of the order updates pushed on the venue's WebSocket since the last call (none without
        a stream). Fills carry the REST poll's ids; an update whose fills were coalesced away (its
        cumulative filled is ahead of what it reports) has them fetched by REST at once."""
        if self._stream is None:
            return []
        if not self._stream_started:
            self._stream_started = True
            self._stream.start()
        by_cid = {o.client_order_id: o for o in orders}
        events: list[VenueEvent] = []
        ahead: dict[str, tuple[Order, str, Decimal]] = {}
        seen: dict[str, Decimal] = {}
        for update in self._stream.drain():
            order = by_cid.get(str(update.get("clientOrderId")))
            if order is None:
                continue
            cid = order.client_order_id
            fill = update_fill(self.venue, update, *base_quote(order.symbol))
            if fill is not None:
                events.append(Filled(cid, fill))
                seen[cid] = seen.get(cid, Decimal(0)) + fill.size
            cum = _dec(update.get("filled"), "filled")
            if cum > order.filled + seen.get(cid, Decimal(0)) and update.get("id"):
                ahead[cid] = (order, str(update["id"]), cum)
            events.extend(self._state_events(order, update, now, acked=order.venue_order_id is not None))
        for order, venue_id, _ in ahead.values():
            try:
                events[:0] = self._order_trades(order, venue_id, now)  # fills before any final state
            except BrokerError:
                continue  # the next sweep's poll asks again
        return events

    # ---- account --------------------------------------------------------------------------------
    def open_orders(self) -> list[VenueOrderView]:
        raws = self._call("fetch_open_orders", self.exchange.fetch_open_orders)
        return [
            VenueOrderView(
                symbol=str(r["symbol"]),
                venue_order_id=str(r["id"]),
                client_order_id=r.get("clientOrderId"),
                side=Side(r["side"]),
                price=_dec(r.get("price"), "price"),
                size=_dec(r.get("amount"), "amount"),
                filled=_dec(r.get("filled"), "filled"),
            )
            for r in raws
        ]

    def cancel_venue_order(self, view: VenueOrderView, now: datetime) -> bool:
        try:
            self._call("cancel_order", self.exchange.cancel_order, view.venue_order_id, view.symbol)
        except ccxt.InvalidOrder:
            return False  # already gone
        return True

    def balances(self) -> dict[str, Decimal]:
        raw = self._call("fetch_balance", self.exchange.fetch_balance)
        totals = raw.get("total") or {}
        return {asset: _dec(amount, f"balance {asset}") for asset, amount in totals.items() if amount is not None}

    def positions(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        """Signed contracts per derivative symbol (ccxt `fetchPositions`: contracts, side); 0 when flat."""
        raws = self._call("fetch_positions", self.exchange.fetch_positions, list(symbols))
        out = dict.fromkeys(symbols, Decimal(0))
        for r in raws:
            symbol = r.get("symbol")
            if symbol not in out:
                continue
            contracts = abs(_dec(r.get("contracts"), "contracts"))
            out[symbol] += -contracts if r.get("side") == "short" else contracts
        return out

    # ---- market data (not needed: the venue matches) --------------------------------------------
    def on_trade(self, symbol: str, trade: Trade) -> list[VenueEvent]:
        return []

    def on_book(self, symbol: str, book: BookTop) -> list[VenueEvent]:
        return []

    def export_state(self) -> dict[str, str]:
        return {}

    def restore_state(self, state: Mapping[str, str]) -> None:
        pass

    def close(self) -> None:
        if self._stream is not None and self._stream_started:
            self._stream.close()
