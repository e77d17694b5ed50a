"""Feast declarations of alphatide: the `symbol` entity, two feature views (bar features from candles,
book/flow features from trades and books), each fed by a push source for streaming updates, and the
versioned FeatureService the serving tier reads (`signal_v1`).

`definitions(features_path, views)` returns the objects; `pipelines.feature_store` applies them, because
the offline file lives under the configured home rather than at a fixed path.
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Float64

from pipelines.online_store import BAR_VIEW, FLOW_VIEW  # the view names the serving tier reads directly

PUSH_SOURCES = {BAR_VIEW: "bar_features_push", FLOW_VIEW: "flow_features_push"}
SIGNAL_SERVICE = "signal_v1"

symbol = Entity(name="symbol", join_keys=["symbol"], value_type=ValueType.STRING, description="ccxt symbol, BTC/USDT")


def definitions(features_path: str, views: dict[str, tuple[str, ...]], service: str = SIGNAL_SERVICE) -> list[object]:
    """Entity, sources, one feature view per group in `views` (name -> columns) and the FeatureService.

    Both views read the same offline file (the nightly features table, `event_ts` = bar close, UTC) and
    take streaming updates through their own PushSource.
    """
    offline = FileSource(name="features_file", path=features_path, timestamp_field="event_ts")
    objects: list[object] = [symbol, offline]
    feature_views = []
    for name, columns in views.items():
        if not columns:
            continue
        push = PushSource(name=PUSH_SOURCES[name], batch_source=offline)
        view = FeatureView(
            name=name,
            entities=[symbol],
            ttl=timedelta(days=3650),
            schema=[Field(name=column, dtype=Float64) for column in columns],
            source=push,
            online=True,
        )
        objects += [push, view]
        feature_views.append(view)
    objects.append(FeatureService(name=service, features=feature_views))
    return objects
