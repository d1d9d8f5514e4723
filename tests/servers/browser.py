"""Headless Chromium for the page tests: Debian's ``chromium`` driven by Playwright.

The browser is the system's (``/usr/bin/chromium``, installed by ``scripts/install-servers``),
never one ``playwright install`` downloads. Playwright's driver is a child process that
launches the browser as its own child and ends it when its pipe to this process closes, so a
test process that dies (SIGKILL, CI timeout) leaves no browser behind; ``stop()`` ends both.

Set ``DBWIRE_TEST_CHROMIUM`` to use another Chromium binary. This module is independent of
pytest.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from servers.local import ServerUnavailable
from servers.started import Started

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

__all__ = ["CHROMIUM_ENV", "Chromium", "chromium_path"]

CHROMIUM_ENV = "DBWIRE_TEST_CHROMIUM"
_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str:
    """The Chromium binary to drive; ServerUnavailable says how to install one."""
    override = os.environ.get(CHROMIUM_ENV, "").strip()
    if override:
        if not (Path(override).is_file() and os.access(override, os.X_OK)):
            raise ServerUnavailable(f"{CHROMIUM_ENV}={override!r} is not an executable file")
        return override
    for candidate in _CANDIDATES:
        if Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    raise ServerUnavailable(
        "Chromium not found (run ./scripts/install-servers: it installs Debian's 'chromium')"
    )


class Chromium(Started["Browser"]):
    """One headless Chromium for a test session or module."""

    def __init__(self) -> None:
        self.executable: str = chromium_path()
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            raise ServerUnavailable(
                "the 'playwright' package is missing (pip install -e '.[dev]')"
            ) from None
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    @property
    def browser(self) -> Browser:
        if self._browser is None:
            raise RuntimeError("Chromium is not started")
        return self._browser

    def start(self) -> Browser:
        """Launch the browser (headless; Playwright adds --no-sandbox, needed as root)."""
        from playwright.sync_api import sync_playwright

        if self._browser is not None:
            return self._browser
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=self.executable, headless=True, timeout=60_000
            )
        except Exception:
            self._playwright.stop()
            self._playwright = None
            raise
        return self._browser

    def stop(self) -> None:
        """Close the browser and the Playwright driver. Idempotent."""
        browser, self._browser = self._browser, None
        driver, self._playwright = self._playwright, None
        try:
            if browser is not None:
                browser.close()
        finally:
            if driver is not None:
                driver.stop()
