"""`tradeledger keys ...` through the installed command (SPEC C12, §4.1, §5).

Every refusal is one line on stderr with the contract's exit code (2 bad input, 4 refused for
safety) and leaves the key file byte for byte as it was. No command prints the secret or the
full API key, and neither appears in the file in plain text.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ledger.adapters.keystore import KeyStore

PASSPHRASE = "integration passphrase 7"  # noqa: S105 - made-up test values
API_KEY = "AKIAINTEGRATIONKEY00112233"
API_SECRET = "sekr1t-INTEGRATION-never-printed-4455"  # noqa: S105
NEW_KEY = "ROTATEDKEY99887766554433"
NEW_SECRET = "r0tated-INTEGRATION-secret-6677"  # noqa: S105
ENV = {"TRADELEDGER_KEYS_PASSPHRASE": PASSPHRASE}
MATERIAL = (API_KEY, API_SECRET, NEW_KEY, NEW_SECRET)


def _add(cli, keys: Path, *, permissions: str = "read,trade", env=None, label: str = "main"):
    return cli(
        "keys",
        "add",
        "--exchange",
        "binance",
        "--label",
        label,
        "--api-key",
        API_KEY,
        "--api-secret",
        API_SECRET,
        "--permissions",
        permissions,
        "--keys",
        keys,
        env=ENV if env is None else env,
    )


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def keys_file(cli, tmp_path: Path) -> Path:
    keys = tmp_path / "vault" / "keys.enc"
    code, _, err = _add(cli, keys)
    assert code == 0, err
    return keys


def test_add_list_rotate_remove_never_show_key_material(cli, keys_file):
    outputs = []
    code, out, err = cli("keys", "list", "--json", "--keys", keys_file, env=ENV)
    outputs += [out, err]
    assert code == 0, err
    [row] = json.loads(out)
    assert row["label"] == "main"
    assert row["exchange"] == "binance"
    assert row["permissions"] == ["read", "trade"]
    assert row["key_id"] == "AKIA…"
    assert row["backups"] == 0
    assert row["rotated_at"] is None

    rotate = ("keys", "rotate", "--label", "main", "--api-key", NEW_KEY, "--api-secret", NEW_SECRET)
    code, out, err = cli(*rotate, "--keys", keys_file, env=ENV)
    outputs += [out, err]
    assert code == 0, err
    code, out, err = cli("keys", "list", "--keys", keys_file, env=ENV)
    outputs += [out, err]
    assert code == 0, err
    assert "main" in out
    assert "ROTA…" in out

    raw = keys_file.read_bytes()
    for material in MATERIAL:
        assert material.encode() not in raw
        for text in outputs:
            assert material not in text

    # The replaced key is recoverable from the encrypted file with the passphrase.
    [backup] = KeyStore(keys_file).load(PASSPHRASE)["main"].previous
    assert (backup.api_key, backup.api_secret.reveal()) == (API_KEY, API_SECRET)

    code, out, err = cli("keys", "remove", "--label", "main", "--keys", keys_file, env=ENV)
    assert code == 0, err
    code, out, err = cli("keys", "list", "--json", "--keys", keys_file, env=ENV)
    assert code == 0, err
    assert json.loads(out) == []


def test_the_file_is_0600_in_a_0700_folder(keys_file):
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_file.parent.stat().st_mode) == 0o700


def test_a_key_that_can_withdraw_is_refused_with_exit_4(cli, keys_file, tmp_path):
    before = keys_file.read_bytes()

    code, _, err = _add(cli, keys_file, permissions="read,trade,withdraw", label="other")
    fresh_code, _, _ = _add(cli, tmp_path / "fresh" / "keys.enc", permissions="withdraw")

    assert code == fresh_code == 4
    assert "a key that can withdraw is refused" in _one_line(err)
    assert keys_file.read_bytes() == before
    assert not (tmp_path / "fresh").exists()


def test_an_unknown_permission_or_exchange_is_bad_input(cli, keys_file):
    before = keys_file.read_bytes()

    code, _, err = _add(cli, keys_file, permissions="read,margin", label="other")
    assert code == 2
    assert "--permissions" in _one_line(err)
    code, _, err = cli(
        "keys", "add", "--exchange", "nosuchexchange", "--label", "x", "--api-key", API_KEY,
        "--api-secret", API_SECRET, "--keys", keys_file, env=ENV,
    )  # fmt: skip
    assert code == 2
    assert "--exchange" in _one_line(err)
    assert keys_file.read_bytes() == before


def test_a_wrong_passphrase_is_exit_2_and_changes_nothing(cli, keys_file):
    before = keys_file.read_bytes()
    wrong = {"TRADELEDGER_KEYS_PASSPHRASE": "not it"}

    code, _, err = cli("keys", "list", "--keys", keys_file, env=wrong)
    add_code, _, _ = _add(cli, keys_file, env=wrong, label="other")

    assert code == add_code == 2
    assert _one_line(err) == f"wrong passphrase for {keys_file} (or the file was altered)"
    assert keys_file.read_bytes() == before


@pytest.mark.parametrize("keep", [0, 10, 40, 60, -1])
def test_a_truncated_file_is_exit_2_naming_the_file(cli, keys_file, keep):
    whole = keys_file.read_bytes()
    keys_file.write_bytes(whole[: keep if keep >= 0 else len(whole) + keep])
    before = keys_file.read_bytes()

    code, _, err = cli("keys", "list", "--keys", keys_file, env=ENV)

    assert code == 2
    line = _one_line(err)
    assert str(keys_file) in line
    assert "truncated" in line
    assert keys_file.read_bytes() == before


def test_a_file_readable_by_others_is_refused_with_exit_4(cli, keys_file):
    keys_file.chmod(0o644)
    before = keys_file.read_bytes()

    code, _, err = cli("keys", "list", "--keys", keys_file, env=ENV)

    assert code == 4
    assert f"chmod 600 {keys_file}" in _one_line(err)
    assert keys_file.read_bytes() == before
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o644


def test_the_key_file_defaults_to_the_environment_then_the_home_folder(cli, tmp_path):
    from_env = tmp_path / "env.enc"
    code, _, err = cli(
        "keys", "add", "--exchange", "binance", "--label", "a", "--api-key", API_KEY,
        "--api-secret", API_SECRET, env={**ENV, "TRADELEDGER_KEYS": str(from_env)},
    )  # fmt: skip
    assert code == 0, err
    assert from_env.exists()

    home = tmp_path / "home"
    home.mkdir()
    code, out, err = cli("keys", "list", "--json", env={**ENV, "HOME": str(home)})
    assert code == 0, err
    assert json.loads(out) == []
    assert not (home / ".tradeledger").exists()  # listing a missing file creates nothing
    code, _, err = cli(
        "keys", "add", "--exchange", "binance", "--label", "a", "--api-key", API_KEY,
        "--api-secret", API_SECRET, env={**ENV, "HOME": str(home)},
    )  # fmt: skip
    assert code == 0, err
    default = home / ".tradeledger" / "keys.enc"
    assert stat.S_IMODE(default.stat().st_mode) == 0o600
    assert stat.S_IMODE(default.parent.stat().st_mode) == 0o700


def test_the_passphrase_can_come_on_stdin_without_a_terminal(cli, keys_file):
    code, out, err = cli("keys", "list", "--json", "--keys", keys_file, input=PASSPHRASE + "\n")

    assert code == 0, err
    assert [row["label"] for row in json.loads(out)] == ["main"]


def test_an_llm_key_has_no_secret_never_trades_and_rotates_without_a_secret(cli, keys_file):
    llm_key = "sk-INTEGRATION-llm-key-8899"
    add = ("keys", "add", "--exchange", "llm", "--label", "openai", "--api-key", llm_key, "--keys", keys_file)
    before = keys_file.read_bytes()
    # Refused before any passphrase is asked for: no environment, no stdin.
    code, _, err = cli(*add, "--api-secret", API_SECRET)
    assert code == 2
    assert _one_line(err).startswith("--api-secret: an llm key")
    code, _, err = cli(*add, "--permissions", "read,trade")
    assert code == 2
    assert _one_line(err).startswith("--permissions: an llm key never trades")
    code, _, err = cli(*add, "--permissions", "withdraw")
    assert code == 4
    assert keys_file.read_bytes() == before

    code, out, err = cli(*add, env=ENV)  # no --api-secret and no terminal: nothing is asked
    assert code == 0, err
    assert out.startswith("added openai (llm, read, key sk-I…)")
    code, out, err = cli(
        "keys", "rotate", "--label", "openai", "--api-key", "sk-INTEGRATION-rotated-0011",
        "--keys", keys_file, env=ENV,
    )  # fmt: skip
    assert code == 0, err
    assert "1 backup(s) kept" in out
    code, out, err = cli("keys", "list", "--json", "--keys", keys_file, env=ENV)
    assert code == 0, err
    rows = {row["label"]: row for row in json.loads(out)}
    assert (rows["openai"]["exchange"], rows["openai"]["permissions"]) == ("llm", ["read"])
    assert llm_key not in out
    assert llm_key.encode() not in keys_file.read_bytes()
