"""A silent server: a loopback socket that accepts connections and never answers.

It models a hung database, a stopped VM behind a live port, or a proxy whose backend is
gone: TCP connects succeed, then no byte ever comes back and nothing is closed. Accepted
sockets are kept open (and unread) until stop(), so a client sees no EOF either.
"""

from __future__ import annotations

import select
import socket
import threading
from types import TracebackType


class SilentServer:
    """Accepts every TCP connection on 127.0.0.1 and then says nothing, on its own thread."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.host = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)

    @property
    def accepted(self) -> int:
        """How many connections were accepted (and left hanging) so far."""
        with self._lock:
            return len(self._accepted)

    def start(self) -> SilentServer:
        """Start accepting on the background thread."""
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            # A short select timeout, so stop() is noticed without closing under accept().
            readable, _, _ = select.select([self._listener], [], [], 0.1)
            if not readable:
                continue
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._accepted.append(conn)

    def stop(self) -> None:
        """Stop the thread, then close the listener and every accepted connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for conn in self._accepted:
                conn.close()
            self._accepted.clear()

    def __enter__(self) -> SilentServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
