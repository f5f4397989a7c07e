"""The encrypted key file (SPEC C12): format, file modes, refusals, rotation, no leaks."""

from __future__ import annotations

import json
import os
import pickle
import stat
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.adapters.keystore import (
    BACKUPS_MAX,
    DEFAULT_SCRYPT_N,
    LLM,
    KeyFileTooOpenError,
    KeyRefusedError,
    KeyStore,
    KeyStoreError,
    Secret,
    StoredKey,
    WithdrawPermissionError,
    key_file_path,
    labeled_key,
    mask_key,
    parse_permissions,
)
from ledger.adapters.keystore_format import (
    HEADER_BYTES,
    MAGIC,
    NONCE_BYTES,
    TAG_BYTES,
    parse_header,
    unseal,
)
from ledger.domain.errors import BadInputError, ParameterError

# Why 2**14: the lowest cost the format accepts, so every derivation here stays near 0.05 s.
FAST_N = 2**14
PASSPHRASE = "correct horse battery staple"  # noqa: S105 - made-up test values
API_KEY = "AKIAEXAMPLEKEY0123456789abcdef"
API_SECRET = "s3cr3t-EXAMPLE-do-not-leak-9f8e7d6c"  # noqa: S105
NEW_KEY = "NEWKEY9876543210zyxwvutsrqpon"
NEW_SECRET = "n3w-s3cr3t-EXAMPLE-rotated-1a2b3c"  # noqa: S105
LLM_KEY = "sk-llm-EXAMPLE-bearer-5e6f7a8b"


class StepClock:
    """A clock that moves one minute on every read."""

    def __init__(self) -> None:
        self.moment = datetime(2025, 5, 20, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        self.moment += timedelta(minutes=1)
        return self.moment


def a_store(path: Path) -> KeyStore:
    return KeyStore(path, scrypt_n=FAST_N, clock=StepClock())


def a_store_with_one_key(tmp_path: Path) -> KeyStore:
    store = a_store(tmp_path / "keys" / "keys.enc")
    store.add(
        PASSPHRASE,
        exchange="binance",
        label="main",
        api_key=API_KEY,
        api_secret=API_SECRET,
        permissions="read,trade",
    )
    return store


def test_keys_round_trip_through_the_encrypted_file(tmp_path):
    store = a_store_with_one_key(tmp_path)
    store.add(
        PASSPHRASE, exchange="Upbit", label="up", api_key="u" * 20, api_secret="v" * 20, permissions="read"
    )

    keys = KeyStore(store.path).load(PASSPHRASE)

    assert list(keys) == ["main", "up"]
    main = keys["main"]
    assert (main.label, main.exchange, main.permissions) == ("main", "binance", ("read", "trade"))
    assert main.api_key == API_KEY
    assert main.api_secret.reveal() == API_SECRET
    assert main.created_at == datetime(2025, 5, 20, 12, 1, tzinfo=UTC)
    assert main.rotated_at is None
    assert main.previous == ()
    assert keys["up"].exchange == "upbit"
    assert keys["up"].permissions == ("read",)


def test_a_new_file_is_0600_in_a_new_0700_folder_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        store = a_store_with_one_key(tmp_path)
    finally:
        os.umask(previous)

    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["keys.enc"]  # no temp file left


def test_rewrites_keep_mode_0600_and_leave_no_temporary_file(tmp_path):
    store = a_store_with_one_key(tmp_path)
    store.rotate(PASSPHRASE, label="main", api_key=NEW_KEY, api_secret=NEW_SECRET)

    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["keys.enc"]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700])
def test_a_file_wider_than_0600_is_refused_and_left_alone(tmp_path, mode):
    store = a_store_with_one_key(tmp_path)
    store.path.chmod(mode)
    before = store.path.read_bytes()

    with pytest.raises(KeyFileTooOpenError) as refused:
        store.load(PASSPHRASE)
    with pytest.raises(KeyFileTooOpenError):
        store.add(
            PASSPHRASE,
            exchange="binance",
            label="other",
            api_key="k" * 20,
            api_secret="s" * 20,
            permissions="read",
        )

    assert str(store.path) in str(refused.value)
    assert f"chmod 600 {store.path}" in str(refused.value)
    assert not isinstance(refused.value, BadInputError)  # a safety refusal (exit 4), not bad input
    assert store.path.read_bytes() == before
    assert stat.S_IMODE(store.path.stat().st_mode) == mode


@pytest.mark.parametrize(
    "permissions", ["withdraw", "read,withdraw", "read,trade,Withdraw", "withdraw,bogus"]
)
def test_a_key_that_can_withdraw_is_refused(tmp_path, permissions):
    store = a_store_with_one_key(tmp_path)
    before = store.path.read_bytes()

    with pytest.raises(WithdrawPermissionError, match="a key that can withdraw is refused"):
        store.add(
            PASSPHRASE,
            exchange="binance",
            label="w",
            api_key="k" * 20,
            api_secret="s" * 20,
            permissions=permissions,
        )
    with pytest.raises(WithdrawPermissionError):
        store.rotate(
            PASSPHRASE, label="main", api_key=NEW_KEY, api_secret=NEW_SECRET, permissions=permissions
        )

    assert store.path.read_bytes() == before


def test_a_refused_first_key_creates_no_file_or_folder(tmp_path):
    store = a_store(tmp_path / "fresh" / "keys.enc")

    with pytest.raises(WithdrawPermissionError):
        store.add(
            PASSPHRASE,
            exchange="binance",
            label="w",
            api_key="k" * 20,
            api_secret="s" * 20,
            permissions="withdraw",
        )

    assert not (tmp_path / "fresh").exists()


@pytest.mark.parametrize("permissions", ["bogus", "read,admin", "", " , "])
def test_an_unknown_or_missing_permission_is_bad_input(tmp_path, permissions):
    store = a_store_with_one_key(tmp_path)
    before = store.path.read_bytes()

    with pytest.raises(KeyStoreError, match="--permissions"):
        store.add(
            PASSPHRASE,
            exchange="binance",
            label="x",
            api_key="k" * 20,
            api_secret="s" * 20,
            permissions=permissions,
        )

    assert store.path.read_bytes() == before


def test_permissions_come_back_in_canonical_order():
    assert parse_permissions(" Trade , read ") == ("read", "trade")
    assert parse_permissions(["trade"]) == ("trade",)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"exchange": "binanse"}, "--exchange"),
        ({"label": "has space"}, "--label"),
        ({"label": ""}, "--label"),
        ({"label": "main"}, "already"),
        ({"api_key": " "}, "--api-key"),
        ({"api_secret": ""}, "--api-secret"),
    ],
)
def test_bad_key_input_is_refused_and_the_file_is_unchanged(tmp_path, change, fragment):
    store = a_store_with_one_key(tmp_path)
    before = store.path.read_bytes()
    values = {"exchange": "binance", "label": "other", "api_key": "k" * 20, "api_secret": "s" * 20}

    with pytest.raises(KeyStoreError, match=fragment):
        store.add(PASSPHRASE, **{**values, **change}, permissions="read")

    assert store.path.read_bytes() == before


def test_an_unknown_exchange_suggests_close_ccxt_ids(tmp_path):
    with pytest.raises(KeyStoreError, match="binance"):
        a_store(tmp_path / "k.enc").add(
            PASSPHRASE,
            exchange="binanse",
            label="x",
            api_key="k" * 20,
            api_secret="s" * 20,
            permissions="read",
        )


def test_a_wrong_passphrase_is_bad_input_and_changes_nothing(tmp_path):
    store = a_store_with_one_key(tmp_path)
    before = store.path.read_bytes()
    expected = f"wrong passphrase for {store.path} (or the file was altered)"

    with pytest.raises(KeyStoreError) as wrong:
        store.load("not the passphrase")
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        store.add(
            "nope", exchange="binance", label="x", api_key="k" * 20, api_secret="s" * 20, permissions="read"
        )
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        store.rotate("nope", label="main", api_key=NEW_KEY, api_secret=NEW_SECRET)
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        store.remove("nope", "main")

    assert str(wrong.value) == expected
    assert wrong.value.__cause__ is None  # cryptography's InvalidTag is not chained
    assert wrong.value.__suppress_context__
    assert store.path.read_bytes() == before


def test_an_empty_passphrase_is_refused(tmp_path):
    store = a_store_with_one_key(tmp_path)

    with pytest.raises(KeyStoreError, match="passphrase is empty"):
        store.load("")


def _cut_points(size: int) -> list[int]:
    return sorted(
        {
            0,
            1,
            len(MAGIC),
            HEADER_BYTES - 1,
            HEADER_BYTES,
            HEADER_BYTES + NONCE_BYTES,
            size - TAG_BYTES,
            size - 1,
        }
    )


def test_a_truncated_file_is_bad_input_naming_the_file_and_changes_nothing(tmp_path):
    store = a_store_with_one_key(tmp_path)
    whole = store.path.read_bytes()

    for cut in _cut_points(len(whole)):
        store.path.write_bytes(whole[:cut])
        with pytest.raises(KeyStoreError, match="truncated") as truncated:
            store.load(PASSPHRASE)
        with pytest.raises(KeyStoreError, match="truncated"):
            store.add(
                PASSPHRASE,
                exchange="binance",
                label="x",
                api_key="k" * 20,
                api_secret="s" * 20,
                permissions="read",
            )
        assert str(store.path) in str(truncated.value), cut
        assert store.path.read_bytes() == whole[:cut], cut


@pytest.mark.parametrize(
    ("offset", "fragment"),
    [
        (0, "not a tradeledger key file"),  # magic
        (len(MAGIC) + 1, "format"),  # format version
        (HEADER_BYTES - 1, "wrong passphrase"),  # last salt byte: authenticated header
        (HEADER_BYTES, "wrong passphrase"),  # nonce
        (-1, "wrong passphrase"),  # tag
        (-TAG_BYTES - 1, "wrong passphrase"),  # ciphertext
    ],
)
def test_an_altered_byte_is_detected(tmp_path, offset, fragment):
    store = a_store_with_one_key(tmp_path)
    data = bytearray(store.path.read_bytes())
    data[offset] ^= 0x01
    store.path.write_bytes(bytes(data))

    with pytest.raises(KeyStoreError, match=fragment) as altered:
        store.load(PASSPHRASE)

    assert str(store.path) in str(altered.value)
    assert store.path.read_bytes() == bytes(data)


def test_extra_bytes_after_the_tag_are_detected(tmp_path):
    store = a_store_with_one_key(tmp_path)
    store.path.write_bytes(store.path.read_bytes() + b"\x00")

    with pytest.raises(KeyStoreError, match="damaged"):
        store.load(PASSPHRASE)


def test_the_scrypt_parameters_in_the_header_are_used_when_reading(tmp_path):
    store = a_store_with_one_key(tmp_path)  # written with n = 2**14
    header = parse_header(store.path.read_bytes(), store.path)
    assert (header.log2_n, header.r, header.p, len(header.salt)) == (14, 8, 1, 16)

    default_store = KeyStore(store.path)  # would write new files with n = 2**15
    assert default_store.load(PASSPHRASE)["main"].api_secret.reveal() == API_SECRET
    default_store.rotate(PASSPHRASE, label="main", api_key=NEW_KEY, api_secret=NEW_SECRET)

    rewritten = parse_header(store.path.read_bytes(), store.path)
    assert rewritten.log2_n == 14
    assert rewritten.salt == header.salt  # one salt per file; the nonce changes per write


def test_a_header_whose_kdf_cost_was_changed_does_not_decrypt(tmp_path):
    store = a_store_with_one_key(tmp_path)
    data = bytearray(store.path.read_bytes())
    log2_n_offset = len(MAGIC) + 2 + 1  # after magic, version u16, kdf id u8
    assert data[log2_n_offset] == 14
    data[log2_n_offset] = 15
    store.path.write_bytes(bytes(data))

    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        store.load(PASSPHRASE)


def test_a_header_asking_for_an_absurd_kdf_cost_is_refused_before_deriving(tmp_path):
    store = a_store_with_one_key(tmp_path)
    data = bytearray(store.path.read_bytes())
    data[len(MAGIC) + 3] = 30
    store.path.write_bytes(bytes(data))

    with pytest.raises(KeyStoreError, match=r"n=2\*\*30"):
        store.load(PASSPHRASE)


def test_the_default_cost_is_at_least_2_to_the_15_and_weak_costs_are_refused(tmp_path):
    assert DEFAULT_SCRYPT_N >= 2**15
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path / "k.enc", scrypt_n=2**10)
    with pytest.raises(ValueError, match="power of two"):
        KeyStore(tmp_path / "k.enc", scrypt_n=30_000)


def test_every_write_uses_a_fresh_nonce(tmp_path):
    store = a_store_with_one_key(tmp_path)
    first = store.path.read_bytes()
    store.add(
        PASSPHRASE, exchange="binance", label="b", api_key="k" * 20, api_secret="s" * 20, permissions="read"
    )
    store.remove(PASSPHRASE, "b")
    second = store.path.read_bytes()

    assert (
        first[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES] != second[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
    )


def test_rotation_keeps_the_old_key_as_a_recoverable_encrypted_backup(tmp_path):
    store = a_store_with_one_key(tmp_path)

    rotated = store.rotate(
        PASSPHRASE, label="main", api_key=NEW_KEY, api_secret=NEW_SECRET, permissions="read"
    )

    assert rotated.api_secret.reveal() == NEW_SECRET
    assert rotated.permissions == ("read",)
    main = store.load(PASSPHRASE)["main"]
    assert main.api_key == NEW_KEY
    assert main.rotated_at is not None
    [backup] = main.previous
    assert backup.api_key == API_KEY
    assert backup.api_secret.reveal() == API_SECRET
    assert backup.permissions == ("read", "trade")
    assert backup.rotated_at == main.rotated_at
    # Recoverable from the file alone: decrypt the document by hand and find the old secret.
    data = store.path.read_bytes()
    header = parse_header(data, store.path)
    document = json.loads(unseal(data, header.derive(PASSPHRASE), store.path))
    [old] = document["keys"][0]["previous"]
    assert (old["api_key"], old["api_secret"]) == (API_KEY, API_SECRET)
    assert API_SECRET.encode() not in data


def test_rotation_without_permissions_keeps_the_old_ones(tmp_path):
    store = a_store_with_one_key(tmp_path)

    assert store.rotate(PASSPHRASE, label="main", api_key=NEW_KEY, api_secret=NEW_SECRET).permissions == (
        "read",
        "trade",
    )


def test_rotation_keeps_at_most_the_newest_backups(tmp_path):
    store = a_store_with_one_key(tmp_path)
    for n in range(BACKUPS_MAX + 2):
        store.rotate(PASSPHRASE, label="main", api_key=f"key-number-{n:04d}", api_secret=f"secret-{n}")

    previous = store.load(PASSPHRASE)["main"].previous

    assert len(previous) == BACKUPS_MAX
    assert previous[-1].api_secret.reveal() == f"secret-{BACKUPS_MAX}"


def test_rotating_to_the_same_key_or_an_unknown_label_is_refused(tmp_path):
    store = a_store_with_one_key(tmp_path)
    before = store.path.read_bytes()

    with pytest.raises(KeyStoreError, match="already has this key"):
        store.rotate(PASSPHRASE, label="main", api_key=API_KEY, api_secret=API_SECRET)
    with pytest.raises(KeyStoreError, match="no key labeled 'other'"):
        store.rotate(PASSPHRASE, label="other", api_key=NEW_KEY, api_secret=NEW_SECRET)

    assert store.path.read_bytes() == before


def test_remove_drops_the_label_and_its_backups(tmp_path):
    store = a_store_with_one_key(tmp_path)
    store.add(
        PASSPHRASE,
        exchange="binance",
        label="keep",
        api_key="k" * 20,
        api_secret="s" * 20,
        permissions="read",
    )
    store.rotate(PASSPHRASE, label="main", api_key=NEW_KEY, api_secret=NEW_SECRET)

    removed = store.remove(PASSPHRASE, "main")

    assert removed.label == "main"
    assert list(store.load(PASSPHRASE)) == ["keep"]
    with pytest.raises(KeyStoreError, match="no key labeled 'main'"):
        store.remove(PASSPHRASE, "main")


def test_loading_a_missing_file_says_how_to_create_one(tmp_path):
    with pytest.raises(KeyStoreError, match="keys add"):
        a_store(tmp_path / "none.enc").load(PASSPHRASE)


def test_key_material_appears_nowhere_in_plain_text(tmp_path):
    store = a_store_with_one_key(tmp_path)
    store.rotate(PASSPHRASE, label="main", api_key=NEW_KEY, api_secret=NEW_SECRET)
    keys = store.load(PASSPHRASE)
    main = keys["main"]
    errors: list[Exception] = []
    for attempt in (
        lambda: store.load("wrong"),
        lambda: store.rotate(PASSPHRASE, label="main", api_key=NEW_KEY, api_secret=NEW_SECRET),
        lambda: store.add(
            PASSPHRASE, exchange="nope", label="x", api_key=API_KEY, api_secret=API_SECRET, permissions="read"
        ),
        lambda: store.add(
            PASSPHRASE,
            exchange="binance",
            label="x",
            api_key=API_KEY,
            api_secret=API_SECRET,
            permissions="withdraw",
        ),
    ):
        with pytest.raises((BadInputError, KeyRefusedError)) as caught:
            attempt()
        errors.append(caught.value)
    texts = [
        repr(keys),
        str(keys),
        repr(main),
        str(main),
        repr(main.previous),
        repr(main.api_secret),
        str(main.api_secret),
        f"{main.api_secret}",
        repr(store),
        *(f"{e!r} {e}" for e in errors),
    ]
    raw = store.path.read_bytes()

    for material in (API_KEY, API_SECRET, NEW_KEY, NEW_SECRET):
        assert material.encode() not in raw
        for text in texts:
            assert material not in text
    assert repr(main.api_secret) == str(main.api_secret) == "Secret(****)"
    assert main.key_id == "NEWK…"


def test_secret_masks_itself_compares_by_value_and_refuses_pickling():
    secret = Secret(API_SECRET)

    assert repr(secret) == str(secret) == "Secret(****)"
    assert secret == Secret(API_SECRET)
    assert secret != Secret("other")
    assert secret.reveal() == API_SECRET
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(secret)


def test_the_key_id_shows_four_characters_of_long_keys_only():
    assert mask_key(API_KEY) == "AKIA…"
    assert mask_key("short-key") == "…"


def test_stored_key_repr_leaves_out_the_api_key():
    stored = StoredKey(
        label="l",
        exchange="binance",
        api_key=API_KEY,
        api_secret=Secret(API_SECRET),
        permissions=("read",),
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )

    assert API_KEY not in repr(stored)
    assert "Secret(****)" in repr(stored)


def test_the_header_layout_is_what_the_module_docstring_says(tmp_path):
    store = a_store_with_one_key(tmp_path)
    data = store.path.read_bytes()

    magic, version, kdf, log2_n, r, p, body_length = struct.unpack_from(">6sHBBIII", data)

    assert (magic, version, kdf, log2_n, r, p) == (b"TLKEYS", 1, 1, 14, 8, 1)
    assert len(data) == HEADER_BYTES + NONCE_BYTES + body_length


# -- LLM agents' keys (exchange "llm") and labeled_key, the lookup sessions and agents share ------


def test_an_llm_key_is_one_key_without_a_secret_that_only_reads(tmp_path):
    store = a_store_with_one_key(tmp_path)

    added = store.add(
        PASSPHRASE, exchange="LLM", label="openai", api_key=LLM_KEY, api_secret="", permissions="read"
    )

    assert (added.exchange, added.permissions, added.api_secret.reveal()) == (LLM, ("read",), "")
    loaded = store.load(PASSPHRASE)["openai"]
    assert (loaded.exchange, loaded.api_key, loaded.key_id) == (LLM, LLM_KEY, "sk-l…")
    assert LLM_KEY.encode() not in store.path.read_bytes()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"api_secret": "a-secret"}, "--api-secret: an llm key is one API key without a secret"),
        ({"permissions": "read,trade"}, "--permissions: an llm key never trades"),
        ({"permissions": "trade"}, "--permissions: an llm key never trades"),
        ({"api_key": " "}, "--api-key is empty; paste the LLM server's API key"),
    ],
)
def test_an_llm_key_with_a_secret_or_trade_permission_is_refused(tmp_path, change, fragment):
    store = a_store_with_one_key(tmp_path)
    before = store.path.read_bytes()
    values = {
        "exchange": "llm",
        "label": "openai",
        "api_key": LLM_KEY,
        "api_secret": "",
        "permissions": "read",
    }

    with pytest.raises(KeyStoreError, match=fragment):
        store.add(PASSPHRASE, **{**values, **change})

    assert store.path.read_bytes() == before


def test_an_llm_key_that_can_withdraw_is_refused_like_any_key(tmp_path):
    store = a_store(tmp_path / "k.enc")

    with pytest.raises(WithdrawPermissionError):
        store.add(
            PASSPHRASE, exchange="llm", label="x", api_key=LLM_KEY, api_secret="", permissions="withdraw"
        )

    assert not store.path.exists()


def test_an_llm_key_rotates_without_a_secret_and_an_exchange_key_still_needs_one(tmp_path):
    store = a_store_with_one_key(tmp_path)
    store.add(PASSPHRASE, exchange="llm", label="openai", api_key=LLM_KEY, api_secret="", permissions="read")

    rotated = store.rotate(PASSPHRASE, label="openai", api_key="sk-llm-rotated-0000", api_secret="")

    assert rotated.api_key == "sk-llm-rotated-0000"
    assert rotated.previous[0].api_key == LLM_KEY
    before = store.path.read_bytes()
    with pytest.raises(KeyStoreError, match="--api-secret: an llm key"):
        store.rotate(PASSPHRASE, label="openai", api_key=LLM_KEY, api_secret="s" * 20)
    with pytest.raises(KeyStoreError, match="--permissions: an llm key never trades"):
        store.rotate(PASSPHRASE, label="openai", api_key=LLM_KEY, api_secret="", permissions="trade")
    with pytest.raises(KeyStoreError, match="--api-secret is empty"):
        store.rotate(PASSPHRASE, label="main", api_key=NEW_KEY, api_secret="")
    assert store.path.read_bytes() == before


def test_the_key_file_is_the_given_path_then_the_environment_then_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRADELEDGER_KEYS", raising=False)
    assert key_file_path() == tmp_path / "home" / ".tradeledger" / "keys.enc"
    monkeypatch.setenv("TRADELEDGER_KEYS", "~/env.enc")
    assert key_file_path() == tmp_path / "home" / "env.enc"
    assert key_file_path(tmp_path / "given.enc") == tmp_path / "given.enc"


def test_labeled_key_opens_the_file_with_the_passphrase_from_the_environment(tmp_path, monkeypatch):
    store = a_store_with_one_key(tmp_path)
    monkeypatch.setenv("TRADELEDGER_KEYS", str(store.path))
    monkeypatch.setenv("TRADELEDGER_KEYS_PASSPHRASE", PASSPHRASE)

    assert labeled_key("main", field="venue.key_label").api_secret.reveal() == API_SECRET
    assert labeled_key("main", field="f", keys=store.path).api_key == API_KEY

    with pytest.raises(
        ParameterError, match=r"^venue\.key_label: no key 'other' in .*keys add --label other"
    ):
        labeled_key("other", field="venue.key_label")
    with pytest.raises(KeyStoreError, match=r"^--param key_label: no key file at .*none\.enc"):
        labeled_key("main", field="--param key_label", keys=tmp_path / "none.enc")
    monkeypatch.setenv("TRADELEDGER_KEYS_PASSPHRASE", "not it")
    with pytest.raises(KeyStoreError, match=r"^--param key_label: wrong passphrase for "):
        labeled_key("main", field="--param key_label")
    monkeypatch.delenv("TRADELEDGER_KEYS_PASSPHRASE")
    with pytest.raises(ParameterError, match=r"^--param key_label: set \$TRADELEDGER_KEYS_PASSPHRASE"):
        labeled_key("main", field="--param key_label")
    store.path.chmod(0o640)
    monkeypatch.setenv("TRADELEDGER_KEYS_PASSPHRASE", PASSPHRASE)
    with pytest.raises(KeyFileTooOpenError):
        labeled_key("main", field="--param key_label")
