"""Binance spot and USD-M REST shapes that local stand-ins of the venue serve (the stream's replay server,
the test fakes): one definition, so they stay what ccxt's `parse_market` expects."""

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


def usdm_symbol_info(
    base: str, quote: str = "USDT", *, tick_size: str = "0.1", step_size: str = "0.001", min_notional: str = "5"
) -> dict[str, Any]:
    """One `/fapi/v1/exchangeInfo` `symbols[]` entry of a USD-M perpetual, as Binance writes it."""
    return {
        "symbol": f"{base}{quote}",
        "pair": f"{base}{quote}",
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": 2,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": tick_size},
            {"filterType": "LOT_SIZE", "minQty": step_size, "maxQty": "1000", "stepSize": step_size},
            {"filterType": "MARKET_LOT_SIZE", "minQty": step_size, "maxQty": "120", "stepSize": step_size},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": min_notional},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500"},
        ],
    }
