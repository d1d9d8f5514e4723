"""A local AWS (moto's server) on a free loopback port: Secrets Manager, STS, RDS, S3 ...

boto3 reaches it over real HTTP through ``endpoint_url``, with fake credentials; nothing
leaves the machine.  The server runs on a thread of this process (``ThreadedMotoServer``),
so it ends with the process and needs no watchdog; ``stop()`` closes its port, which is how
tests model AWS going away.

This module is deliberately independent of pytest.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from typing import Any

from servers.local import free_port
from servers.started import Started

__all__ = ["FAKE_CREDENTIALS", "REGION", "MotoServer"]

REGION = "eu-west-1"
# moto accepts any key pair; these only have to look like AWS's.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


class MotoServer(Started["MotoServer"]):
    """moto's HTTP server on 127.0.0.1; ``client(service)`` is a boto3 client pointed at it."""

    def __init__(self, *, region: str = REGION) -> None:
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.region = region
        self._server: Any = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> MotoServer:
        """Start serving and wait until the port answers HTTP."""
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server on port {self.port} did not answer") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop serving and close the port (later requests are refused)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def is_running(self) -> bool:
        if self._server is None:
            return False
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex((self.host, self.port)) == 0

    def reset(self) -> None:
        """Forget every resource (moto's reset API), keeping the server up."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=5):
            pass

    def client(self, service: str) -> Any:
        """A boto3 client for this server, with the fake credentials."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
