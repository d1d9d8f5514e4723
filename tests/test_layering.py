"""Imports point one way: no loop between modules, nothing against the layering map.

The map is docs/architecture.json (parts, the arrows allowed between them, and the
"never" arrows); the README's "Map of the code" names each path's layer the same way.
Every import of src/dbwire is read with `ast`: module level, inside functions and under
TYPE_CHECKING alike, since each is a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
MAP = ROOT / "docs" / "architecture.json"
README = ROOT / "README.md"


def module_files(src: Path, package: str) -> dict[str, Path]:
    """Every module of `package` under `src`, by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module an imported dotted name lands in: the longest known prefix."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's own modules that `module` imports, anywhere in its text."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            # `from pkg import sub` imports the submodule sub; `from pkg import name`, pkg.
            names = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module:
                found.add(target)
    return found


def import_graph(src: Path, package: str) -> dict[str, set[str]]:
    """module -> the package's modules it imports."""
    modules = module_files(src, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                loop = visit(nxt)
                if loop:
                    return loop
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            loop = visit(node)
            if loop:
                return loop
    return None


def part_of(path: str, parts: dict[str, list[str]]) -> str | None:
    """The part whose most specific path (a file, or a folder ending in /) holds `path`."""
    best: tuple[int, str] | None = None
    for part, paths in parts.items():
        for p in paths:
            holds = path == p or (p.endswith("/") and path.startswith(p))
            if holds and (best is None or len(p) > best[0]):
                best = (len(p), part)
    return best[1] if best else None


def layering_violations(
    graph: dict[str, set[str]], files: dict[str, str], board: dict[str, object]
) -> list[str]:
    """Each import between two parts that the map does not allow, or forbids."""
    parts = {name: spec["is"] for name, spec in board["parts"].items()}  # type: ignore[attr-defined]
    allowed = {tuple(a) for a in board["arrows"]}  # type: ignore[attr-defined]
    never = {(a[0], a[1]) for a in board["never"]}  # type: ignore[attr-defined]
    problems: list[str] = []
    for module, targets in sorted(graph.items()):
        here = part_of(files[module], parts)
        if here is None:
            problems.append(f"{files[module]} is on no part of the map")
            continue
        for target in sorted(targets):
            there = part_of(files[target], parts)
            if there is None or there == here:
                continue
            if (here, there) in never or (here, there) not in allowed:
                problems.append(f"{module} ({here}) imports {target} ({there})")
    return problems


def _relative_files(src: Path, package: str, root: Path = ROOT) -> dict[str, str]:
    return {
        name: path.relative_to(root).as_posix() for name, path in module_files(src, package).items()
    }


def _board() -> dict[str, object]:
    board: dict[str, object] = json.loads(MAP.read_text())
    return board


def test_src_has_no_import_cycle() -> None:
    graph = import_graph(SRC, "dbwire")
    assert len(graph) > 40, "the reader found too few modules to mean anything"
    assert find_cycle(graph) is None, f"import loop: {' -> '.join(find_cycle(graph) or [])}"


def test_src_imports_follow_the_map() -> None:
    graph = import_graph(SRC, "dbwire")
    problems = layering_violations(graph, _relative_files(SRC, "dbwire"), _board())
    assert problems == []


def test_the_map_names_only_paths_that_exist() -> None:
    for spec in _board()["parts"].values():  # type: ignore[attr-defined]
        for path in spec["is"]:
            assert (ROOT / path).exists(), f"docs/architecture.json names {path}, which is gone"


def test_readme_map_gives_each_path_the_layer_of_the_whiteboard() -> None:
    parts = {name: spec["is"] for name, spec in _board()["parts"].items()}  # type: ignore[attr-defined]
    section = README.read_text().split("## Map of the code", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\w+) \| `(src/dbwire/[^`]+)`", section, flags=re.M)
    assert len(rows) > 15, "the README map has no layer column"
    for layer, path in rows:
        assert part_of(path, parts) == layer, f"README puts {path} in {layer}"
    listed = {path for _, path in rows}
    for spec_paths in parts.values():
        for path in spec_paths:
            covered = any(path == p or path.startswith(p) or p.startswith(path) for p in listed)
            assert covered, f"the README map does not mention {path}"


# -- the reader itself, on packages made for the purpose ----------------------------------
def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_reader_sees_loops_through_function_and_type_checking_imports(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "def f():\n    from pkg.b import g\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import c\n"
            ),
            "pkg/c.py": "from . import a\n",
            "pkg/d.py": "import pkg.a\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    del graph["pkg.c"]
    assert find_cycle(graph) is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from pkg.top import x\n", ["pkg.low (Low) imports pkg.top (Top)"]),
        ("def f():\n    import pkg.top\n", ["pkg.low (Low) imports pkg.top (Top)"]),
        ("from pkg import side\n", ["pkg.low (Low) imports pkg.side (Side)"]),
        ("from pkg import base\n", []),
    ],
)
def test_reader_refuses_an_import_against_the_map(
    tmp_path: Path, source: str, expected: list[str]
) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/top.py": "from pkg import low\n",
            "pkg/low.py": source,
            "pkg/side.py": "",
            "pkg/base.py": "",
        },
    )
    board = {
        "parts": {
            "Top": {"is": ["pkg/top.py", "pkg/__init__.py"]},
            "Low": {"is": ["pkg/low.py"]},
            "Side": {"is": ["pkg/side.py"]},
            "Base": {"is": ["pkg/base.py"]},
        },
        "arrows": [["Top", "Low"], ["Low", "Base"], ["Low", "Side"]],
        "never": [["Low", "Top", "upward"], ["Low", "Side", "forbidden even if drawn"]],
    }
    graph = import_graph(tmp_path, "pkg")
    assert layering_violations(graph, _relative_files(tmp_path, "pkg", tmp_path), board) == expected
