"""An ASGI app served over real HTTP by uvicorn on a thread of the test process.

The page tests need a real socket (a browser cannot use an in-process transport) and the
same Manager as the test, so a test can hold that Manager's pooled connections and watch
the page report them. The port is free on loopback; ``stop()`` ends the server (its lifespan
shutdown included) and joins the thread. This module is independent of pytest.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from servers.local import free_port
from servers.started import Started

__all__ = ["ThreadedUvicorn"]


class ThreadedUvicorn(Started["ThreadedUvicorn"]):
    """``uvicorn.Server`` for ``app`` on 127.0.0.1, run on a daemon thread."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        self.host = host
        self.port: int = port or free_port(host)
        config = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", lifespan="on", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._exit_code: int | str | None = None
        self._thread = threading.Thread(target=self._run, name="uvicorn", daemon=True)

    def _run(self) -> None:
        # uvicorn ends a failed startup (a port in use) with sys.exit(): on this thread that
        # would be an unhandled exception; start() reports it instead.
        try:
            self._server.run()
        except SystemExit as exc:
            self._exit_code = exc.code

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ThreadedUvicorn:
        """Start serving; returns once the socket accepts requests (or raises)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(
                    f"uvicorn on {self.origin} exited during startup (code {self._exit_code})"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn on {self.origin} did not start in {timeout:.0f}s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the server to exit (lifespan shutdown runs) and join its thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5)
