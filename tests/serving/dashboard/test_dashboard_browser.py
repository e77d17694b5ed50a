"""The dashboard and /docs in headless Chromium (Debian's `chromium`, driven by playwright).

The real app runs under uvicorn on 127.0.0.1; a test publishes signals through the app's own hub (what
the stream does), so the page's p_up chart must redraw from `/ws/signals`. Kill and resume are clicked
with the API key typed into the page. A screenshot is kept in tests/artifacts/ (gitignored).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import pytest

from serving.messages import SignalMessage
from tests.browser import screenshot
from tests.serving.dashboard.conftest import KEY, Served, record_round_trips

pytestmark = pytest.mark.integration
LOCAL_HOSTS = {"127.0.0.1"}

class PageLog:
    """Console errors, uncaught page errors and every URL the page requested."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.urls: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("request", lambda r: self.urls.append(r.url))

    def foreign(self) -> list[str]:
        parsed = [(u, urlparse(u)) for u in self.urls]
        return [u for u, p in parsed if p.scheme not in ("data", "blob") and p.hostname not in LOCAL_HOSTS]


def _signal(symbol: str, p_up: float) -> SignalMessage:
    now = datetime.now(UTC)
    return SignalMessage(
        symbol=symbol,
        p_up=p_up,
        action="buy" if p_up > 0.5 else "hold",
        reason="test hub",
        model_version="1",
        trigger="intrabar",
        feature_time=now,
        published_at=now,
    )


def _publish(served: Served, page: Any, values: dict[str, list[float]]) -> None:
    for i in range(max(len(v) for v in values.values())):
        for symbol, series in values.items():
            if i < len(series):
                served.app.state.hub.publish(_signal(symbol, series[i]))
        page.wait_for_timeout(30)


def test_dashboard_charts_live_signals_and_kills_and_resumes_without_console_errors(
    served: Served, browser: Any
) -> None:
    record_round_trips(served.app, ["15", "-6", "4"])
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    log = PageLog(page)
    page.goto(f"{served.url}/dashboard")
    page.wait_for_selector("#ws-state.on", timeout=20_000)
    page.wait_for_function("document.querySelector('#history tbody').textContent.includes('v1')", timeout=20_000)
    blank_chart = page.eval_on_selector("#pup-chart", "c => c.toDataURL()")

    _publish(served, page, {"BTC/USDT": [0.52, 0.61, 0.58, 0.73], "ETH/USDT": [0.41, 0.38, 0.45]})
    page.wait_for_function("window.dashboard.signalCount >= 7", timeout=20_000)

    legend = page.inner_text("#pup-legend")
    assert "BTC/USDT 0.730 (4)" in legend and "ETH/USDT 0.450 (3)" in legend
    assert page.eval_on_selector("#pup-chart", "c => c.toDataURL()") != blank_chart
    assert "5 points" in page.inner_text("#equity-summary")  # start + 3 round trips + now

    page.fill("#api-key", KEY)
    page.click("#kill")
    page.wait_for_selector("#kill[data-state=killed]", timeout=10_000)
    killed_state = page.inner_text("#state")
    assert served.app.state.trading_engine.manual_kill is True
    page.click("#resume")
    page.wait_for_selector("#kill[data-state=running]", timeout=10_000)
    assert served.app.state.trading_engine.manual_kill is False
    assert page.evaluate("sessionStorage.getItem('alphatide.apiKey')") == KEY
    assert page.evaluate("localStorage.length") == 0

    page.click("#kill")  # leave it killed for the screenshot: the state panel shows the switch
    page.wait_for_selector("#kill[data-state=killed]", timeout=10_000)
    screenshot(page, "dashboard.png", full_page=True)
    assert "manual" in killed_state and "entries allowed\tno" in killed_state.replace("\n", "\t")
    assert log.errors == []
    assert log.foreign() == []


def test_docs_render_offline(served: Served, browser: Any) -> None:
    page = browser.new_page()
    log = PageLog(page)

    page.goto(f"{served.url}/docs")
    page.wait_for_selector(".swagger-ui .opblock-summary-path", timeout=30_000)

    paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.textContent)")
    assert {"/signal", "/trading/status", "/kill", "/models/history", "/trading/equity"} <= {
        p.replace("\u200b", "") for p in paths
    }
    screenshot(page, "docs.png")
    assert log.foreign() == [] and len(log.urls) >= 3
    assert log.errors == []


def test_a_wrong_key_is_refused_and_said_so_on_the_page(served: Served, browser: Any) -> None:
    page = browser.new_page()
    log = PageLog(page)
    page.goto(f"{served.url}/dashboard")
    page.wait_for_selector("#kill[data-state=running]", timeout=20_000)

    page.fill("#api-key", KEY + "-wrong")
    page.click("#kill")
    page.wait_for_selector("#control-msg.bad", timeout=10_000)

    assert "401" in page.inner_text("#control-msg") and "X-API-Key" in page.inner_text("#control-msg")
    assert served.app.state.trading_engine.manual_kill is False
    assert page.get_attribute("#kill", "data-state") == "running"
    assert all("401" in e for e in log.errors)  # only the browser's own note of the refused request
