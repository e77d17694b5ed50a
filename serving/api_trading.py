"""Backward-compatible home of the trading router: see `serving.api.trading`."""

from serving.api import trading as _trading
from serving.api.trading import API_KEY_HEADER, KillRequest, key_matches, trading_router

hmac = _trading.hmac

__all__ = ["API_KEY_HEADER", "KillRequest", "key_matches", "trading_router"]
