"""Throwaway MariaDB and PostgreSQL servers that accept TLS logins only, and their CA.

``TLSMariaDBServer`` starts mariadbd with ``--ssl-ca/--ssl-cert/--ssl-key`` and
``--require-secure-transport=ON``; ``TLSPostgresServer`` runs with ``ssl=on`` and only
``hostssl`` lines in pg_hba.conf. A clear-text login over TCP fails, so a client path
that dropped the TLS settings cannot pass a test by luck. The certificates are made
in the server's own temp directory with ``cryptography`` (a dev dependency): a CA, a
server certificate for 127.0.0.1 / localhost signed by it, and a second, unrelated CA
(``other_ca``) that a client can be told to trust so verification must fail.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers.local import MariaDBServer, PostgresServer, _chown_tree

__all__ = ["TLSFiles", "TLSMariaDBServer", "TLSPostgresServer", "make_tls_files"]


@dataclass(frozen=True)
class TLSFiles:
    """PEM files: the CA, the server's and a client's certificate and key, another CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


def _ca(common_name: str) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(ca_key: Any, ca_cert: Any, name: str, server: bool) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def make_tls_files(directory: Path) -> TLSFiles:
    """A CA; a server certificate for 127.0.0.1 and localhost and a client one, signed by
    it; and an unrelated CA."""
    from cryptography.hazmat.primitives import serialization

    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("dbwire test CA")
    _other_key, other_cert = _ca("dbwire unrelated CA")
    server_key, server_cert = _leaf(ca_key, ca_cert, "localhost", server=True)
    client_key, client_cert = _leaf(ca_key, ca_cert, "dbwire", server=False)
    files = TLSFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server-cert.pem",
        server_key=directory / "server-key.pem",
        client_cert=directory / "client-cert.pem",
        client_key=directory / "client-key.pem",
        other_ca=directory / "other-ca.pem",
    )
    pem = serialization.Encoding.PEM
    files.ca.write_bytes(ca_cert.public_bytes(pem))
    files.other_ca.write_bytes(other_cert.public_bytes(pem))
    files.server_cert.write_bytes(server_cert.public_bytes(pem))
    files.client_cert.write_bytes(client_cert.public_bytes(pem))
    _write_key(files.server_key, server_key)
    _write_key(files.client_key, client_key)
    return files


class TLSMariaDBServer(MariaDBServer):
    """A throwaway MariaDB that refuses every login not made over TLS (TCP)."""

    label = "mysql-tls"

    def __init__(self, *, user: str = "dbwire", database: str = "dbwire") -> None:
        super().__init__(user=user, database=database)
        self.tls: TLSFiles = make_tls_files(self.base_dir / "tls")
        if self._account is not None:
            _chown_tree(self.base_dir / "tls", self._account)
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        self._client_ssl = context

    def _extra_args(self) -> list[str]:
        return [
            f"--ssl-ca={self.tls.ca}",
            f"--ssl-cert={self.tls.server_cert}",
            f"--ssl-key={self.tls.server_key}",
            "--require-secure-transport=ON",
        ]


class TLSPostgresServer(PostgresServer):
    """A throwaway PostgreSQL that refuses every TCP login not made over TLS."""

    label = "postgresql-tls"

    def __init__(self, *, user: str = "dbwire", database: str = "dbwire") -> None:
        super().__init__(user=user, database=database)
        self.tls: TLSFiles = make_tls_files(self.base_dir / "tls")
        self.tls.server_key.chmod(0o600)  # the server refuses a key others can read
        if self._account is not None:
            _chown_tree(self.base_dir / "tls", self._account)

    def _initialize(self) -> None:
        super()._initialize()
        hba = self.data_dir / "pg_hba.conf"
        lines = hba.read_text().splitlines()
        hba.write_text(
            "\n".join("hostssl" + line[4:] if line.startswith("host ") else line for line in lines)
            + "\n"
        )

    def _extra_options(self) -> list[str]:
        return [
            "-c ssl=on",
            f"-c ssl_cert_file={self.tls.server_cert}",
            f"-c ssl_key_file={self.tls.server_key}",
        ]
