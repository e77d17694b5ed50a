"""Strategy kinds -> factories: how a configured `StrategyEntry` becomes a `Strategy` object.

The engine builds its strategies from `EngineExtras.strategies` through `build_strategy`. A new kind
plugs in with one call at import time of its module, e.g. in `serving/strategies/market_making.py`::

    from serving.strategies.registry import register
    register("market_making", lambda entry, env: AvellanedaStoikov(entry.id, **entry.params))

and one line in `_BUILTIN_MODULES` below (or an import anywhere before `build_engine`). A factory gets
the entry (id, kind, allocation, venue, params) and a `StrategyEnv` (trading rules, majors, engine
settings) and returns the strategy; its `strategy_id` must be `entry.id`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.config import EngineConfig
from serving.engine.config import StrategyEntry
from serving.engine.strategy import Strategy

# Modules that register a kind when imported (the built-in kinds are registered below).
_BUILTIN_MODULES: tuple[str, ...] = ()


@dataclass(frozen=True)
class StrategyEnv:
    engine: EngineConfig
    majors: frozenset[str]
    quote: str
    lake_dir: Path | None = None  # where the nightly tasks leave what strategies read (mm_params.json)


StrategyFactory = Callable[[StrategyEntry, StrategyEnv], Strategy]
_FACTORIES: dict[str, StrategyFactory] = {}


def register(kind: str, factory: StrategyFactory, *, replace: bool = False) -> None:
    """Make `kind` available to the configuration (`replace` to override an existing one in tests)."""
    if kind in _FACTORIES and not replace:
        raise ValueError(f"strategy kind {kind!r} is already registered")
    _FACTORIES[kind] = factory


def kinds() -> list[str]:
    _load_builtins()
    return sorted(_FACTORIES)


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def build_strategy(entry: StrategyEntry, env: StrategyEnv) -> Strategy:
    _load_builtins()
    factory = _FACTORIES.get(entry.kind)
    if factory is None:
        raise ValueError(f"strategy {entry.id!r}: unknown kind {entry.kind!r} (known: {', '.join(kinds())})")
    strategy = factory(entry, env)
    if strategy.strategy_id != entry.id:
        raise ValueError(f"strategy kind {entry.kind!r} built id {strategy.strategy_id!r}, expected {entry.id!r}")
    return strategy


def _directional(entry: StrategyEntry, env: StrategyEnv) -> Strategy:
    from serving.strategies.directional import DirectionalParams, DirectionalStrategy

    cfg = env.engine
    params = DirectionalParams(
        expected_slippage=float(entry.params.get("expected_slippage", cfg.expected_slippage)),
        stats_min_trades=int(entry.params.get("stats_min_trades", cfg.stats_min_trades)),
        correlation_sample_s=cfg.correlation_sample_s,
        correlation_window=cfg.correlation_window,
        correlation_min_samples=cfg.correlation_min_samples,
        symbols=frozenset(entry.params["symbols"]) if "symbols" in entry.params else None,
        trade_ungated=cfg.mode == "paper" and cfg.paper_trades_ungated_model,
    )
    return DirectionalStrategy(entry.id, cfg.trading, env.majors, params)


register("directional", _directional)


def _params_with_venue(entry: StrategyEntry, key: str = "venue") -> dict[str, Any]:
    """The entry's params; the entry's `venue` fills the config's venue field when params leave it out."""
    params = dict(entry.params)
    if entry.venue and key not in params:
        params[key] = entry.venue
    return params


def _market_making(entry: StrategyEntry, env: StrategyEnv) -> Strategy:
    from serving.strategies.market_making import build_market_making

    params = _params_with_venue(entry)
    if "params_path" not in params and env.lake_dir is not None:
        # The nightly chain's fitted (A, k, sigma) per symbol are the priors the live estimators start from.
        from pipelines.trading.market_making.calibration import mm_params_path

        params["params_path"] = mm_params_path(env.lake_dir)
    return build_market_making(entry.id, params, entry.allocation)


def _hedge(entry: StrategyEntry, env: StrategyEnv) -> Strategy:
    from serving.strategies.hedge import build_hedge

    return build_hedge(entry.id, _params_with_venue(entry, "primary_venue"))


def _window(entry: StrategyEntry, env: StrategyEnv) -> Strategy:
    from serving.strategies.window import build_window_directional

    return build_window_directional(entry.id, dict(entry.params))


def _window_mm(entry: StrategyEntry, env: StrategyEnv) -> Strategy:
    from serving.strategies.window_mm import build_window_mm

    return build_window_mm(entry.id, dict(entry.params))


register("market_making", _market_making)
register("hedge", _hedge)
register("window", _window)
register("window_mm", _window_mm)
