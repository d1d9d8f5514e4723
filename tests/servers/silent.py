"""A silent server: a loopback socket that accepts connections and never answers.

It models a hung database, a stopped VM behind a live port, or a proxy whose backend is
gone: TCP connects succeed, then no byte ever comes back and nothing is closed. Accepted
sockets are kept open (and unread) until stop(), so a client sees no EOF either.
"""

from __future__ import annotations

import select
import socket
import threading
import time

from servers.started import Started


class SilentServer(Started["SilentServer"]):
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


class MutingProxy(Started["MutingProxy"]):
    """A loopback TCP proxy to a real server that can fall silent at any moment.

    Until mute() it forwards bytes both ways, so logins and queries work; after it, it
    forwards nothing and closes nothing: the server of an established connection "hangs".
    delay_new_logins() holds back a new connection's first server bytes (a slow login),
    and swallow_statements() drops a statement the client sends, so its reply never comes.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.host = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        self._peers: dict[socket.socket, socket.socket] = {}
        self._clients: set[socket.socket] = set()
        self._held_until: dict[socket.socket, float] = {}  # upstream -> monotonic time
        self._login_delay = 0.0
        self._swallow: bytes | None = None
        self._swallowed: set[socket.socket] = set()
        self._muted = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="muting-proxy", daemon=True)

    def mute(self) -> None:
        """From now on, forward nothing (connections stay open)."""
        self._muted.set()

    def unmute(self) -> None:
        """Forward again: bytes held back while muted go through now."""
        self._muted.clear()

    def delay_new_logins(self, seconds: float) -> None:
        """Connections accepted from now on hear nothing from the server for `seconds`."""
        self._login_delay = seconds

    def swallow_statements(self, marker: bytes) -> None:
        """A client packet containing `marker` is dropped, and nothing that client sends
        afterwards goes through: the server never sees it, so it never replies."""
        self._swallow = marker

    def start(self) -> MutingProxy:
        """Start forwarding on the background thread."""
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            live = [p for p in self._peers if self._held_until.get(p, 0.0) <= now]
            watched = [self._listener] + ([] if self._muted.is_set() else live)
            readable, _, _ = select.select(watched, [], [], 0.05)
            for sock in readable:
                if sock is self._listener:
                    self._accept()
                elif not self._muted.is_set():
                    self._forward(sock)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        if self._muted.is_set():
            self._peers[client] = client  # kept open, never answered
            return
        upstream = socket.create_connection(self._upstream, timeout=5)
        client.setblocking(True)
        self._peers[client] = upstream
        self._peers[upstream] = client
        self._clients.add(client)
        if self._login_delay > 0:
            self._held_until[upstream] = time.monotonic() + self._login_delay

    def _forward(self, sock: socket.socket) -> None:
        peer = self._peers.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            for end in (sock, peer):
                self._peers.pop(end, None)
                self._clients.discard(end)
                self._held_until.pop(end, None)
                end.close()
            return
        swallow = self._swallow
        if (
            sock in self._clients
            and swallow is not None
            and (sock in self._swallowed or swallow in data)
        ):
            self._swallowed.add(sock)
            return
        peer.sendall(data)

    def stop(self) -> None:
        """Stop the thread and close every socket."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._listener.close()
        for sock in list(self._peers):
            sock.close()
        self._peers.clear()
