"""GET /signal (the champion's p_up for a symbol of today's universe) and GET /hot (the hot ranking).

`/signal` fast path (p99 <= 2 ms at 500 req/s, DESIGN): the universe and the champion are in memory, the
symbol's newest feature row comes from `serving.feature_cache.LatestFeatures` (kept fresh by the stream
and background re-reads; a miss reads the online store once, off the event loop), and the score of a
(row, model version) pair is memoized on the cached row, so a repeated request does no inference.
Inference is timed into the latency histogram the health monitor reads (degrade to the tabular tower).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from serving.deps import ServingDeps
from serving.feature_cache import StoreUnavailableError
from serving.health import timed_predict
from serving.messages import Signal, Unavailable
from serving.metrics import INFERENCE_LATENCY, SIGNALS
from serving.signals import decide_action, threshold_reason
from serving.stream.hot import HotRanking

SYMBOL_PATTERN = r"^[A-Z0-9]{1,20}/[A-Z0-9]{2,10}$"


def unavailable(reason: str) -> JSONResponse:
    return JSONResponse(status_code=503, content=Unavailable(detail=reason, reason=reason).model_dump())


def signal_router(deps: ServingDeps) -> APIRouter:
    router = APIRouter()
    settings, universe, scorer, latest = deps.settings, deps.universe, deps.scorer, deps.latest

    @router.get(
        "/signal",
        response_model=Signal,
        responses={
            404: {"description": "The symbol is not in today's universe"},
            503: {"model": Unavailable, "description": "No universe, champion or features, or the store is down"},
        },
    )
    async def signal(
        symbol: Annotated[str, Query(pattern=SYMBOL_PATTERN, description="ccxt symbol, e.g. BTC/USDT")],
    ) -> Signal | JSONResponse:
        symbols, _ = await run_in_threadpool(universe.get) if universe.due() else universe.peek()
        if not symbols:
            return unavailable("no universe yet: run the nightly chain (make run)")
        if symbol not in symbols:
            raise HTTPException(404, f"{symbol} is not in today's universe")
        champion = scorer.current()
        if champion is None:
            return unavailable(f"no champion model registered under {settings.model.name!r} yet")
        columns = champion.ref.feature_columns
        try:
            entry = latest.cached(symbol, columns)
            if entry is None:
                entry = await run_in_threadpool(latest.read_through, symbol, columns)
        except StoreUnavailableError as exc:
            return unavailable(f"{exc.reason}: hold")
        row = entry.row
        if row is None:
            return unavailable(f"no features for {symbol} in the online store yet")
        served_at = deps.now()
        # The memo is keyed by model version and the tower in use, so a degrade or a fused champion's
        # warm-up never serves a score computed by the other tower.
        memo, memo_key = entry.score, f"{champion.ref.version}/{scorer.tower}"
        if memo is not None and memo[0].split("|")[0] == memo_key:
            p_up, tower = memo[1], memo[0].split("|")[-1]
        else:
            started = time.perf_counter()
            scored = scorer.score(symbol, row.values)
            INFERENCE_LATENCY.observe(time.perf_counter() - started)
            if scored is None:  # the champion went away between the two reads: score what we hold
                p_up, tower = timed_predict(champion.model, [row.values.get(c) for c in columns], deps.mode), "tabular"
            else:
                p_up, tower = scored.p_up, scored.tower
            entry.score = (f"{memo_key}|{tower}", p_up)
        action = decide_action(p_up, settings)
        reason = threshold_reason(p_up, settings)
        max_age = settings.signal.max_feature_age_s
        if max_age is not None and (row.event_time is None or (served_at - row.event_time).total_seconds() > max_age):
            action, reason = "hold", f"features are stale (older than {max_age:.0f} s): hold"
        elif entry.stale_reason is not None:
            action, reason = "hold", f"{entry.stale_reason}: hold"
        SIGNALS.labels(action=action).inc()
        deps.confidence.add(p_up)
        return Signal(
            symbol=symbol,
            p_up=p_up,
            action=action,
            model_name=champion.ref.name,
            model_version=champion.ref.version,
            feature_time=row.event_time,
            served_at=served_at,
            reason=reason,
            tower=tower,  # type: ignore[arg-type]  # "tabular" or "fused" by construction
            tradeable=champion.tradeable,
        )

    return router


def hot_router() -> APIRouter:
    router = APIRouter()

    @router.get("/hot", response_model=HotRanking)
    async def hot(request: Request) -> HotRanking:
        """The hot-score ranking of SPEC 3 (top `stream.hot_top_n`); empty when the stream is off."""
        stream = request.app.state.stream
        if stream is None:
            return HotRanking(computed_at=None, as_of=None, symbols_ranked=0, top=[])
        ranking: HotRanking = stream.hot
        return ranking if ranking.computed_at is not None else stream.rank_now()

    return router
