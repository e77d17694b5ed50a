"""WS /ws/signals (signals, hot rankings, source status as they happen) and its JSON Schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import TypeAdapter

from serving.deps import ServingDeps
from serving.messages import MESSAGE_TYPES, HelloMessage, WsMessage


def ws_router(deps: ServingDeps) -> APIRouter:
    router = APIRouter()

    @router.get("/ws/signals/schema")
    def ws_signals_schema() -> dict[str, Any]:
        """JSON Schema of the `/ws/signals` messages: one schema per `type` (a discriminated union)."""
        return TypeAdapter(WsMessage).json_schema()

    @router.websocket("/ws/signals")
    async def ws_signals(websocket: WebSocket) -> None:
        """Signals, hot rankings and source status as they happen; see `serving.messages`."""
        await websocket.accept()
        hello = HelloMessage(server_time=datetime.now(UTC), message_types=MESSAGE_TYPES)
        await deps.hub.serve(websocket, first=hello)

    return router
