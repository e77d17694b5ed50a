"""GET /metrics: Prometheus text exposition of this process's default registry (SPEC 14)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from serving.metrics import exposition


def metrics_router() -> APIRouter:
    router = APIRouter()

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"}},
    )
    def metrics() -> Response:
        """Prometheus metrics (SPEC 14): this process's default registry, trading metrics included."""
        body, content_type = exposition()
        return Response(content=body, media_type=content_type)

    return router
