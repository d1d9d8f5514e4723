"""The front door: dbwire/__init__.py exports exactly its __all__."""

from __future__ import annotations

import dbwire


def test_all_is_complete() -> None:
    public = [n for n in vars(dbwire) if not n.startswith("_")]
    # Submodules imported as a side effect of loading the package are not API.
    modules = {n for n in public if type(getattr(dbwire, n)).__name__ == "module"}
    exported = set(dbwire.__all__)
    assert exported >= set(public) - modules, "public name missing from __all__"
    assert len(dbwire.__all__) == len(exported), "duplicate in __all__"
    # The order of __all__ is ruff's (RUF022, checked by the test command).
    for name in dbwire.__all__:
        assert hasattr(dbwire, name), name
