"""Adapters for venues that do not fit `pipelines.sources` (spot/perp candles) or the engine's brokers."""
