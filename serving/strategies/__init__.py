"""Strategies implementing `serving.engine.strategy.Strategy` (window markets: `window`, `window_mm`)."""
