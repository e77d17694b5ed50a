"""The web dashboard (`/dashboard`) and the two read-only JSON endpoints only it needed.

- `GET /dashboard` redirects to `/dashboard/`, the static page (`serving/dashboard/static/`: HTML, one
  vanilla JS file, one CSS file, no CDN). The page polls the trading endpoints, `/models/*`, and listens
  on `/ws/signals` for the live `p_up` chart; kill/resume send the key the user typed (`X-API-Key`).
- `GET /trading/equity`: the equity curve and its drawdown, rebuilt from the engine store's closed round
  trips (so it survives restarts): the curve starts at today's equity less every listed trade's net PnL
  and the open positions' unrealized PnL, steps by each trade's net PnL at its close, and ends at the
  current equity. Drawdown is each point's fall from the running peak (a fraction, <= 0).
- `GET /trading/fills`: the executions of the newest orders, newest first.
- `/docs` and `/redoc` offline: Swagger UI and ReDoc from the `fastapi-offline` package's files under
  `/docs-static` (the app is built with docs_url=None, redoc_url=None).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import fastapi_offline
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from serving.engine.engine import TradingEngine

STATIC_DIR = Path(__file__).resolve().parent.parent / "dashboard" / "static"
SWAGGER_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"


class EquityPoint(BaseModel):
    ts: datetime
    equity: Decimal
    drawdown: float = Field(description="(equity - running peak) / running peak, <= 0")
    strategy_id: str = Field("", description="The strategy whose round trip closed here ('' = start / now)")


class EquityOut(BaseModel):
    points: list[EquityPoint]
    max_drawdown: float
    peak_equity: Decimal = Field(description="The engine's own peak (its drawdown switch uses this one)")


class FillOut(BaseModel):
    ts: datetime
    client_order_id: str
    symbol: str
    side: str
    price: Decimal
    size: Decimal
    fee: Decimal
    liquidity: str
    strategy_id: str


def _engine(request: Request) -> TradingEngine:
    engine: TradingEngine | None = getattr(request.app.state, "trading_engine", None)
    if engine is None:
        raise HTTPException(503, "trading engine is not running (disabled or not started)")
    return engine


def equity_curve(
    now: datetime, equity: Decimal, unrealized: Decimal, trades: list[tuple[datetime, Decimal, str]]
) -> list[EquityPoint]:
    """The curve described in the module docstring; `trades` = (closed_at, net_pnl, strategy), oldest first."""
    value = equity - unrealized - sum((pnl for _, pnl, _ in trades), Decimal(0))
    start = trades[0][0] if trades else now
    steps = [(start, value, "")]
    for ts, pnl, strategy in trades:
        value += pnl
        steps.append((ts, value, strategy))
    steps.append((max(now, steps[-1][0]), equity, ""))
    points, peak = [], Decimal(0)
    for ts, val, strategy in steps:
        peak = max(peak, val)
        drawdown = float((val - peak) / peak) if peak > 0 else 0.0
        points.append(EquityPoint(ts=ts, equity=val, drawdown=drawdown, strategy_id=strategy))
    return points


def dashboard_router() -> APIRouter:
    router = APIRouter(tags=["dashboard"])

    @router.get("/dashboard", include_in_schema=False)
    def dashboard() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    @router.get("/trading/equity", response_model=EquityOut, responses={503: {}})
    def equity(
        request: Request, limit: Annotated[int, Query(ge=1, le=5000, description="Newest round trips")] = 1000
    ) -> EquityOut:
        engine = _engine(request)
        status = engine.status()
        try:
            trades = engine.store.closed_trades(limit=limit)
        except Exception as exc:  # the store is down: say so rather than 500
            raise HTTPException(503, f"trading store unavailable: {type(exc).__name__}") from exc
        unrealized = sum((s.unrealized_pnl for s in status.strategies), Decimal(0))
        points = equity_curve(
            engine.now(),
            status.equity,
            unrealized,
            sorted(((t.closed_at, t.net_pnl, t.strategy_id) for t in trades), key=lambda t: t[0]),
        )
        return EquityOut(points=points, max_drawdown=min(p.drawdown for p in points), peak_equity=status.peak_equity)

    @router.get("/trading/fills", response_model=list[FillOut], responses={503: {}})
    def fills(
        request: Request, limit: Annotated[int, Query(ge=1, le=1000, description="Newest orders")] = 100
    ) -> list[FillOut]:
        engine = _engine(request)
        try:
            stored = engine.store.load_orders(limit=limit)
        except Exception as exc:
            raise HTTPException(503, f"trading store unavailable: {type(exc).__name__}") from exc
        out = [
            FillOut(
                ts=f.ts,
                client_order_id=s.order.client_order_id,
                symbol=s.order.symbol,
                side=s.order.side.value,
                price=f.price,
                size=f.size,
                fee=f.fee,
                liquidity=str(getattr(f.liquidity, "value", f.liquidity)),
                strategy_id=s.strategy_id,
            )
            for s in stored
            for f in s.order.fills
        ]
        return sorted(out, key=lambda f: f.ts, reverse=True)

    return router


def install_dashboard(app: FastAPI) -> None:
    """Mount the dashboard, its endpoints and the offline `/docs` (the app is built with docs_url=None)."""
    app.include_router(dashboard_router())
    app.mount("/dashboard", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
    app.mount("/docs-static", StaticFiles(directory=SWAGGER_DIR), name="docs-static")
    oauth_redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon.png",
            oauth2_redirect_url=oauth_redirect,
        )

    @app.get(oauth_redirect, include_in_schema=False)
    def docs_oauth_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url="/docs-static/redoc.standalone.js",
            redoc_favicon_url="/docs-static/favicon.png",
            with_google_fonts=False,
        )
