"""The encrypted key file: its byte layout, the passphrase KDF and the safe file operations.

Layout (all integers big-endian)::

    header   magic b"TLKEYS" | format version u16 | kdf id u8 | log2(n) u8 | r u32 | p u32
             | ciphertext length u32 | salt (16 bytes)
    nonce    12 random bytes, fresh on every write
    body     AES-256-GCM ciphertext of one JSON document, with its 16-byte tag

The document is ``{"version": 1, "keys": [{label, exchange, api_key, api_secret, permissions,
created_at, rotated_at, previous: [{api_key, api_secret, permissions, created_at, rotated_at}]}]}``
with ISO-8601 times; ``StoredKey`` and ``KeyBackup`` are its records in memory.

The whole header is authenticated as AES-GCM associated data, so a changed KDF parameter, salt
or length fails the tag check like a changed ciphertext byte. The ciphertext length in the header
tells a truncated file from a wrong passphrase before any key is derived.

Errors never carry key material: only paths, sizes and format fields appear in messages.
"""

from __future__ import annotations

import fcntl
import hmac
import json
import os
import secrets
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ledger.domain.errors import BadInputError, LedgerError

MAGIC = b"TLKEYS"
FORMAT_VERSION = 1
KDF_SCRYPT = 1
SALT_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32  # AES-256
# Why 2**15 by default: the floor OWASP gives for scrypt with r=8, p=1 (about 0.1 s here).
SCRYPT_LOG2_N_DEFAULT = 15
SCRYPT_R = 8
SCRYPT_P = 1
# Why bounds on what a file may ask for: the parameters come from the file, and n=2**30 would
# make opening it allocate 128 GiB. 2**14 is the floor tests use to stay fast; 2**20 is 1 GiB.
SCRYPT_LOG2_N_MIN = 14
SCRYPT_LOG2_N_MAX = 20
SCRYPT_R_MAX = 16
SCRYPT_P_MAX = 4
# Why a size cap: a key set is a few kilobytes; a bigger file is not one of ours.
BODY_BYTES_MAX = 4 * 1024 * 1024
FILE_MODE = 0o600
FOLDER_MODE = 0o700

PERMISSIONS: Final = ("read", "trade")
DOCUMENT_VERSION = 1
# Why 12: showing four characters of a shorter key would give away a third of it or more.
_KEY_ID_MIN_LENGTH = 12
_KEY_ID_SHOWN = 4

_HEADER = struct.Struct(f">{len(MAGIC)}sHBBIII{SALT_BYTES}s")
HEADER_BYTES = _HEADER.size


class KeyStoreError(BadInputError):
    """The key file or a key command's input is wrong; nothing was changed (exit 2)."""


class KeyRefusedError(LedgerError):
    """A key operation was refused for safety; nothing was read or changed (exit 4)."""


class KeyFileTooOpenError(KeyRefusedError):
    """The key file can be read or written by others than its owner."""


@dataclass(frozen=True, kw_only=True)
class KdfParams:
    """The scrypt parameters and salt of one key file, as its header records them."""

    log2_n: int
    r: int
    p: int
    salt: bytes

    @classmethod
    def fresh(cls, log2_n: int = SCRYPT_LOG2_N_DEFAULT) -> KdfParams:
        """Return parameters for a new file: a random salt and ``n = 2**log2_n``."""
        _check_kdf(log2_n, SCRYPT_R, SCRYPT_P, where="the requested scrypt parameters")
        return cls(log2_n=log2_n, r=SCRYPT_R, p=SCRYPT_P, salt=secrets.token_bytes(SALT_BYTES))

    def derive(self, passphrase: str) -> bytes:
        """Return the 256-bit AES key scrypt derives from ``passphrase`` with these parameters."""
        kdf = Scrypt(salt=self.salt, length=KEY_BYTES, n=2**self.log2_n, r=self.r, p=self.p)
        return kdf.derive(passphrase.encode("utf-8"))


def _check_kdf(log2_n: int, r: int, p: int, *, where: str) -> None:
    if not SCRYPT_LOG2_N_MIN <= log2_n <= SCRYPT_LOG2_N_MAX:
        msg = f"{where}: scrypt n=2**{log2_n} is outside 2**{SCRYPT_LOG2_N_MIN}..2**{SCRYPT_LOG2_N_MAX}"
        raise KeyStoreError(msg)
    if not (1 <= r <= SCRYPT_R_MAX and 1 <= p <= SCRYPT_P_MAX):
        msg = f"{where}: scrypt r={r}, p={p} is outside r=1..{SCRYPT_R_MAX}, p=1..{SCRYPT_P_MAX}"
        raise KeyStoreError(msg)


def seal(plaintext: bytes, kdf: KdfParams, key: bytes) -> bytes:
    """Return the whole file: header, a fresh nonce and the AES-GCM ciphertext of ``plaintext``."""
    body_length = len(plaintext) + TAG_BYTES
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, KDF_SCRYPT, kdf.log2_n, kdf.r, kdf.p, body_length, kdf.salt)
    nonce = secrets.token_bytes(NONCE_BYTES)
    return header + nonce + AESGCM(key).encrypt(nonce, plaintext, header)


def parse_header(data: bytes, path: Path) -> KdfParams:
    """Return the KDF parameters of a key file's bytes after checking its layout and length.

    Raises:
        KeyStoreError: the file is shorter than a header, is not a key file, has a format
            version or KDF this code does not read, or is truncated or extended.
    """
    if len(data) < HEADER_BYTES:
        msg = (
            f"key file {path} is truncated ({len(data)} bytes, shorter than its header); "
            "restore it from a backup"
        )
        raise KeyStoreError(msg)
    magic, version, kdf_id, log2_n, r, p, body_length, salt = _HEADER.unpack_from(data)
    if magic != MAGIC:
        msg = f"{path} is not a tradeledger key file (bad magic); check the --keys path"
        raise KeyStoreError(msg)
    if version != FORMAT_VERSION or kdf_id != KDF_SCRYPT:
        msg = (
            f"key file {path} has format {version}, kdf {kdf_id}; "
            f"this version reads format {FORMAT_VERSION}, kdf {KDF_SCRYPT} (scrypt)"
        )
        raise KeyStoreError(msg)
    _check_kdf(log2_n, r, p, where=f"key file {path}")
    expected = HEADER_BYTES + NONCE_BYTES + body_length
    if body_length < TAG_BYTES or body_length > BODY_BYTES_MAX or len(data) != expected:
        state = "truncated" if len(data) < expected else "damaged"
        msg = (
            f"key file {path} is {state} ({len(data)} bytes, its header says {expected}); "
            "restore it from a backup"
        )
        raise KeyStoreError(msg)
    return KdfParams(log2_n=log2_n, r=r, p=p, salt=salt)


def unseal(data: bytes, key: bytes, path: Path) -> bytes:
    """Return the plaintext of a key file whose header ``parse_header`` accepted.

    Raises:
        KeyStoreError: the tag does not verify: a wrong passphrase or an altered file.
    """
    header = data[:HEADER_BYTES]
    nonce = data[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, data[HEADER_BYTES + NONCE_BYTES :], header)
    except InvalidTag:
        # `from None`: InvalidTag says nothing useful, and the chain must not carry key material.
        msg = f"wrong passphrase for {path} (or the file was altered)"
        raise KeyStoreError(msg) from None


def read_private_file(path: Path) -> bytes:
    """Return the bytes of ``path`` after checking that only its owner can read or write it.

    The mode is checked on the open descriptor, so the file checked is the file read.

    Raises:
        KeyFileTooOpenError: the mode grants anything beyond 0600 (nothing is read).
        KeyStoreError: the path is not a regular file or cannot be read.
    """
    try:
        # O_NONBLOCK: a FIFO at the path must not hang the command; regular files ignore it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        msg = f"cannot open key file {path}: {e.strerror}"
        raise KeyStoreError(msg) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            msg = f"key file {path} is not a regular file; check the --keys path"
            raise KeyStoreError(msg)
        mode = stat.S_IMODE(info.st_mode)
        if mode & ~FILE_MODE:
            # Exit 4, not 2: the input is not malformed; a key file others can read may already
            # have leaked, and the command refuses to use it until its owner narrows the mode.
            msg = (
                f"key file {path} has mode {mode:04o}, which lets others read or change it; "
                f"run `chmod 600 {path}`"
            )
            raise KeyFileTooOpenError(msg)
        return handle.read(BODY_BYTES_MAX + HEADER_BYTES + NONCE_BYTES + 1)


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, with mode 0600, creating its folder 0700.

    The bytes go to a temporary file in the same folder, are fsynced, and then
    ``os.replace`` swaps it in, so a crash leaves the old file or the new one, never half.
    """
    make_private_folders(path.parent)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temporary, flags, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)  # the umask may have narrowed or widened intent
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)  # atomic on POSIX: os.replace
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Create the folder of ``path`` (0700) if needed and hold an exclusive lock on it.

    Two ``keys add`` at once would otherwise each read the old set, and the second write would
    drop the first one's key. The lock is on the folder, so no lock file is left behind.
    """
    make_private_folders(path.parent)
    fd = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def make_private_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents with mode 0700; leave existing ones alone."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for created in reversed(missing):
        created.mkdir(mode=FOLDER_MODE, exist_ok=True)
        created.chmod(FOLDER_MODE)


def _fsync_folder(folder: Path) -> None:
    # The rename is durable only once the folder entry is on disk.
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Secret:
    """A secret string whose ``repr`` and ``str`` never show it; ``reveal()`` returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself; call it only where the secret is sent or stored."""
        return self._value

    def __repr__(self) -> str:
        return "Secret(****)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(Secret)  # equal secrets must hash equal; the value itself is never hashed

    def __reduce__(self) -> tuple[Any, ...]:
        msg = "a Secret is not pickled: it would leave the process in plain text"
        raise TypeError(msg)


def mask_key(api_key: str) -> str:
    """Return the displayable id of an API key: its first four characters and an ellipsis."""
    if len(api_key) < _KEY_ID_MIN_LENGTH:
        return "…"
    return api_key[:_KEY_ID_SHOWN] + "…"


@dataclass(frozen=True, kw_only=True)
class KeyBackup:
    """An earlier key of a label, kept (encrypted) when the label was rotated."""

    api_key: str = field(repr=False)
    api_secret: Secret
    permissions: tuple[str, ...]
    created_at: datetime
    rotated_at: datetime

    @property
    def key_id(self) -> str:
        """Return the masked API key, safe to display."""
        return mask_key(self.api_key)


@dataclass(frozen=True, kw_only=True)
class StoredKey:
    """One exchange API key of the key file, with its earlier keys (newest last)."""

    label: str
    exchange: str
    api_key: str = field(repr=False)
    api_secret: Secret
    permissions: tuple[str, ...]
    created_at: datetime
    rotated_at: datetime | None = None
    previous: tuple[KeyBackup, ...] = ()

    @property
    def key_id(self) -> str:
        """Return the masked API key, safe to display."""
        return mask_key(self.api_key)


def encode_document(keys: dict[str, StoredKey]) -> bytes:
    """Return the plaintext JSON document of a key set (secrets revealed: encrypt it at once)."""
    document = {
        "version": DOCUMENT_VERSION,
        "keys": [
            {
                "label": stored.label,
                "exchange": stored.exchange,
                **_credentials(stored.api_key, stored.api_secret, stored.permissions, stored.created_at),
                "rotated_at": None if stored.rotated_at is None else stored.rotated_at.isoformat(),
                "previous": [
                    {
                        **_credentials(old.api_key, old.api_secret, old.permissions, old.created_at),
                        "rotated_at": old.rotated_at.isoformat(),
                    }
                    for old in stored.previous
                ],
            }
            for stored in keys.values()
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _credentials(
    api_key: str, secret: Secret, permissions: tuple[str, ...], created_at: datetime
) -> dict[str, Any]:
    return {
        "api_key": api_key,
        "api_secret": secret.reveal(),
        "permissions": list(permissions),
        "created_at": created_at.isoformat(),
    }


def decode_document(document: bytes, path: Path) -> dict[str, StoredKey]:
    """Return the key set of a decrypted document.

    Raises:
        KeyStoreError: the document is not a key set of this version; the message names the
            file and never quotes a value. It authenticated, so this means a bug or a foreign
            writer, not an attack.
    """
    try:
        parsed = json.loads(document)
        if parsed["version"] != DOCUMENT_VERSION:
            raise ValueError
        keys: dict[str, StoredKey] = {}
        for item in parsed["keys"]:
            previous = tuple(
                KeyBackup(**_decoded_credentials(old), rotated_at=datetime.fromisoformat(old["rotated_at"]))
                for old in item["previous"]
            )
            rotated_at = None if item["rotated_at"] is None else datetime.fromisoformat(item["rotated_at"])
            keys[item["label"]] = StoredKey(
                label=item["label"],
                exchange=item["exchange"],
                **_decoded_credentials(item),
                rotated_at=rotated_at,
                previous=previous,
            )
    except (ValueError, KeyError, TypeError, AttributeError):
        msg = f"key file {path} decrypted, but its contents are not a key set this version reads"
        raise KeyStoreError(msg) from None
    return keys


def _decoded_credentials(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "api_key": str(item["api_key"]),
        "api_secret": Secret(str(item["api_secret"])),
        "permissions": _decoded_permissions(item["permissions"]),
        "created_at": datetime.fromisoformat(item["created_at"]),
    }


def _decoded_permissions(names: list[str]) -> tuple[str, ...]:
    # A stored key never had anything but read and trade; anything else is a foreign document.
    if not names or not set(names) <= set(PERMISSIONS):
        raise ValueError
    return tuple(name for name in PERMISSIONS if name in names)
