"""`tradeledger alerts`: kill-switch alerts reach the log notifier once each, resuming where it left off."""

from __future__ import annotations

import json
from pathlib import Path

PASSPHRASE = {"TRADELEDGER_ADMIN_PASSPHRASE": "correct horse battery staple"}


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_alerts_are_delivered_once_and_resume_after_the_last_one(cli, tmp_path: Path) -> None:
    ledger, log = tmp_path / "a.db", tmp_path / "alerts.jsonl"
    assert cli("--ledger", ledger, "kill", "--reason", "drill").returncode == 0

    first = cli("--ledger", ledger, "alerts", "--log", log, "--from-beginning")
    again = cli("--ledger", ledger, "alerts", "--log", log)
    assert cli("--ledger", ledger, "admin", "set-passphrase", env=PASSPHRASE).returncode == 0
    assert (
        cli("--ledger", ledger, "kill", "--release", "--reason", "drill over", env=PASSPHRASE).returncode == 0
    )
    last = cli("--ledger", ledger, "alerts", "--log", log)

    assert first.returncode == again.returncode == last.returncode == 0, (first.stderr, last.stderr)
    alerts = _lines(log)
    assert [a["title"] for a in alerts] == ["Kill switch engaged", "Kill switch released"]
    assert "drill (by cli)" in str(alerts[0]["text"])
    assert "alerts: 0 delivered" in again.stdout


def test_a_follower_stops_by_itself_after_its_time(cli, tmp_path: Path) -> None:
    ledger = tmp_path / "a.db"
    assert cli("--ledger", ledger, "kill").returncode == 0

    done = cli("--ledger", ledger, "alerts", "--follow", "--for", "1", "--interval", "0.1", timeout=60)

    assert done.returncode == 0, done.stderr
