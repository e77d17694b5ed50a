"""How a probability becomes an action (shared by `/signal` and the stream)."""

from __future__ import annotations

from typing import Literal

from pipelines.config import Settings


def decide_action(p_up: float, settings: Settings) -> Literal["buy", "sell", "hold"]:
    """buy at or above `signal.buy_threshold`, sell at or below `signal.sell_threshold`, else hold."""
    if p_up >= settings.signal.buy_threshold:
        return "buy"
    if p_up <= settings.signal.sell_threshold:
        return "sell"
    return "hold"


def threshold_reason(p_up: float, settings: Settings) -> str:
    return (
        f"p_up {p_up:.4f} vs buy >= {settings.signal.buy_threshold}, "
        f"sell <= {settings.signal.sell_threshold}"
    )
