"""The directional backtest's signal source: the champion scoring the replayed stream's features.

Not wired yet: `champion_signals` refuses with an `OperatorError` (the CLI exits 2) saying so, rather
than running the directional strategy on invented signals.
"""

from __future__ import annotations

from pipelines.config import Settings
from pipelines.errors import OperatorError


def champion_signals(settings: Settings) -> None:
    raise OperatorError(
        "backtest --strategy directional is not available yet: the champion scoring of the replayed stream "
        "(serving.stream.pipeline features -> serving.scorer) is not wired into the backtest; "
        "market_making and hedge are"
    )
