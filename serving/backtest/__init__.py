"""Backtests of the registered strategies on recorded ticks through the real engine (see `runner`)."""
