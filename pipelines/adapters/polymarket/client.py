"""The Polymarket window-market venue over `ccxt.prediction.polymarket` (async only).

- Discovery: the window starting at `s` is the gamma event with slug `btc-updown-5m-<s>`
  (`fetchEvents({'slug': ...})`, which also caches its outcome tokens in the client); the current
  window and the next one are looked up from the clock.
- Market data: outcome order books (`fetchOrderBook`, or streamed: `watchOrderBook` on the market
  WebSocket channel), public trades (`fetchTrades`, data API; streamed: `watchTrades`).
- Fees: `fetchTradingFee` per market (the CLOB's `/fee-rate`; ccxt's listed fees are 0.0), cached for
  `fee_ttl_s`. Tick size: the CLOB's `/tick-size` per token, cached for `tick_ttl_s` only and re-read
  at once when the venue rejects a price for its tick (ticks change while a market trades).
- Orders: limit orders with the price rounded to the current tick (buy down, sell up) and the size down
  to the share step, `postOnly` and GTC / FAK (IOC) / FOK; cancels; open orders; our fills
  (`fetchMyTrades`); token and USDC balances. Sends `Decimal` through `to_venue_str`, never floats'
  text.
- Errors: rate limits and network errors back off exponentially (capped) and end in a
  `RetryableError`; refusals (`InsufficientFunds`, `InvalidOrder`, auth) raise `VenueRefusedError`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, TypeVar

import ccxt.prediction as ccxt_prediction
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from pipelines.adapters.polymarket.parse import book_from_ccxt, dec, order_from_ccxt, trade_from_ccxt, window_from_event
from pipelines.domain.window_market import (
    DEFAULT_WINDOW_S,
    SLUG_PREFIX,
    OutcomeBook,
    OutcomeFee,
    OutcomeOrder,
    OutcomeTrade,
    WindowMarket,
    window_slug,
    window_start_s,
)
from pipelines.errors import OperatorError, RetryableError
from pipelines.trading.instruments import to_venue_str

T = TypeVar("T")
SHARE_STEP = Decimal("0.01")  # the CLOB takes sizes with 2 decimals


_CLIENT_ERROR = re.compile(r" 4(0[0-9]|1[0-9]|2[0-8]) ")


def _is_client_error(exc: Exception) -> bool:
    """A 4xx answer (not 429) that ccxt did not map: a refusal of this request, not an outage.

    ccxt maps the Polymarket messages it knows (balance, tick, auth); others, like "invalid post-only
    order: order crosses book", fall through to its HTTP-status mapping, where a 400 becomes the
    retryable `ExchangeNotAvailable`. Retrying a refused order would only repeat the refusal.
    """
    return not isinstance(exc, (ccxt_prediction.RateLimitExceeded, ccxt_prediction.DDoSProtection)) and bool(
        _CLIENT_ERROR.search(f" {exc} ")
    )


class VenueRefusedError(OperatorError):
    """The venue refused the request (balance, price, auth): retrying the same request cannot help."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # the ccxt error class name, e.g. "InsufficientFunds"


class VenueSettings(BaseModel):
    """How to reach the venue. `urls` overrides ccxt's API addresses (gamma, clob, data): a local fake."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    private_key: SecretStr | None = None
    wallet_address: str | None = None
    signature_type: int = Field(default=0, ge=0, le=3)  # 0 = EOA wallet; 3 = Polymarket deposit wallet
    urls: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0)
    window_s: int = Field(default=DEFAULT_WINDOW_S, gt=0)
    slug_prefix: str = SLUG_PREFIX
    tick_ttl_s: float = Field(default=30.0, ge=0)
    fee_ttl_s: float = Field(default=300.0, ge=0)
    max_retries: int = Field(default=4, ge=0)
    backoff_s: float = Field(default=0.5, ge=0)
    max_backoff_s: float = Field(default=8.0, gt=0)


def build_exchange(settings: VenueSettings) -> Any:
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": int(settings.timeout_s * 1000),
        # builderFee off: ccxt would otherwise pack its builder fee rate into every order we sign
        "options": {"signatureType": settings.signature_type, "builderFee": False},
    }
    if settings.private_key is not None:
        config["privateKey"] = settings.private_key.get_secret_value()
    exchange = ccxt_prediction.polymarket(config)
    if settings.wallet_address:
        exchange.walletAddress = settings.wallet_address
    elif settings.private_key is not None and settings.signature_type == 0:
        # an EOA wallet holds its own funds: the funder is the key's address
        exchange.walletAddress = exchange.eth_get_address_from_private_key(settings.private_key.get_secret_value())
    if settings.urls:
        exchange.urls["api"] = {**exchange.urls["api"], **settings.urls}
    return exchange


class PolymarketWindowVenue:
    """One venue session. Use `async with`; `clock` (aware UTC) and `monotonic` are injectable."""

    def __init__(
        self,
        settings: VenueSettings,
        *,
        exchange: Any | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.exchange = exchange if exchange is not None else build_exchange(settings)
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._ticks: dict[str, tuple[float, Decimal]] = {}
        self._fees: dict[str, tuple[float, OutcomeFee]] = {}

    async def __aenter__(self) -> PolymarketWindowVenue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.exchange.close()

    # ---- calls ---------------------------------------------------------------------------------
    async def _call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        delay = self.settings.backoff_s
        for attempt in range(self.settings.max_retries + 1):
            try:
                return await fn(*args, **kwargs)
            except (
                ccxt_prediction.RateLimitExceeded,
                ccxt_prediction.DDoSProtection,
                ccxt_prediction.NetworkError,
            ) as exc:
                if _is_client_error(exc):
                    raise VenueRefusedError(f"polymarket {what} refused: {exc}", "InvalidOrder") from exc
                if attempt == self.settings.max_retries:
                    raise RetryableError(f"polymarket {what}: {type(exc).__name__}: {exc}") from exc
                await self._sleep(delay)
                delay = min(delay * 2, self.settings.max_backoff_s)
            except ccxt_prediction.ExchangeError as exc:
                raise VenueRefusedError(f"polymarket {what} refused: {exc}", type(exc).__name__) from exc
        raise AssertionError("unreachable")

    # ---- discovery -----------------------------------------------------------------------------
    async def window(self, start_s: int) -> WindowMarket | None:
        """The window market starting at `start_s` (Unix seconds), or None when the venue lists none."""
        slug = window_slug(start_s, self.settings.slug_prefix)
        events = await self._call("fetch_events", self.exchange.fetch_events, {"slug": slug})
        found = [e for e in events if e.get("slug") == slug]
        return window_from_event(found[0], self.settings.window_s, self.settings.slug_prefix) if found else None

    async def current_and_next(self) -> tuple[WindowMarket | None, WindowMarket | None]:
        start = window_start_s(self._clock(), self.settings.window_s)
        current, upcoming = await asyncio.gather(self.window(start), self.window(start + self.settings.window_s))
        return current, upcoming

    # ---- market rules: tick and fee per market --------------------------------------------------
    async def tick_size(self, token_id: str, *, refresh: bool = False) -> Decimal:
        cached = self._ticks.get(token_id)
        if cached is not None and not refresh and self._monotonic() - cached[0] < self.settings.tick_ttl_s:
            return cached[1]
        raw = await self._call("tick_size", self.exchange.clobPublicGetTickSize, {"token_id": token_id})
        tick = dec(raw.get("minimum_tick_size"), "minimum_tick_size").normalize()
        self._ticks[token_id] = (self._monotonic(), tick)
        return tick

    async def fee(self, token_id: str) -> OutcomeFee:
        cached = self._fees.get(token_id)
        if cached is not None and self._monotonic() - cached[0] < self.settings.fee_ttl_s:
            return cached[1]
        raw = await self._call("fetch_trading_fee", self.exchange.fetch_trading_fee, token_id)
        fee = OutcomeFee(token_id, dec(raw.get("taker"), "taker fee rate"), self._clock())
        self._fees[token_id] = (self._monotonic(), fee)
        return fee

    # ---- market data ---------------------------------------------------------------------------
    async def order_book(self, token_id: str) -> OutcomeBook:
        raw = await self._call("fetch_order_book", self.exchange.fetch_order_book, token_id)
        return book_from_ccxt(raw, token_id, await self.tick_size(token_id))

    async def trades(self, token_id: str, limit: int | None = None) -> list[OutcomeTrade]:
        raw = await self._call("fetch_trades", self.exchange.fetch_trades, token_id, None, limit)
        return [trade_from_ccxt(t) for t in raw]

    async def watch_book(self, token_id: str) -> OutcomeBook:
        """The token's book as the market WebSocket keeps it (first call subscribes; then each update)."""
        raw = await self._call("watch_order_book", self.exchange.watch_order_book, token_id)
        return book_from_ccxt(raw, token_id, await self.tick_size(token_id))

    async def watch_trades(self, token_id: str) -> list[OutcomeTrade]:
        """Public prints of the token from the market WebSocket (the ones since the last call)."""
        raw = await self._call("watch_trades", self.exchange.watch_trades, token_id)
        return [trade_from_ccxt(t) for t in raw]

    # ---- orders --------------------------------------------------------------------------------
    async def place_limit(
        self,
        token_id: str,
        side: str,
        price: Decimal,
        size: Decimal,
        *,
        post_only: bool = False,
        time_in_force: str = "GTC",
    ) -> OutcomeOrder:
        """A limit order on the token's current tick. A tick rejection re-reads the tick and retries once."""
        for attempt in (0, 1):
            tick = await self.tick_size(token_id, refresh=attempt == 1)
            rounded = (price / tick).to_integral_value(rounding=ROUND_FLOOR if side == "buy" else ROUND_CEILING) * tick
            shares = (size / SHARE_STEP).to_integral_value(rounding=ROUND_FLOOR) * SHARE_STEP
            if shares <= 0:
                raise OperatorError(f"order size {size} rounds to zero shares")
            params = {"tickSize": to_venue_str(tick), "postOnly": post_only, "timeInForce": time_in_force.upper()}
            try:
                raw = await self._call(
                    "create_order",
                    self.exchange.create_order,
                    token_id,
                    "limit",
                    side,
                    float(to_venue_str(shares)),
                    float(to_venue_str(rounded)),
                    params,
                )
            except VenueRefusedError as exc:
                if attempt == 0 and "tick size" in str(exc).lower():
                    continue
                raise
            return order_from_ccxt({**raw, "outcomeId": token_id, "amount": float(shares), "price": float(rounded)})
        raise AssertionError("unreachable")

    async def cancel(self, order_id: str) -> bool:
        raw = await self._call("cancel_order", self.exchange.cancel_order, order_id)
        return raw.get("status") == "canceled"

    async def cancel_all(self) -> int:
        return len(await self._call("cancel_all_orders", self.exchange.cancel_all_orders))

    async def open_orders(self, token_id: str | None = None) -> list[OutcomeOrder]:
        raw = await self._call("fetch_open_orders", self.exchange.fetch_open_orders, token_id)
        return [order_from_ccxt(o) for o in raw]

    async def fills(self, token_id: str | None = None) -> list[OutcomeTrade]:
        raw = await self._call("fetch_my_trades", self.exchange.fetch_my_trades, token_id)
        return [trade_from_ccxt(t) for t in raw]

    async def token_balance(self, token_id: str) -> Decimal:
        """Outcome tokens the wallet holds (after the fees the venue took in tokens)."""
        await self.exchange.load_api_credentials()
        raw = await self._call(
            "balance_allowance",
            self.exchange.clobPrivateGetBalanceAllowance,
            {"asset_type": "CONDITIONAL", "token_id": token_id, "signature_type": self.settings.signature_type},
        )
        return dec(raw.get("balance"), "balance") / Decimal(1_000_000)

    async def collateral(self) -> Decimal:
        raw = await self._call(
            "fetch_balance", self.exchange.fetch_balance, {"signatureType": self.settings.signature_type}
        )
        return dec((raw.get("USDC") or {}).get("total"), "USDC balance")
