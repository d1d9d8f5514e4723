"""Packaging: `all` holds every runtime extra, and the demo installs no dev tools."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_all_extra_holds_every_runtime_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    runtime = set(extras) - {"all", "dev"}
    (all_spec,) = extras["all"]
    included = set(re.fullmatch(r"dbwire\[(.*)\]", all_spec).group(1).split(","))  # type: ignore[union-attr]
    assert included == runtime
    assert {"fastapi", "migrate", "fast", "yaml"} <= included
    assert "dbwire[all]" in extras["dev"]


def test_demo_installs_runtime_extras_only() -> None:
    demo = (ROOT / "scripts" / "demo").read_text()
    installs = re.findall(r"pip install .*", demo)
    assert installs and all("dev" not in line for line in installs)
    assert "scripts/setup" not in demo.replace("(./scripts/setup)", "")


def test_readme_says_how_to_install_from_a_checkout() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e '.[all]'" in readme
    assert "await db.aclose()" in readme
