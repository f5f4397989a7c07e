"""The admin passphrase: scrypt hashing and constant-time verification (never plain SHA-256)."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

# Why n=2**15, r=8, p=1: OWASP's scrypt minimum is n=2**17 with r=8, p=1 for password storage
# on servers that hash often; an admin passphrase is checked a few times a year, so 2**15
# (about 32 MiB, a tenth of a second here) is the floor, and a stored hash carries its own
# parameters so a stronger setting later still verifies old hashes.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
DIGEST_BYTES = 32
MIN_LENGTH = 12


@dataclass(frozen=True, kw_only=True)
class PassphraseHash:
    """A stored scrypt hash and the parameters it was made with."""

    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def __repr__(self) -> str:
        """Keep hashes out of logs and tracebacks."""
        return f"PassphraseHash(scrypt n={self.n} r={self.r} p={self.p})"


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=DIGEST_BYTES, n=n, r=r, p=p).derive(passphrase.encode())


def hash_passphrase(passphrase: str, *, n: int = SCRYPT_N) -> PassphraseHash:
    """Return a fresh salted scrypt hash of ``passphrase``.

    Raises:
        ValueError: the passphrase is shorter than ``MIN_LENGTH`` characters.
    """
    if len(passphrase) < MIN_LENGTH:
        msg = f"the admin passphrase must have at least {MIN_LENGTH} characters"
        raise ValueError(msg)
    salt = os.urandom(SALT_BYTES)
    return PassphraseHash(
        n=n, r=SCRYPT_R, p=SCRYPT_P, salt=salt, digest=_derive(passphrase, salt, n, SCRYPT_R, SCRYPT_P)
    )


def verify_passphrase(passphrase: str, stored: PassphraseHash) -> bool:
    """Return whether ``passphrase`` matches ``stored`` (constant-time comparison)."""
    candidate = _derive(passphrase, stored.salt, stored.n, stored.r, stored.p)
    return hmac.compare_digest(candidate, stored.digest)
