"""The ledger-wide kill switch and the admin passphrase (C10), as the CLI and sessions use them.

Both live in the control stream, so every process on the ledger sees the same state: an
engagement by `tradeledger kill` from one shell is what a running session, a later session and
a backtest all read. Release needs the admin passphrase, checked against its scrypt hash (only
the hash is recorded); a wrong one changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.adapters.clock import SystemClock
from ledger.adapters.passphrase import PassphraseHash, hash_passphrase, verify_passphrase
from ledger.adapters.store import LedgerStore
from ledger.domain.errors import BadInputError, TradingHaltedError
from ledger.domain.events import AdminPassphraseSet, KillSwitchEngaged, KillSwitchReleased, LedgerEvent
from ledger.domain.identifiers import CONTROL_RUN_ID, run_stream_id
from ledger.domain.trading_session import KillSwitchState, kill_switch_state


class PassphraseRefusedError(TradingHaltedError):
    """The admin passphrase is missing or wrong (a refusal for safety: exit 4)."""


@dataclass(frozen=True, kw_only=True)
class ControlState:
    """The control stream's kill switch and admin passphrase."""

    kill_switch: KillSwitchState
    passphrase: PassphraseHash | None
    version: int


def control_state(store: LedgerStore) -> ControlState:
    """Return the kill switch and the admin passphrase hash as the control stream holds them."""
    events = store.read_stream(run_stream_id(CONTROL_RUN_ID))
    passphrase = None
    for event in events:
        if isinstance(event, AdminPassphraseSet):
            passphrase = PassphraseHash(
                n=event.n,
                r=event.r,
                p=event.p,
                salt=bytes.fromhex(event.salt),
                digest=bytes.fromhex(event.digest),
            )
    return ControlState(
        kill_switch=kill_switch_state(events),
        passphrase=passphrase,
        version=events[-1].originator_version if events else 0,
    )


def _append(store: LedgerStore, make: type, **fields: object) -> LedgerEvent:
    version = control_state(store).version + 1
    event: LedgerEvent = make(
        originator_id=run_stream_id(CONTROL_RUN_ID),
        originator_version=version,
        occurred_at=SystemClock().now(),
        run_id=CONTROL_RUN_ID,
        **fields,
    )
    store.append([event])
    return event


def set_passphrase(store: LedgerStore, new: str, *, current: str | None) -> None:
    """Record the scrypt hash of a new admin passphrase (the current one is needed to change it).

    Raises:
        BadInputError: the new passphrase is too short.
        PassphraseRefusedError: a passphrase is set and ``current`` does not match it.
    """
    stored = control_state(store).passphrase
    if stored is not None and (current is None or not verify_passphrase(current, stored)):
        msg = "the admin passphrase is already set; give the current one to change it (wrong or missing)"
        raise PassphraseRefusedError(msg)
    try:
        made = hash_passphrase(new)
    except ValueError as e:
        msg = f"passphrase: {e}"
        raise BadInputError(msg) from e
    _append(
        store,
        AdminPassphraseSet,
        kdf="scrypt",
        n=made.n,
        r=made.r,
        p=made.p,
        salt=made.salt.hex(),
        digest=made.digest.hex(),
    )


def engage(store: LedgerStore, *, reason: str, actor: str, liquidate: bool) -> KillSwitchState:
    """Engage the kill switch (again, if it is: a later reason or liquidation is recorded too)."""
    _append(store, KillSwitchEngaged, reason=reason, actor=actor, liquidate=liquidate)
    return control_state(store).kill_switch


def release(store: LedgerStore, *, passphrase: str, reason: str, actor: str) -> KillSwitchState:
    """Release the kill switch after checking the admin passphrase.

    Raises:
        PassphraseRefusedError: no passphrase is set, or this one is wrong; nothing is written.
        BadInputError: the kill switch is not engaged.
    """
    state = control_state(store)
    if state.passphrase is None:
        msg = "no admin passphrase is set; set one with `tradeledger admin set-passphrase` first"
        raise PassphraseRefusedError(msg)
    if not verify_passphrase(passphrase, state.passphrase):
        msg = "wrong admin passphrase: the kill switch stays engaged"
        raise PassphraseRefusedError(msg)
    if not state.kill_switch.engaged:
        msg = "the kill switch is not engaged; nothing to release"
        raise BadInputError(msg)
    _append(store, KillSwitchReleased, reason=reason, actor=actor)
    return control_state(store).kill_switch
