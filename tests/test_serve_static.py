"""The `dbwire serve` page's files: shipped as package data, self-contained, text-only DOM.

These read the files; tests/test_serve_browser.py runs them in Chromium.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "dbwire" / "serve" / "static"
FILES = sorted(p for p in STATIC.iterdir() if p.is_file())
SCRIPTS = [p for p in FILES if p.suffix == ".js"]

# The hooks the contract promises the browser test (serve-contract, "Page").
CONTRACT_TESTIDS = [
    "login-required",
    "connection-list",
    "connection-row-",
    "add-connection",
    "type-select",
    "field-",
    "save-connection",
    "test-connection-",
    "schema-tree-",
    "schema-node-",
    "sql-editor",
    "run-query",
    "cancel-query",
    "connection-picker",
    "results-grid",
    "results-count",
    "results-time",
    "query-history",
    "connection-error-",
    "status-panel",
    "status-chart-",
]


def test_every_page_file_is_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["dbwire"]
    assert {"index.html", "app.js", "app.css"} <= {p.name for p in FILES}
    for path in FILES:
        relative = path.relative_to(ROOT / "src" / "dbwire").as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_nothing_is_loaded_from_elsewhere(path: Path) -> None:
    text = path.read_text()
    # Only the SVG namespace name may look like a URL; it is an identifier, never fetched.
    urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'`)]*", text))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert "@import" not in text


def test_the_page_needs_no_inline_script_or_style() -> None:
    """The server's CSP forbids inline code; the page must not depend on any."""
    html = (STATIC / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_never_parse_data_as_html(path: Path) -> None:
    """Data reaches the DOM only as text nodes and attribute values (dom.js's h())."""
    text = path.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in text, f"{path.name} uses {sink}"
    assert "new Function" not in text
    assert 'setAttribute("style"' not in text


def test_every_contract_hook_is_on_the_page() -> None:
    page = "\n".join(p.read_text() for p in FILES)
    for testid in CONTRACT_TESTIDS:
        if testid.endswith("-"):  # a prefix, completed with a name in the scripts
            assert re.search(rf"[\"`']{re.escape(testid)}\$\{{", page), testid
        else:
            assert f'"{testid}"' in page, testid


def test_modules_import_only_their_siblings() -> None:
    for path in SCRIPTS:
        for target in re.findall(r"^import .* from \"([^\"]+)\";$", path.read_text(), flags=re.M):
            assert target.startswith("./") and (STATIC / target[2:]).is_file(), (path, target)
