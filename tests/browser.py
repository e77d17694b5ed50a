"""Headless Chromium for the browser tests (Debian's `chromium`, driven by playwright), and screenshots.

The `browser` fixture (tests/conftest.py) yields a launched playwright `Browser`; it skips, with the
reason, when playwright or the chromium binary is missing. Screenshots go to tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """A headless Chromium (no sandbox: the tests run as root in containers), closed on exit."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip: playwright)")
    if not CHROMIUM.is_file() and shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is missing (apt-get install -y chromium)")
    executable = str(CHROMIUM) if CHROMIUM.is_file() else str(shutil.which("chromium"))
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot of `page` as tests/artifacts/`name` (the folder is created); returns its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path
