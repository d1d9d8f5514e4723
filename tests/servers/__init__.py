"""Real servers for the test suite, started from installed binaries (never mocks).

- ``local``: throwaway PostgreSQL and MariaDB servers, or external ones by URL;
- ``silent``: a server that accepts TCP connections and never answers;
- ``moto``: a local AWS (moto's server) for Secrets Manager and the other AWS APIs;
- ``browser``: headless Chromium (the system's) driven by Playwright;
- ``web``: an ASGI app served over real HTTP by uvicorn on a thread;
- ``started``: the context manager the in-process ones share (``with`` starts, leaving stops).

Each server module is independent of pytest; ``tests/conftest.py`` turns them into fixtures.
"""

from servers.local import (
    MYSQL_URL_ENV,
    POSTGRES_URL_ENV,
    DatabaseServer,
    ExternalServer,
    ExternalServerError,
    MariaDBServer,
    PostgresServer,
    ServerUnavailable,
    free_port,
)
from servers.moto import MotoServer

__all__ = [
    "MYSQL_URL_ENV",
    "POSTGRES_URL_ENV",
    "DatabaseServer",
    "ExternalServer",
    "ExternalServerError",
    "MariaDBServer",
    "MotoServer",
    "PostgresServer",
    "ServerUnavailable",
    "free_port",
]
