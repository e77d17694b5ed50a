"""Brokers beyond the engine's paper and live ones (the simulated venue)."""
