"""Persistence of the trading engine: the store (SQLite/PostgreSQL) and its schema."""
