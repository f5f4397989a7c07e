"""Exchange and LLM API keys, encrypted at rest in one file (SPEC C12).

The whole key set is one JSON document, encrypted with AES-256-GCM under a key that scrypt
derives from a passphrase; ``keystore_format`` owns the bytes and the document's records, this
module owns the rules (labels, exchanges, permissions, rotation) and the read-change-write cycle.
Each key has a label (unique), a ccxt exchange id, permissions (a subset of read and trade: a
key that can withdraw is refused) and, after rotations, encrypted backups of its earlier keys.

An LLM agent's API key is stored with the exchange ``llm``: one bearer key and no secret (its
secret is stored empty), permissions ``read`` only (it never trades). ``labeled_key`` is how the
rest of the ledger reads a key: the file from ``$TRADELEDGER_KEYS`` (else
``~/.tradeledger/keys.enc``) and the passphrase from ``$TRADELEDGER_KEYS_PASSPHRASE``.

Secrets are wrapped in ``Secret``, whose ``repr`` and ``str`` are masked; the full API key is
left out of every ``repr``. Nothing here logs, and no message carries key material.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Final

from ledger.adapters.clock import SystemClock
from ledger.adapters.keystore_format import (
    PERMISSIONS,
    SCRYPT_LOG2_N_DEFAULT,
    KdfParams,
    KeyBackup,
    KeyFileTooOpenError,
    KeyRefusedError,
    KeyStoreError,
    Secret,
    StoredKey,
    decode_document,
    encode_document,
    exclusive_lock,
    mask_key,
    parse_header,
    read_private_file,
    seal,
    unseal,
    write_private_file,
)
from ledger.domain.errors import ParameterError
from ledger.ports import Clock

__all__ = [
    "DEFAULT_SCRYPT_N",
    "KEYS_ENV",
    "LLM",
    "PASSPHRASE_ENV",
    "PERMISSIONS",
    "KeyBackup",
    "KeyFileTooOpenError",
    "KeyRefusedError",
    "KeyStore",
    "KeyStoreError",
    "Secret",
    "StoredKey",
    "WithdrawPermissionError",
    "check_credentials",
    "check_exchange",
    "check_label",
    "key_file_path",
    "labeled_key",
    "mask_key",
    "parse_permissions",
]

DEFAULT_SCRYPT_N: Final = 2**SCRYPT_LOG2_N_DEFAULT
WITHDRAW = "withdraw"
# The exchange of an LLM API key (not a ccxt id): a bearer key without a secret that never trades.
LLM: Final = "llm"
KEYS_ENV: Final = "TRADELEDGER_KEYS"
PASSPHRASE_ENV: Final = "TRADELEDGER_KEYS_PASSPHRASE"  # noqa: S105 - the variable name, not a value
# Why a cap: every rotation keeps the replaced key; ten is a long history of revoked keys, and
# the file stays bounded however often a scheduler rotates.
BACKUPS_MAX = 10
# Why this shape: labels are typed on command lines and shown in tables; no spaces or quotes.
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class WithdrawPermissionError(KeyRefusedError):
    """A key with withdrawal permission was offered; the ledger never stores one."""


def parse_permissions(value: str | Iterable[str]) -> tuple[str, ...]:
    """Return permissions in canonical order from ``"read,trade"`` or an iterable of names.

    Raises:
        WithdrawPermissionError: ``withdraw`` is among them (checked before anything else).
        KeyStoreError: a name is not a permission, or there is none.
    """
    names = value.split(",") if isinstance(value, str) else list(value)
    wanted = {name.strip().lower() for name in names if name.strip()}
    if WITHDRAW in wanted:
        msg = "a key that can withdraw is refused: create a key without withdrawal permission"
        raise WithdrawPermissionError(msg)
    unknown = sorted(wanted.difference(PERMISSIONS))
    if unknown:
        msg = f"--permissions: {', '.join(unknown)} is not a permission; use read, trade or read,trade"
        raise KeyStoreError(msg)
    if not wanted:
        msg = "--permissions: give at least one of read, trade (e.g. --permissions read)"
        raise KeyStoreError(msg)
    return tuple(name for name in PERMISSIONS if name in wanted)


def check_exchange(exchange: str) -> str:
    """Return the ccxt id of ``exchange`` (any case) if ccxt knows it, else raise ``KeyStoreError``.

    ``llm`` (any case) is accepted too: the exchange of an LLM agent's API key.
    """
    if exchange.lower() == LLM:
        return LLM
    import ccxt  # noqa: PLC0415 - only adding a key pays for loading ccxt

    known: list[str] = list(ccxt.exchanges)
    if exchange.lower() in known:
        return exchange.lower()
    close = difflib.get_close_matches(exchange.lower(), known, n=3)
    hint = (
        f"did you mean {', '.join(close)}?"
        if close
        else "e.g. binance, upbit (see ccxt.exchanges), or llm for an LLM agent's API key"
    )
    msg = f"--exchange: {exchange!r} is not an exchange ccxt knows; {hint}"
    raise KeyStoreError(msg)


def check_label(label: str) -> str:
    """Return ``label`` if it is 1-64 letters, digits, dots, dashes or underscores."""
    if _LABEL.fullmatch(label) is None:
        msg = f"--label: {label!r} is not a label; use 1-64 letters, digits, '.', '-' or '_'"
        raise KeyStoreError(msg)
    return label


def check_credentials(exchange: str, api_key: str, api_secret: str, permissions: tuple[str, ...]) -> None:
    """Raise ``KeyStoreError`` unless the key fits ``exchange``: an llm key has no secret and only reads."""
    # The values are never quoted: they are the material this module keeps out of messages.
    if not api_key.strip():
        whose = "the LLM server's" if exchange == LLM else "the exchange's"
        msg = f"--api-key is empty; paste {whose} API key"
        raise KeyStoreError(msg)
    if exchange == LLM:
        if api_secret:
            msg = "--api-secret: an llm key is one API key without a secret; leave --api-secret out"
            raise KeyStoreError(msg)
        if permissions != ("read",):
            msg = "--permissions: an llm key never trades; leave --permissions out (it is stored as read)"
            raise KeyStoreError(msg)
        return
    if not api_secret.strip():
        msg = "--api-secret is empty; paste the exchange's API secret"
        raise KeyStoreError(msg)


class KeyStore:
    """The encrypted key file at ``path``.

    Args:
        path: the key file; its folder is created (0700) on the first write.
        scrypt_n: the scrypt cost for a new file (a power of two, at least 2**14); an existing
            file is always read and rewritten with the parameters its header records.
        clock: where creation and rotation times come from; the wall clock by default.
    """

    def __init__(
        self, path: Path | str, *, scrypt_n: int = DEFAULT_SCRYPT_N, clock: Clock | None = None
    ) -> None:
        if scrypt_n <= 1 or scrypt_n & (scrypt_n - 1):
            msg = f"scrypt_n must be a power of two, was {scrypt_n}"
            raise ValueError(msg)
        self.path = Path(path)
        self._log2_n = scrypt_n.bit_length() - 1
        KdfParams.fresh(self._log2_n)  # fail now, not on the first write, if out of bounds
        self._clock: Clock = SystemClock() if clock is None else clock

    def exists(self) -> bool:
        """Return whether the key file exists."""
        return self.path.exists()

    def load(self, passphrase: str) -> dict[str, StoredKey]:
        """Return every key of the file by label; the file is not changed.

        Raises:
            KeyFileTooOpenError: the file's mode is wider than 0600 (exit 4).
            KeyStoreError: no file, a wrong passphrase, or a truncated or altered file (exit 2).
        """
        _, _, keys = self._open(passphrase)
        return keys

    def add(
        self,
        passphrase: str,
        *,
        exchange: str,
        label: str,
        api_key: str,
        api_secret: str,
        permissions: str | Iterable[str],
    ) -> StoredKey:
        """Add a key under a new label, creating the file if needed; return it.

        Raises:
            WithdrawPermissionError: the permissions include withdraw (exit 4).
            KeyStoreError: a bad exchange, label, permission or credential, a label already in
                use, or any ``load`` error (exit 2).
        """
        allowed = parse_permissions(permissions)
        check_label(label)
        exchange = check_exchange(exchange)
        check_credentials(exchange, api_key, api_secret, allowed)
        stored = StoredKey(
            label=label,
            exchange=exchange,
            api_key=api_key,
            api_secret=Secret(api_secret),
            permissions=allowed,
            created_at=self._clock.now(),
        )

        def change(keys: dict[str, StoredKey]) -> StoredKey:
            if label in keys:
                msg = (
                    f"--label: {label!r} is already in {self.path}; "
                    f"replace its key with `tradeledger keys rotate --label {label}`"
                )
                raise KeyStoreError(msg)
            keys[label] = stored
            return stored

        return self._update(passphrase, change, create=True)

    def rotate(
        self,
        passphrase: str,
        *,
        label: str,
        api_key: str,
        api_secret: str,
        permissions: str | Iterable[str] | None = None,
    ) -> StoredKey:
        """Replace a label's key, keeping the replaced one as an encrypted backup; return it.

        Args:
            passphrase: the key file's passphrase.
            label: the label to rotate.
            api_key: the new API key.
            api_secret: the new API secret (empty for an ``llm`` key).
            permissions: the new key's permissions; by default those of the replaced key.

        Raises:
            WithdrawPermissionError: the permissions include withdraw (exit 4).
            KeyStoreError: no such label, the same key again, a bad credential for the label's
                exchange, or any ``load`` error (exit 2).
        """
        allowed = None if permissions is None else parse_permissions(permissions)
        now = self._clock.now()

        def change(keys: dict[str, StoredKey]) -> StoredKey:
            current = self._existing(keys, label)
            check_credentials(current.exchange, api_key, api_secret, allowed or current.permissions)
            if current.api_key == api_key and current.api_secret.reveal() == api_secret:
                msg = f"--api-key: label {label!r} already has this key and secret; give the new ones"
                raise KeyStoreError(msg)
            backup = KeyBackup(
                api_key=current.api_key,
                api_secret=current.api_secret,
                permissions=current.permissions,
                created_at=current.created_at,
                rotated_at=now,
            )
            keys[label] = replace(
                current,
                api_key=api_key,
                api_secret=Secret(api_secret),
                permissions=current.permissions if allowed is None else allowed,
                created_at=now,
                rotated_at=now,
                previous=(*current.previous, backup)[-BACKUPS_MAX:],
            )
            return keys[label]

        return self._update(passphrase, change, create=False)

    def remove(self, passphrase: str, label: str) -> StoredKey:
        """Remove a label with its backups and return what was removed.

        Raises:
            KeyStoreError: no such label, or any ``load`` error (exit 2).
        """
        return self._update(
            passphrase, lambda keys: keys.pop(self._existing(keys, label).label), create=False
        )

    def _existing(self, keys: dict[str, StoredKey], label: str) -> StoredKey:
        if label not in keys:
            msg = f"--label: no key labeled {label!r} in {self.path}; see `tradeledger keys list`"
            raise KeyStoreError(msg)
        return keys[label]

    def _open(self, passphrase: str) -> tuple[KdfParams, bytes, dict[str, StoredKey]]:
        _check_passphrase(passphrase)
        if not self.path.exists():
            msg = f"no key file at {self.path}; add a key first with `tradeledger keys add`"
            raise KeyStoreError(msg)
        data = read_private_file(self.path)
        kdf = parse_header(data, self.path)
        key = kdf.derive(passphrase)
        document = unseal(data, key, self.path)
        return kdf, key, decode_document(document, self.path)

    def _update(
        self, passphrase: str, change: Callable[[dict[str, StoredKey]], StoredKey], *, create: bool
    ) -> StoredKey:
        # Read, change and write under one lock; any error before the write leaves the file as
        # it was, and the write itself is atomic.
        _check_passphrase(passphrase)
        keys: dict[str, StoredKey]
        with exclusive_lock(self.path):
            if create and not self.path.exists():
                kdf = KdfParams.fresh(self._log2_n)
                key, keys = kdf.derive(passphrase), {}  # a new file: its salt is made here
            else:
                kdf, key, keys = self._open(passphrase)
            result = change(keys)
            write_private_file(self.path, seal(encode_document(keys), kdf, key))
        return result


def key_file_path(keys: Path | str | None = None) -> Path:
    """Return the key file: ``keys`` if given, else ``$TRADELEDGER_KEYS``, else ~/.tradeledger/keys.enc."""
    if keys:
        return Path(keys).expanduser()
    from_env = os.environ.get(KEYS_ENV)
    if from_env:
        return Path(from_env).expanduser()
    return Path.home() / ".tradeledger" / "keys.enc"


def labeled_key(label: str, *, field: str, keys: Path | str | None = None) -> StoredKey:
    """Return the key stored under ``label``, opening the file with ``$TRADELEDGER_KEYS_PASSPHRASE``.

    Args:
        label: the key's label.
        field: the setting that named the label (``venue.key_label``, ``--param key_label``);
            every message starts with it.
        keys: the key file; by default as ``key_file_path`` says.

    Raises:
        ParameterError: the passphrase is not set, or no key has that label (exit 2).
        KeyStoreError: no key file, a wrong passphrase, a damaged file (exit 2).
        KeyFileTooOpenError: the file's mode is wider than 0600 (exit 4).
    """
    path = key_file_path(keys)
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if not passphrase:
        msg = f"{field}: set ${PASSPHRASE_ENV} to open the key store {path}"
        raise ParameterError(msg)
    try:
        stored = KeyStore(path).load(passphrase).get(label)
    except KeyStoreError as e:
        # The store's messages carry paths and format fields, never key material.
        msg = f"{field}: {e}"
        raise KeyStoreError(msg) from e
    if stored is None:
        msg = f"{field}: no key {label!r} in {path}; add it with `tradeledger keys add --label {label} ...`"
        raise ParameterError(msg)
    return stored


def _check_passphrase(passphrase: str) -> None:
    if not passphrase:
        msg = "the key file passphrase is empty; set $TRADELEDGER_KEYS_PASSPHRASE or type it at the prompt"
        raise KeyStoreError(msg)
