"""Strategies of the engine (each implements `serving.engine.strategy.Strategy`) and their registry."""
