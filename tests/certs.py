"""Certificates made at run time for TLS tests (no private key is kept in the repository).

``make_tls_files(directory)`` writes, as PEM files:

* ``ca.pem`` — a test CA; ``server.pem``/``server.key`` and ``client.pem``/``client.key``
  signed by it (the server certificate names 127.0.0.1, ::1 and localhost);
* ``other_ca.pem`` and ``other_server.pem``/``other_server.key`` — a second, unrelated CA and a
  server certificate it signed (for "unknown CA" failures);
* ``self.pem``/``self.key`` — a self-signed certificate (pycos's certfile/keyfile model).

Use the session fixture ``tls_files`` (import it into a test module) to get a ``TLSFiles``.
EC P-256 keys keep generation fast.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TLSFiles:
    """Paths of the generated PEM files."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca: str
    other_server_cert: str
    other_server_key: str
    self_cert: str
    self_key: str


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> str:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return str(path)


def _write_cert(cert: x509.Certificate, path: Path) -> str:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def _builder(subject: str, issuer: x509.Name,
             key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2)))


def _ca(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    cert = (_builder(common, _name(common), key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(common: str, ca: x509.Certificate | None, ca_key: ec.EllipticCurvePrivateKey | None,
          server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    issuer = ca.subject if ca is not None else _name(common)
    builder = (_builder(common, issuer, key)
               .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None),
                              critical=True)
               .add_extension(x509.SubjectAlternativeName([
                   x509.DNSName("localhost"),
                   x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                   x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
               .add_extension(x509.ExtendedKeyUsage(
                   [ExtendedKeyUsageOID.SERVER_AUTH if server else
                    ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if ca is not None and ca_key is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key
    return builder.sign(key, hashes.SHA256()), key


def make_tls_files(directory: Path) -> TLSFiles:
    """Generate every test certificate and key under ``directory``."""
    ca, ca_key = _ca("pycos test CA")
    other_ca, other_ca_key = _ca("unrelated test CA")
    server, server_key = _leaf("127.0.0.1", ca, ca_key, server=True)
    client, client_key = _leaf("pycos test client", ca, ca_key, server=False)
    other_server, other_server_key = _leaf("127.0.0.1", other_ca, other_ca_key, server=True)
    self_cert, self_key = _leaf("127.0.0.1", None, None, server=True)
    d = directory
    return TLSFiles(
        ca=_write_cert(ca, d / "ca.pem"),
        server_cert=_write_cert(server, d / "server.pem"),
        server_key=_write_key(server_key, d / "server.key"),
        client_cert=_write_cert(client, d / "client.pem"),
        client_key=_write_key(client_key, d / "client.key"),
        other_ca=_write_cert(other_ca, d / "other_ca.pem"),
        other_server_cert=_write_cert(other_server, d / "other_server.pem"),
        other_server_key=_write_key(other_server_key, d / "other_server.key"),
        self_cert=_write_cert(self_cert, d / "self.pem"),
        self_key=_write_key(self_key, d / "self.key"),
    )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """Session fixture: freshly generated certificates (see ``make_tls_files``)."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))
