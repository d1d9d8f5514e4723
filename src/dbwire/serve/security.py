"""Who may talk to `dbwire serve`: the start-up token, the session cookie, Host and Origin.

The server is meant for the user at this machine: it binds 127.0.0.1, prints one login
URL with a random token, and trusts a request only if it carries that token (as a bearer
header, or as the HttpOnly SameSite=Strict cookie /login sets). The Host header must be
one of the bound names (a DNS-rebinding page sends its own host name), and a request that
changes state must not come from another site (Sec-Fetch-Site, Origin).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

COOKIE_NAME = "dbwire_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_SITE = frozenset({"same-origin", "none"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def new_token() -> str:
    """A fresh login token: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """True for an address or name that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_names(host: str, port: int | None) -> frozenset[str]:
    """The Host header values a browser sends for this server (port None: any port)."""
    names = {*LOOPBACK_NAMES}
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    if host not in ("0.0.0.0", "::", "[::]"):
        names.add(shown.lower())
    if port is None:
        return frozenset(names)
    return frozenset(f"{name}:{port}" for name in names)


@dataclass(frozen=True)
class Guard:
    """The checks every request passes; the token itself never leaves this object."""

    token: str = field(repr=False)
    allowed_hosts: frozenset[str]
    any_port: bool = False

    @property
    def session_value(self) -> str:
        """The cookie's value: derived from the token, so the cookie is not the token."""
        return hmac.new(self.token.encode(), b"dbwire-serve-session", hashlib.sha256).hexdigest()

    def token_ok(self, given: str | None) -> bool:
        """True when given is the login token (compared in constant time)."""
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def authorized(self, cookie: str | None, authorization: str | None) -> bool:
        """True for the session cookie or `Authorization: Bearer TOKEN`."""
        if cookie is not None and hmac.compare_digest(cookie.encode(), self.session_value.encode()):
            return True
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and self.token_ok(value.strip()):
                return True
        return False

    def host_ok(self, host: str | None) -> bool:
        """True when the Host header names this server (DNS rebinding sends another name)."""
        if not host:
            return False
        host = host.strip().lower()
        if self.any_port:
            name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
            if port.isdigit() and name:
                host = name
        return host in self.allowed_hosts

    def cross_site(self, host: str | None, origin: str | None, fetch_site: str | None) -> bool:
        """True when a state-changing request comes from another site."""
        if fetch_site is not None and fetch_site.strip().lower() not in _SAME_SITE:
            return True
        if origin is None:
            return False
        origin = origin.strip().lower()
        return origin not in {f"http://{host}".lower(), f"https://{host}".lower()}


def make_guard(token: str, host: str, port: int | None, extra_hosts: Iterable[str] = ()) -> Guard:
    """The Guard for a server bound to host:port (port None: mounted, any port)."""
    names = set(host_names(host, port))
    names.update(h.lower() for h in extra_hosts)
    return Guard(token=token, allowed_hosts=frozenset(names), any_port=port is None)
