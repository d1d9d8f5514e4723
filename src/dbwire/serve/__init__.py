"""`dbwire serve`: the connection manager's HTTP API and web page (`pip install 'dbwire[serve]'`).

`create_app(manager)` builds the FastAPI application; `dbwire serve` runs it on 127.0.0.1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbwire.serve.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported on first use: `import dbwire.serve` costs nothing without it.
    if name == "create_app":
        from dbwire.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'dbwire.serve' has no attribute {name!r}")
