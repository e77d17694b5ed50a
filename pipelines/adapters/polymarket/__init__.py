"""Polymarket's prediction-market CLOB through `ccxt.prediction.polymarket` (async): 5-minute BTC windows."""

from pipelines.adapters.polymarket.client import PolymarketWindowVenue, VenueSettings

__all__ = ["PolymarketWindowVenue", "VenueSettings"]
