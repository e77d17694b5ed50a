"""Authentication before anything reads a request body: an ASGI guard in front of the whole app.

Every state-changing request (POST, PUT, PATCH, DELETE: `/kill`, `/resume`, and any control endpoint a
router adds later) must carry `X-API-Key` equal to `ALPHATIDE_API_KEY`, checked here, before FastAPI
parses or validates the body. So an unauthenticated request learns nothing about what the endpoint
accepts: a broken body without the key is 401, not 422. The comparison is constant-time
(`hmac.compare_digest`). No key configured: 503 with the reason (control endpoints are never open by
default). Read-only requests (GET, HEAD, OPTIONS) and WebSockets pass through.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

API_KEY_HEADER = "X-API-Key"
GUARDED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def key_matches(provided: str, expected: SecretStr) -> bool:
    """Constant-time comparison of the presented key with the configured one."""
    return hmac.compare_digest(provided.encode(), expected.get_secret_value().encode())


class ApiKeyGuard:
    """`app.add_middleware(ApiKeyGuard, api_key=settings.api_key)`; see the module docstring."""

    def __init__(self, app: ASGIApp, api_key: SecretStr | None, methods: frozenset[str] = GUARDED_METHODS):
        self.app = app
        self.api_key = api_key if api_key is not None and api_key.get_secret_value() else None
        self.methods = methods
        self._header = API_KEY_HEADER.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in self.methods:
            await self.app(scope, receive, send)
            return
        if self.api_key is None:
            reason = "no API key configured (set ALPHATIDE_API_KEY): control endpoints are disabled"
            await JSONResponse({"detail": reason}, status_code=503)(scope, receive, send)
            return
        provided = next((v for k, v in scope.get("headers", ()) if k == self._header), None)
        try:
            presented = provided.decode("latin-1") if provided is not None else None
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            presented = None
        if presented is None or not key_matches(presented, self.api_key):
            response = JSONResponse(
                {"detail": f"missing or wrong {API_KEY_HEADER} header"},
                status_code=401,
                headers={"WWW-Authenticate": "ApiKey"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
