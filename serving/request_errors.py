"""Invalid requests answer a readable 422, never a 500.

FastAPI's default handler echoes the offending input in the error list; an input the JSON encoder
refuses (NaN or Infinity, which Python's JSON parser accepts in a body like ``{"reason": NaN}``) then
turned the 422 into a 500. This handler writes non-finite numbers as strings ("NaN", "Infinity",
"-Infinity") and anything else JSON cannot hold as its repr.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    try:
        errors = jsonable_encoder(exc.errors())
    except Exception:  # an input jsonable_encoder cannot walk
        errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": _json_safe(errors)})


def install(app: FastAPI) -> None:
    """Register the handler on `app`."""
    app.add_exception_handler(RequestValidationError, validation_error)
