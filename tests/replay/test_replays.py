"""Golden replays: every scenario under replays/ decodes, projects, verifies and reproduces.

Each ``replays/<scenario>/events.jsonl`` holds stored rows exactly as the store holds them.
They are decoded with the production decoder (``ledger.adapters.codec.decode``), so upcasters
and topic registrations run on every test run. ``LEDGER_UPDATE_GOLDEN=1`` rewrites the files
under ``expected/`` (review ``git diff replays/`` afterwards); ``events.jsonl`` is history and is
never rewritten here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

import pytest

import ledger
from ledger.adapters import audit, codec
from ledger.adapters.store import open_store
from ledger.bootstrap import portfolio
from ledger.domain.events import OrderFilled
from ledger.domain.numbers import D
from projections.portfolio import PortfolioProjection

REPLAYS = Path(__file__).resolve().parents[2] / "replays"
UPDATE = os.environ.get("LEDGER_UPDATE_GOLDEN") == "1"


def _load_make_golden() -> ModuleType:
    # replays/ is not a package; load the builder by path so the test and the script share one
    # rendering. Registered in sys.modules because dataclasses look their module up there.
    spec = importlib.util.spec_from_file_location("make_golden", REPLAYS / "make_golden.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_golden", module)
    spec.loader.exec_module(sys.modules["make_golden"])
    return sys.modules["make_golden"]


golden = _load_make_golden()
SCENARIOS = sorted(p.parent for p in REPLAYS.glob("*/events.jsonl"))


def _check_golden(path: Path, actual: str | bytes) -> None:
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        if isinstance(actual, bytes):
            path.write_bytes(actual)
        else:
            path.write_text(actual)
    expected = path.read_bytes() if isinstance(actual, bytes) else path.read_text()
    assert actual == expected, f"{path} differs; if the change is intended, rerun with LEDGER_UPDATE_GOLDEN=1"


@pytest.fixture(params=SCENARIOS, ids=[p.name for p in SCENARIOS])
def scenario(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


def test_there_are_scenarios() -> None:
    assert {p.name for p in SCENARIOS} >= {golden.UPCAST, golden.BUNDLED, golden.TWO_DAYS}
    for path in SCENARIOS:
        assert (path / "README.md").exists(), f"{path.name} needs a README.md saying where it came from"


def test_rows_decode_through_the_production_decoder(scenario: Path) -> None:
    rows = golden.load_rows(scenario / "events.jsonl")

    events = list(golden.decode_rows(rows))

    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    for row, event in zip(rows, events, strict=True):
        assert (event.originator_id, event.originator_version) == (row.originator_id, row.originator_version)
        assert codec.TOPICS[type(event)] == row.topic


def test_rows_are_stored_in_canonical_form(scenario: Path) -> None:
    text = (scenario / "events.jsonl").read_text()

    assert golden.rows_text(golden.load_rows(scenario / "events.jsonl")) == text


def test_portfolio_matches_golden(scenario: Path) -> None:
    rows = golden.load_rows(scenario / "events.jsonl")

    actual = golden.render_portfolio(golden.fold(golden.decode_rows(rows)))

    _check_golden(scenario / "expected" / "portfolio.json", actual)


def test_replaying_twice_gives_identical_output(scenario: Path) -> None:
    rows = golden.load_rows(scenario / "events.jsonl")

    first = golden.fold(golden.decode_rows(rows))
    second = golden.fold(golden.decode_rows(rows))

    assert first.snapshot() == second.snapshot()


def test_resuming_from_a_snapshot_equals_a_rebuild_from_zero(scenario: Path) -> None:
    events = list(golden.decode_rows(golden.load_rows(scenario / "events.jsonl")))
    rebuilt = golden.fold(events).snapshot()

    for cut in sorted({1, len(events) // 3, len(events) // 2, len(events) - 1}):
        resumed = PortfolioProjection()
        resumed.restore(golden.fold(events[:cut]).snapshot())
        for event in events[cut:]:
            resumed.apply(event)
        assert resumed.snapshot() == rebuilt, f"resumed after event {cut}"


def test_rows_verify_and_replay_from_a_real_sqlite_ledger(scenario: Path, tmp_path: Path) -> None:
    rows = golden.load_rows(scenario / "events.jsonl")
    path = tmp_path / "ledger.db"
    golden.insert_rows(path, rows)

    store = open_store(str(path), create=False)
    try:
        report = audit.verify(store)
        assert report.ok, report.faults
        assert report.events == len(rows)
        assert [e for _, e in store.read_log(0, 100_000)] == list(golden.decode_rows(rows))
        # The tracked runner (what the CLI uses) reaches the same state as the plain fold.
        assert (
            golden.render_portfolio(portfolio(store))
            == (scenario / "expected" / "portfolio.json").read_text()
        )
    finally:
        store.close()


def test_an_edited_replay_row_fails_verification(scenario: Path, tmp_path: Path) -> None:
    rows = golden.load_rows(scenario / "events.jsonl")
    target = next(r for r in rows if r.topic.endswith(":OrderFilled"))
    path = tmp_path / "ledger.db"
    golden.insert_rows(path, rows)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = ?",
            (target.state.replace(b'"side":"buy"', b'"side":"sell"'), target.seq),
        )
    connection.close()

    store = open_store(str(path), create=False)
    try:
        [fault] = audit.verify(store).faults
    finally:
        store.close()
    assert fault.seq == target.seq
    assert "edited" in fault.reason


# -- upcast_orderfilled_v1 -----------------------------------------------------------------------


def test_version_1_fills_upcast_with_no_expected_price() -> None:
    rows = golden.load_rows(REPLAYS / golden.UPCAST / "events.jsonl")
    fills = [
        (codec.decode_envelope(r.state).v, codec.decode(r.topic, r.state))
        for r in rows
        if r.topic.endswith(":OrderFilled")
    ]

    assert [version for version, _ in fills] == [1, 1, 2]
    stored_v1 = [
        r.state for r in rows if r.topic.endswith(":OrderFilled") and codec.decode_envelope(r.state).v == 1
    ]
    assert all(b"price_expected" not in state for state in stored_v1)  # really the old schema
    for version, fill in fills:
        assert isinstance(fill, OrderFilled)
        assert (fill.price_expected is None) == (version == 1)
    last = fills[2][1]
    assert isinstance(last, OrderFilled)
    assert last.price_expected == D("101010")


def test_upcast_scenario_worked_example() -> None:
    """Buy 0.02 @ 99,990 (fee 1.9998) and 0.03 @ 100,000 (fee 3); sell 0.02 @ 101,000 (fee 2.02).

    Cost with buy fees: 1,999.8 + 1.9998 + 3,000 + 3 = 5,004.7998 for 0.05 BTC, so the average
    entry price is 5,004.7998 / 0.05 = 100,095.996. The sell realizes
    (101,000 - 100,095.996) x 0.02 - 2.02 = 18.08008 - 2.02 = 16.06008. Cash:
    10,000 - 5,004.7998 + 2,020 - 2.02 = 7,013.1802; equity at 101,000: 7,013.1802 + 0.03 x 101,000
    = 10,043.1802. Slippage is only known for the version-2 sell, which got 10 less than the
    expected 101,010: 10 / 101,010 x 10,000 = 0.99000099 bps of cost (positive means worse).
    """
    rows = golden.load_rows(REPLAYS / golden.UPCAST / "events.jsonl")
    [run] = golden.fold(golden.decode_rows(rows)).runs.values()
    position = run.positions["BTC/USDT"]

    assert position.qty_open == D("0.03")
    assert position.price_avg == D("100095.996")
    assert position.pnl_realized == D("16.06008")
    assert position.fee_total == D("7.0198")
    assert run.balance("USDT").total == D("7013.1802")
    assert run.balance("BTC").total == D("0.03")
    assert run.equity_now() == D("10043.1802")
    assert run.ended is not None
    assert run.ended.equity_final == run.equity_now()
    assert run.slippage_bps == {"BTC/USDT": [D("0.99000099")]}


# -- backtest scenarios ---------------------------------------------------------------------------

BACKTESTS = sorted(golden.BACKTEST_SCENARIOS)


@pytest.mark.parametrize("name", BACKTESTS)
def test_backtest_rerun_from_recorded_inputs_exports_identical_bytes(name: str, tmp_path: Path) -> None:
    scenario = REPLAYS / name
    manifest = json.loads((scenario / "manifest.json").read_text())

    run_id, export, _ = golden.run_recorded_backtest(scenario, tmp_path)

    assert str(run_id) == manifest["run_id"]
    _check_golden(scenario / "expected" / "export.jsonl", export)


@pytest.mark.parametrize("name", BACKTESTS)
def test_backtest_rerun_reproduces_the_recorded_history(name: str, tmp_path: Path) -> None:
    scenario = REPLAYS / name
    manifest = json.loads((scenario / "manifest.json").read_text())
    if manifest["code_version"] != ledger.__version__:
        pytest.skip(
            f"{name} was recorded by {manifest['code_version']}, this is {ledger.__version__}; "
            "`tradeledger replay` reports where today's code departs from it (expected/replay.json)"
        )

    _, _, rows = golden.run_recorded_backtest(scenario, tmp_path)

    assert len(rows) == manifest["events"]
    assert golden.rows_text(rows) == (scenario / "events.jsonl").read_text()


def test_the_current_code_has_a_scenario_to_reproduce_byte_for_byte() -> None:
    versions = {
        json.loads((REPLAYS / name / "manifest.json").read_text())["code_version"] for name in BACKTESTS
    }

    assert ledger.__version__ in versions, "record a backtest scenario with this version (make_golden.py)"


@pytest.mark.parametrize("name", BACKTESTS)
def test_backtest_inputs_are_the_first_bars_of_the_bundled_sample(name: str) -> None:
    spec = golden.BACKTEST_SCENARIOS[name]
    text = (REPLAYS / name / "candles.csv").read_text()

    assert text == golden.first_bars_csv(spec.bars)
    assert len(text.splitlines()) == spec.bars + 1


# -- `tradeledger replay` on every scenario --------------------------------------------------------


def test_replay_command_reports_what_the_golden_says(scenario: Path, tmp_path: Path, cli) -> None:
    """CI replays every golden run through the CLI; the report itself is a golden file.

    A scenario recorded by an older version may legitimately diverge where the code changed
    since (its expected/replay.json says where); everything else must agree.
    """
    rows = golden.load_rows(scenario / "events.jsonl")
    ledger_path = tmp_path / "ledger.db"
    golden.insert_rows(ledger_path, rows)
    run_id = json.loads((scenario / "manifest.json").read_text())["run_id"]
    data = ["--data", str(scenario / "candles.csv")] if (scenario / "candles.csv").exists() else []
    assert (
        cli("--ledger", ledger_path, "query", "SELECT count(*) FROM events").returncode == 0
    )  # builds DuckDB

    code, out, err = cli("--ledger", ledger_path, "replay", run_id, "--json", *data)

    report = json.loads(out)
    assert code == (0 if report["ok"] else 3), err
    report["code_version"]["replaying"] = "<this version>"
    _check_golden(scenario / "expected" / "replay.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
