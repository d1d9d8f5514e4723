"""The README's async snippet, run as written in a fresh interpreter on every async driver,
prints nothing on stderr (no 'Event loop is closed', no ResourceWarning)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
README_URL = "postgresql://app@localhost/app"


def _snippet() -> str:
    text = README.read_text()
    found = re.search(r"<!-- async-snippet -->\s*```python\n(.*?)```", text, re.S)
    assert found, "README lost its async snippet"
    body = found.group(1)
    assert README_URL in body and "await db.aclose()" in body and "asyncio.run(main())" in body
    return body


def _url(request: pytest.FixtureRequest, driver: str, tmp_path: Path) -> str:
    if driver == "asyncpg":
        return str(request.getfixturevalue("pg_url"))
    if driver == "aiomysql":
        return str(request.getfixturevalue("mysql_url"))
    return f"sqlite:///{tmp_path / 'snippet.db'}"


@pytest.mark.parametrize("driver", ["asyncpg", "aiomysql", "aiosqlite"])
@pytest.mark.parametrize("with_aclose", [True, False], ids=["as-written", "without-aclose"])
def test_readme_async_snippet_is_silent(
    request: pytest.FixtureRequest, driver: str, with_aclose: bool, tmp_path: Path
) -> None:
    code = _snippet().replace(README_URL, _url(request, driver, tmp_path))
    if not with_aclose:  # the common mistake must not spray warnings either
        code = code.replace("await db.aclose()", "pass")
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert done.stderr == ""
