"""Key derivation, handshake proofs and frame MACs (HMAC-SHA256 throughout).

Owns the cryptographic arithmetic of the handshake; imports only the standard library (hmac,
hashlib, secrets). No state lives here: the connection holds the keys. Every comparison of a
received value with an expected one uses ``hmac.compare_digest``.

Derivation (HKDF, RFC 5869, with HMAC-SHA256 and one output block per key)::

    prk                = HMAC(salt = b"pycos/proto" + client_nonce + server_nonce, secret)
    key(label)         = HMAC(prk, label + b"\\x01")
    client proof       = HMAC(key(b"proof client"), client HELLO frame + server HELLO frame)
    server proof       = HMAC(key(b"proof server"), client HELLO frame + server HELLO frame)
    frame MAC, c -> s  = HMAC(key(b"mac client->server"), header + body)
    frame MAC, s -> c  = HMAC(key(b"mac server->client"), header + body)

The HELLO frames (header and body, byte for byte) carry both nonces, both incarnation ids, the
version ranges and the roles, so a proof is bound to this very handshake and direction: a
recorded proof is useless against a new nonce, and one direction's proof or frame is never valid
in the other direction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = [
    "NONCE_SIZE",
    "INCARNATION_SIZE",
    "KEY_SIZE",
    "new_nonce",
    "new_incarnation",
    "hkdf",
    "SessionKeys",
    "mac",
    "digest_equal",
]

NONCE_SIZE = 32
INCARNATION_SIZE = 16
KEY_SIZE = 32
_SALT_PREFIX = b"pycos/proto"


def new_nonce() -> bytes:
    """A fresh random 32-byte nonce (plain call)."""
    return secrets.token_bytes(NONCE_SIZE)


def new_incarnation() -> bytes:
    """A fresh random 16-byte incarnation id (plain call)."""
    return secrets.token_bytes(INCARNATION_SIZE)


def hkdf(secret: bytes, salt: bytes, label: bytes) -> bytes:
    """HKDF-SHA256 extract-and-expand giving one 32-byte key for ``label`` (plain call)."""
    prk = hmac.digest(salt, secret, hashlib.sha256)
    return hmac.digest(prk, label + b"\x01", hashlib.sha256)


def mac(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 of the concatenation of ``parts`` (plain call)."""
    h = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        h.update(part)
    return h.digest()


def digest_equal(expected: bytes, received: bytes) -> bool:
    """Constant-time comparison of two digests (plain call)."""
    return hmac.compare_digest(expected, received)


@dataclass(frozen=True, slots=True, repr=False)
class SessionKeys:
    """The four per-connection keys derived from the secret and both nonces."""

    client_proof: bytes
    server_proof: bytes
    client_mac: bytes
    server_mac: bytes
    exporter: bytes

    def __repr__(self) -> str:
        return "SessionKeys(<hidden>)"

    @classmethod
    def derive(cls, secret: bytes, client_nonce: bytes, server_nonce: bytes) -> SessionKeys:
        """Derive the keys of one connection (plain call)."""
        prk = hmac.digest(_SALT_PREFIX + client_nonce + server_nonce, secret, hashlib.sha256)

        def expand(label: bytes) -> bytes:
            return hmac.digest(prk, label + b"\x01", hashlib.sha256)

        return cls(expand(b"proof client"), expand(b"proof server"),
                   expand(b"mac client->server"), expand(b"mac server->client"),
                   expand(b"exporter"))

    def export(self, label: bytes) -> bytes:
        """A key for ``label`` shared by both ends of this connection (plain call): what
        other dialogues on the connection key their own MACs with."""
        return hmac.digest(self.exporter, label + b"\x01", hashlib.sha256)
