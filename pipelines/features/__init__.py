"""Features (SPEC section 5): one definition (`spec`), a batch implementation (`batch`, polars, every
symbol at once) and an incremental one (`incremental`, event by event for the live stream) that agree.

`build_features(candles)` returns one row per input bar with `symbol`, `ts` (bar open, UTC),
`event_ts` (bar close, UTC: the instant the values become known) and every column of `FEATURE_COLUMNS`
as Float64. A value at a bar uses that bar and earlier data only. Warm-up rows and missing inputs
(trade, book and liquidation features of a candle-only backfill) are null, never 0 or NaN.
"""

from __future__ import annotations

from pipelines.features.batch import FEATURE_COLUMNS, build_features
from pipelines.features.incremental import FeatureEngine, FeatureRow
from pipelines.features.spec import CORE_FEATURES, DEFAULT_PARAMS, FeatureParams

__all__ = [
    "CORE_FEATURES",
    "DEFAULT_PARAMS",
    "FEATURE_COLUMNS",
    "FeatureEngine",
    "FeatureParams",
    "FeatureRow",
    "build_features",
]
