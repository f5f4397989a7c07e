"""The payload cipher: key checks, sealing, tamper detection and the ledger's recorded cipher."""

from __future__ import annotations

import base64

import pytest
from eventsourcing.cryptography import AESCipher
from eventsourcing.utils import Environment

from ledger.adapters.store.cipher import (
    ALGORITHM,
    CIPHER_KEY_ENV,
    PLAINTEXT,
    CipherKeyError,
    PayloadCipher,
    SealedRowError,
    check_record,
    new_cipher_key,
)
from ledger.domain.errors import BadInputError, ChainBrokenError

NONCE_AND_TAG = 12 + 16  # eventsourcing's AESCipher layout: nonce || tag || ciphertext
ENVELOPE = b'{"r":"00","n":1,"p":"00","h":"00","v":1,"e":{"instrument":"BTC/USDT","client_order_id":"tl-x"}}'


def test_a_new_key_is_base64_of_32_random_bytes() -> None:
    first, second = new_cipher_key(), new_cipher_key()

    assert len(base64.b64decode(first, validate=True)) == 32
    assert first != second


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "decodes to 0 bytes"),
        ("not base64!", "is not base64"),
        (base64.b64encode(b"k" * 16).decode(), "decodes to 16 bytes, not the 32"),
        (base64.b64encode(b"k" * 33).decode(), "decodes to 33 bytes"),
    ],
)
def test_a_malformed_key_is_bad_input_naming_the_variable_and_the_fix(text: str, says: str) -> None:
    with pytest.raises(CipherKeyError, match=says) as caught:
        PayloadCipher(text)

    assert isinstance(caught.value, BadInputError)
    assert f"${CIPHER_KEY_ENV}" in str(caught.value)
    assert "tradeledger admin new-cipher-key" in str(caught.value)
    assert text not in str(caught.value) or text == ""


def test_surrounding_whitespace_of_a_pasted_key_is_ignored() -> None:
    key = new_cipher_key()

    assert PayloadCipher(f"  {key}\n").key_id == PayloadCipher(key).key_id


def test_sealing_round_trips_and_hides_the_plaintext() -> None:
    cipher = PayloadCipher(new_cipher_key())

    sealed = cipher.encrypt(ENVELOPE)

    assert cipher.decrypt(sealed, "event seq 1") == ENVELOPE
    assert len(sealed) == len(ENVELOPE) + NONCE_AND_TAG
    assert b"BTC" not in sealed
    assert b"tl-x" not in sealed
    assert cipher.encrypt(ENVELOPE) != sealed  # a fresh nonce per row


@pytest.mark.parametrize("position", [0, 12, 30, -1])
def test_one_flipped_byte_anywhere_fails_authentication_naming_the_row(position: int) -> None:
    cipher = PayloadCipher(new_cipher_key())
    sealed = bytearray(cipher.encrypt(ENVELOPE))
    sealed[position] ^= 0x01

    with pytest.raises(SealedRowError, match="event seq 7 does not decrypt with the ledger's key") as caught:
        cipher.decrypt(bytes(sealed), "event seq 7")

    assert isinstance(caught.value, ChainBrokenError)  # corrupt history: exit 3


def test_a_truncated_row_fails_authentication() -> None:
    cipher = PayloadCipher(new_cipher_key())

    with pytest.raises(SealedRowError, match="event seq 2"):
        cipher.decrypt(cipher.encrypt(ENVELOPE)[:20], "event seq 2")


def test_another_key_cannot_open_a_sealed_row() -> None:
    sealed = PayloadCipher(new_cipher_key()).encrypt(ENVELOPE)

    with pytest.raises(SealedRowError):
        PayloadCipher(new_cipher_key()).decrypt(sealed, "event seq 1")


def test_the_key_id_is_stable_per_key_and_never_shows_the_key() -> None:
    key = new_cipher_key()
    cipher = PayloadCipher(key)

    assert cipher.key_id == PayloadCipher(key).key_id
    assert cipher.key_id != PayloadCipher(new_cipher_key()).key_id
    assert len(cipher.key_id) == 64
    assert cipher.record == f"{ALGORITHM}:{cipher.key_id}"
    raw = base64.b64decode(key)
    for shown in (repr(cipher), str(cipher), cipher.record):
        assert key not in shown
        assert raw.hex() not in shown


def test_a_plaintext_ledger_opens_without_a_key_only() -> None:
    check_record(PLAINTEXT, None, "l.db")

    with pytest.raises(CipherKeyError, match=r"is set but the ledger l.db stores plaintext events; unset"):
        check_record(PLAINTEXT, PayloadCipher(new_cipher_key()), "l.db")


def test_an_encrypted_ledger_opens_with_its_own_key_only() -> None:
    cipher = PayloadCipher(new_cipher_key())
    check_record(cipher.record, cipher, "l.db")

    with pytest.raises(CipherKeyError, match=rf"l.db is encrypted .*key id {cipher.key_id[:16]}.*set \$"):
        check_record(cipher.record, None, "l.db")
    other = PayloadCipher(new_cipher_key())
    with pytest.raises(CipherKeyError, match=rf"key id {other.key_id[:16]}\) is not the key of the ledger"):
        check_record(cipher.record, other, "l.db")


def test_an_unknown_recorded_cipher_asks_for_an_upgrade() -> None:
    with pytest.raises(CipherKeyError, match="unknown payload cipher 'chacha20:ab'; upgrade"):
        check_record("chacha20:ab", PayloadCipher(new_cipher_key()), "l.db")


def test_rows_are_eventsourcings_aes_cipher_format_both_ways() -> None:
    key = new_cipher_key()
    ours, library = PayloadCipher(key), AESCipher(Environment(env={AESCipher.CIPHER_KEY: key}))

    assert library.decrypt(ours.encrypt(ENVELOPE)) == ENVELOPE
    assert ours.decrypt(library.encrypt(ENVELOPE), "event seq 1") == ENVELOPE
