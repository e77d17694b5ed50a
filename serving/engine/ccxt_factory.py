"""The project's one ccxt client factory: every ccxt client (REST or ccxt.pro) is built here.

`ccxt_client(venue, ...)`: `venue` is the ccxt id, one client per venue: `binance` for Binance spot,
`binanceusdm` for Binance USD-M futures (its own id, so no spot client is ever routed to futures by an
option). Options leave out wallet/margin endpoints a trading key may lack; spot venues default to spot
markets. `api_url` / `ws_url` point the client at local fakes in tests (`point_at`, `point_ws_at`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ccxt
import ccxt.pro
from pydantic import SecretStr

# ccxt ids of derivative venues: their own market type, not spot (Binance USD-M is its own ccxt id).
_DERIVATIVE_VENUES = frozenset({"binanceusdm", "hyperliquid"})
# Venues whose REST API lives at the root of their host (a fake's `api_url` is used as is).
_ROOT_URL_VENUES = frozenset({"backpack", "hyperliquid"})
# Hedge trading: no builder fee / referrer on Hyperliquid (pipelines.trading.hedge.venues).
_VENUE_OPTIONS: dict[str, dict[str, Any]] = {"hyperliquid": {"builderFee": False, "refSet": True}}


def exchange_options(venue: str) -> dict[str, Any]:
    """ccxt options without wallet/margin endpoints (a trading key may lack them); spot unless a derivative id."""
    options: dict[str, Any] = {
        "fetchCurrencies": False,
        "fetchMargins": False,
        "warnOnFetchOpenOrdersWithoutSymbol": False,
    }
    if venue not in _DERIVATIVE_VENUES:
        options["defaultType"] = "spot"
    if venue == "binance":
        options["fetchMarkets"] = {"types": ["spot"]}
    options.update(_VENUE_OPTIONS.get(venue, {}))
    return options


def point_at(exchange: Any, api_url: str | None) -> None:
    """Send the exchange's REST calls to `api_url` (a local fake venue in tests).

    Spot: `public`/`private` -> `<api_url>/api/v3`. Binance USD-M: every `fapi*` endpoint family ->
    `<api_url>/fapi/v1|v2|v3` (the venue's own paths, on the fake's host).
    """
    if api_url is None:
        return
    base = api_url.rstrip("/")
    urls = dict(exchange.urls["api"])
    if exchange.id == "binanceusdm":
        for key, url in urls.items():
            if key.startswith("fapi") and isinstance(url, str):
                urls[key] = f"{base}/fapi/{url.rstrip('/').rsplit('/', 1)[-1]}"
    elif exchange.id in _ROOT_URL_VENUES:
        urls.update({"public": base, "private": base})
    else:
        urls.update({"public": f"{base}/api/v3", "private": f"{base}/api/v3"})
    exchange.urls["api"] = urls


def point_ws_at(exchange: Any, ws_url: str | None) -> None:
    """Send a ccxt.pro client's private WebSocket to `ws_url` (a local fake in tests): Binance spot's
    WebSocket API (`/ws-api/v3`, where its user data stream lives), USD-M's user data stream (`/ws`)."""
    if ws_url is None:
        return
    base = ws_url.rstrip("/")
    ws = dict(exchange.urls["api"].get("ws") or {})
    if exchange.id == "binanceusdm":
        ws.update({"future": f"{base}/ws", "linear": f"{base}/ws"})
    elif exchange.id == "backpack":
        ws.update({"public": base, "private": base})
    elif exchange.id == "hyperliquid":
        ws.update({"public": f"{base}/ws"})
    else:
        ws.update({"spot": f"{base}/ws", "ws-api": {**(ws.get("ws-api") or {}), "spot": f"{base}/ws-api/v3"}})
    exchange.urls["api"] = {**exchange.urls["api"], "ws": ws}


def ccxt_client(
    venue: str,
    *,
    api_key: SecretStr | None = None,
    api_secret: SecretStr | None = None,
    api_url: str | None = None,
    timeout_s: float = 10.0,
    pro: bool = False,
    ws_url: str | None = None,
    credentials: Mapping[str, SecretStr] | None = None,
) -> Any:
    """The project's one way to build a ccxt client: `venue` is the ccxt id (binance, binanceusdm, ...);
    `pro` gives the ccxt.pro (WebSocket) client of the same venue, with the same options and keys.
    `credentials` adds ccxt credentials by their ccxt names (Hyperliquid: walletAddress, privateKey)."""
    try:
        exchange_class = getattr(ccxt.pro if pro else ccxt, venue)
    except AttributeError:
        raise ValueError(f"unknown ccxt exchange id {venue!r}") from None
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": int(timeout_s * 1000),
        "options": exchange_options(venue),
    }
    if api_key is not None and api_secret is not None:
        config.update(apiKey=api_key.get_secret_value(), secret=api_secret.get_secret_value())
    config.update({name: value.get_secret_value() for name, value in (credentials or {}).items()})
    exchange = exchange_class(config)
    point_at(exchange, api_url)
    if pro:
        point_ws_at(exchange, ws_url)
    return exchange
