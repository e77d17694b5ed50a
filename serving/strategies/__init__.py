"""Strategies of the engine (each implements `serving.engine.strategy.Strategy`) and their registry:
directional, market_making, hedge, window (directional) and window_mm."""
