"""`tradeledger keys ...`: add, list, rotate and remove encrypted API keys (SPEC C12).

The key file is ``--keys PATH`` (default ``$TRADELEDGER_KEYS``, else ``~/.tradeledger/keys.enc``);
the passphrase comes from ``$TRADELEDGER_KEYS_PASSPHRASE``, else a hidden prompt on a terminal,
else the first line of stdin. Errors are one line on stderr: exit 2 for bad input (a wrong
passphrase, a truncated file, an unknown exchange or permission), exit 4 for a safety refusal
(a key that can withdraw, a key file others can read).

``--exchange llm`` stores an LLM agent's API key (``--param key_label=LABEL``): the key alone,
no ``--api-secret`` and no ``--permissions`` (it is stored as read: it never trades).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from ledger.adapters.keystore import (
    LLM,
    PASSPHRASE_ENV,
    KeyRefusedError,
    KeyStore,
    StoredKey,
    check_credentials,
    check_exchange,
    check_label,
    key_file_path,
    parse_permissions,
)
from ledger.domain.errors import BadInputError

EXIT_BAD_INPUT = 2
EXIT_REFUSED = 4

keys_app = typer.Typer(
    no_args_is_help=True,
    help="Encrypted exchange and LLM API keys (AES-GCM, scrypt passphrase); withdraw permission refused.",
)

KeysOption = Annotated[
    Path | None,
    typer.Option("--keys", help="key file [default: $TRADELEDGER_KEYS or ~/.tradeledger/keys.enc]"),
]
LabelOption = Annotated[str, typer.Option("--label", help="the key's unique name, e.g. binance-main")]
ApiKeyOption = Annotated[str, typer.Option("--api-key", help="the exchange's (or LLM server's) API key")]
ApiSecretOption = Annotated[
    str | None,
    typer.Option(
        "--api-secret", help="the exchange's API secret; prompted (hidden) when left out; none for llm keys"
    ),
]


def _fail(message: str, code: int) -> NoReturn:
    # One unwrapped line on stderr, as the rest of the CLI prints its errors.
    sys.stderr.write(" ".join(message.split()) + "\n")
    sys.stderr.flush()
    raise typer.Exit(code)


@contextmanager
def _errors_to_exit_codes() -> Iterator[None]:
    try:
        yield
    except KeyRefusedError as e:
        _fail(str(e), EXIT_REFUSED)
    except BadInputError as e:
        _fail(str(e), EXIT_BAD_INPUT)


def _passphrase(path: Path, *, new: bool) -> str:
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env is not None:
        return from_env
    if sys.stdin.isatty():
        what = "new passphrase" if new else "passphrase"
        answer: str = typer.prompt(f"{what} for {path}", hide_input=True, confirmation_prompt=new, err=True)
        return answer
    # No terminal: a script may pipe the passphrase in as one line.
    line = sys.stdin.readline()
    if not line:
        _fail(f"no passphrase for {path}: set ${PASSPHRASE_ENV} or run in a terminal", EXIT_BAD_INPUT)
    return line.rstrip("\r\n")


def _secret(api_secret: str | None) -> str:
    if api_secret is not None:
        return api_secret
    if not sys.stdin.isatty():
        _fail("--api-secret is missing; pass it, or run in a terminal to type it hidden", EXIT_BAD_INPUT)
    answer: str = typer.prompt("API secret", hide_input=True, err=True)
    return answer


def _summary(stored: StoredKey) -> str:
    return f"{stored.label} ({stored.exchange}, {','.join(stored.permissions)}, key {stored.key_id})"


@keys_app.command("add")
def add_command(
    exchange: Annotated[
        str, typer.Option("--exchange", help="a ccxt exchange id, e.g. binance; llm for an LLM agent's key")
    ],
    label: LabelOption,
    api_key: ApiKeyOption,
    api_secret: ApiSecretOption = None,
    permissions: Annotated[
        str, typer.Option("--permissions", help="read, trade or read,trade; withdraw is refused")
    ] = "read",
    keys: KeysOption = None,
) -> None:
    """Add an exchange or LLM API key under a new label (creates the key file, mode 0600)."""
    path = key_file_path(keys)
    with _errors_to_exit_codes():
        # Refuse bad input before asking for any secret or passphrase.
        allowed = parse_permissions(permissions)
        check_label(label)
        exchange = check_exchange(exchange)
        store = KeyStore(path)
        # An llm key has no secret to ask for (nor to accept).
        secret = (api_secret or "") if exchange == LLM else _secret(api_secret)
        check_credentials(exchange, api_key, secret, allowed)
        stored = store.add(
            _passphrase(path, new=not store.exists()),
            exchange=exchange,
            label=label,
            api_key=api_key,
            api_secret=secret,
            permissions=permissions,
        )
    typer.echo(f"added {_summary(stored)} to {path}")


@keys_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON list on stdout")] = False,
    keys: KeysOption = None,
) -> None:
    """List the keys: label, exchange, permissions, times, backups and a masked key id."""
    path = key_file_path(keys)
    with _errors_to_exit_codes():
        store = KeyStore(path)
        loaded = store.load(_passphrase(path, new=False)) if store.exists() else {}
    if as_json:
        typer.echo(json.dumps([_row(stored) for stored in loaded.values()]))
        return
    if not loaded:
        typer.echo(f"no keys in {path}")
        return
    table = Table("label", "exchange", "permissions", "key id", "created", "rotated", "backups")
    for stored in loaded.values():
        table.add_row(
            stored.label,
            stored.exchange,
            ",".join(stored.permissions),
            stored.key_id,
            stored.created_at.isoformat(timespec="seconds"),
            "-" if stored.rotated_at is None else stored.rotated_at.isoformat(timespec="seconds"),
            str(len(stored.previous)),
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _row(stored: StoredKey) -> dict[str, object]:
    # The masked id only: neither the full API key nor the secret ever reaches the output.
    return {
        "label": stored.label,
        "exchange": stored.exchange,
        "permissions": list(stored.permissions),
        "key_id": stored.key_id,
        "created_at": stored.created_at.isoformat(),
        "rotated_at": None if stored.rotated_at is None else stored.rotated_at.isoformat(),
        "backups": len(stored.previous),
    }


@keys_app.command("rotate")
def rotate_command(
    label: LabelOption,
    api_key: ApiKeyOption,
    api_secret: ApiSecretOption = None,
    permissions: Annotated[
        str | None,
        typer.Option("--permissions", help="the new key's permissions [default: the old key's]"),
    ] = None,
    keys: KeysOption = None,
) -> None:
    """Replace a label's key; the old one stays in the file as an encrypted backup."""
    path = key_file_path(keys)
    with _errors_to_exit_codes():
        if permissions is not None:
            parse_permissions(permissions)  # refused before asking for any secret
        store = KeyStore(path)
        passphrase = _passphrase(path, new=False)
        # Only an exchange key has a secret to ask for: an llm key has none, and an unknown
        # label is refused by rotate below.
        current = store.load(passphrase).get(label)
        asks = current is not None and current.exchange != LLM
        secret = _secret(api_secret) if asks else (api_secret or "")
        stored = store.rotate(
            passphrase,
            label=label,
            api_key=api_key,
            api_secret=secret,
            permissions=permissions,
        )
    typer.echo(f"rotated {_summary(stored)} in {path}; {len(stored.previous)} backup(s) kept")


@keys_app.command("remove")
def remove_command(label: LabelOption, keys: KeysOption = None) -> None:
    """Remove a label's key and its backups from the key file."""
    path = key_file_path(keys)
    with _errors_to_exit_codes():
        removed = KeyStore(path).remove(_passphrase(path, new=False), label)
    typer.echo(f"removed {_summary(removed)} from {path}")
