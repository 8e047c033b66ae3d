"""The web panel in a real browser: Debian's chromium driven by Playwright for
Python (never a browser Playwright downloads), against a real cluster.

Every test here is marked `browser` and skips, saying why, when chromium,
Playwright or the panel's build (make install) is missing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BUILD = ROOT / "ui" / "dist" / "index.html"
# How the machine's notes say to start chromium here: no GPU, no QUIC, no
# background traffic to the outside (this machine has no internet).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    if not Path(CHROMIUM).exists():
        return "no chromium (make test installs Debian's package)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "no playwright for Python (pip install -e '.[test]')"
    if not BUILD.exists():
        return "the web panel is not built (make install builds ui/dist with npm)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = missing()
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped, not session: Playwright's sync API runs an event loop in
    this thread while it lives, and the next test files of the same worker
    process (pytest-xdist) must find none running (asyncio.run refuses)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # launch() gives every run a fresh, empty profile (a new --user-data-dir)
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()
