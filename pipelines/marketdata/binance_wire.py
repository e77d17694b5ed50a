"""Binance spot REST shapes that more than one local stand-in of the venue serves (the stream's replay
server, the test fakes): one definition, so they stay what ccxt's `parse_market` expects."""

from __future__ import annotations

from typing import Any


def spot_symbol_info(
    base: str,
    quote: str,
    *,
    tick_size: str = "0.01",
    step_size: str = "0.00001",
    min_notional: str = "5",
    min_price: str = "0.01",
) -> dict[str, Any]:
    """One `exchangeInfo.symbols[]` entry of a trading spot market, as Binance writes it (decimal strings)."""
    return {
        "symbol": f"{base}{quote}",
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET", "LIMIT_MAKER"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": min_price, "maxPrice": "1000000", "tickSize": tick_size},
            {"filterType": "LOT_SIZE", "minQty": step_size, "maxQty": "9000", "stepSize": step_size},
            {"filterType": "NOTIONAL", "minNotional": min_notional, "applyMinToMarket": True, "maxNotional": "9000000"},
        ],
    }
