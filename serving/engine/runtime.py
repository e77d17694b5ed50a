"""Backward-compatible name of the engine module: the engine is `serving.engine.engine.TradingEngine`,
its components `portfolio`, `execution`, `risk`, `reconcile`, `persistence`, `context`."""

from serving.engine.engine import TradingEngine
from serving.engine.status import Decision, EngineStatus, PositionSnapshot, StrategyStatus

__all__ = ["Decision", "EngineStatus", "PositionSnapshot", "StrategyStatus", "TradingEngine"]
