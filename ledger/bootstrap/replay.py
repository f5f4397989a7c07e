"""`tradeledger replay RUN`: an auditor's check of one run, reporting the first divergence.

In order:

1. **chain** -- recompute the run's hash chain (``audit.verify``); a broken chain stops here,
   since nothing read from an edited log can be trusted.
2. **checkpoint** -- fold the run's events into a fresh portfolio projection and compare it,
   field by field, with every ``RunCheckpointed`` and ``RunEnded`` the run recorded.
3. **projection** -- compare the saved (tracked, incremental) portfolio projection with that
   rebuild.
4. **analytics** -- when the DuckDB projection file exists, compare its rows of the run with
   rows rebuilt from zero.
5. **rerun** -- backtests only: run the backtest again from its recorded inputs (data file
   digest, strategy and parameters, cash, fee, fill model, seed, run id, kill switch) into a
   scratch ledger and compare event by event; with the same code version, byte by byte. An
   agent's (``llm``) answers are served from the run's recorded decisions, matched by the
   digest of the exact request, so the model is never called; a prompt the record does not
   hold re-runs as ``DecisionRejected(not_recorded)`` and shows as the divergence.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from uuid import UUID

from ledger.adapters import audit
from ledger.adapters.candles_files import load_candles
from ledger.adapters.store import LedgerStore
from ledger.application.replay import (
    Divergence,
    first_event_divergence,
    rebuild_against_checkpoints,
    render,
)
from ledger.bootstrap import (
    BacktestRequest,
    RecordedStart,
    bundled_sample,
    code_version,
    read_portfolio,
    run_backtest_request,
)
from ledger.bootstrap.fill_options import recorded_options
from ledger.domain.errors import DataFileError, RunNotFoundError
from ledger.domain.events import LedgerEvent, RunStarted, TradingMode
from ledger.domain.identifiers import CONTROL_RUN_ID
from ledger.domain.numbers import plain
from ledger.domain.trading_session import kill_switch_engaged
from ledger.strategies.chat import RecordedChat
from projections import analytics
from projections.base import encode_state
from projections.portfolio import PortfolioProjection, RunView

PAGE = 20_000


@dataclass(frozen=True, kw_only=True)
class CheckOutcome:
    """One check of the replay: ok, diverged or skipped, and what it looked at."""

    name: str
    status: str
    detail: str


@dataclass(kw_only=True)
class ReplayReport:
    """Everything ``tradeledger replay`` found about one run."""

    run_id: UUID
    mode: str
    events: int
    code_version_recorded: str
    code_version_replaying: str
    checks: list[CheckOutcome] = field(default_factory=list)
    divergences: list[Divergence] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return whether every check agreed with the record."""
        return not self.divergences

    @property
    def divergence(self) -> Divergence | None:
        """Return the earliest divergence in the log (one not tied to a row comes last)."""
        if not self.divergences:
            return None
        return min(self.divergences, key=lambda d: (d.seq is None, d.seq or 0))

    def add(self, name: str, divergence: Divergence | None, detail: str) -> None:
        """Record one check's outcome and its divergence, if any."""
        self.checks.append(
            CheckOutcome(name=name, status="ok" if divergence is None else "diverged", detail=detail)
        )
        if divergence is not None:
            self.divergences.append(divergence)

    def skip(self, name: str, detail: str) -> None:
        """Record a check that does not apply to this run."""
        self.checks.append(CheckOutcome(name=name, status="skipped", detail=detail))


@dataclass(frozen=True, kw_only=True)
class RunLog:
    """One run's events with their store positions, its start, and the kill switch then."""

    events: list[tuple[int, LedgerEvent]]
    started: RunStarted
    halted_at_start: bool


def read_run(store: LedgerStore, run_id: UUID) -> RunLog:
    """Return ``run_id``'s events in log order (one pass over the log).

    Raises:
        RunNotFoundError: the ledger has no such run.
    """
    events: list[tuple[int, LedgerEvent]] = []
    control: list[LedgerEvent] = []
    after = 0
    while page := store.read_log(after, PAGE):
        for seq, event in page:
            if event.run_id == run_id:
                events.append((seq, event))
            elif event.run_id == CONTROL_RUN_ID and not events:
                control.append(event)  # the kill switch as it stood when the run started
        after = page[-1][0]
    if not events or not isinstance(events[0][1], RunStarted):
        msg = f"run {run_id} is not in this ledger; list runs with `tradeledger sessions`"
        raise RunNotFoundError(msg)
    return RunLog(events=events, started=events[0][1], halted_at_start=kill_switch_engaged(control))


def replay_run(
    store: LedgerStore, run_id: UUID, *, data_path: Path | None = None, analytics_path: Path | None = None
) -> ReplayReport:
    """Run every check on ``run_id``; see the module docstring.

    Raises:
        RunNotFoundError: the run is not in the ledger.
        DataFileError: a backtest's data file is missing or is not the file the run used.
    """
    log = read_run(store, run_id)
    report = ReplayReport(
        run_id=run_id,
        mode=log.started.mode.value,
        events=len(log.events),
        code_version_recorded=log.started.code_version,
        code_version_replaying=code_version(),
    )
    chain = audit.verify(store, run_id)
    if chain.faults:
        fault = chain.faults[0]
        report.add(
            "chain",
            Divergence(
                check="chain",
                seq=fault.seq,
                event=_event_at(log, fault.seq),
                field="hash",
                recorded=f"chain position {fault.n}",
                replayed=fault.reason,
            ),
            f"{chain.events} events verified up to the fault",
        )
        for name in ("checkpoint", "projection", "analytics", "rerun"):
            report.skip(name, "not run: the hash chain is broken, so the log cannot be trusted")
        return report
    report.add("chain", None, f"{chain.events} events, head {store.chain_head(run_id).hash[:16]}")
    rebuilt = rebuild_against_checkpoints(log.events, run_id)
    report.add(
        "checkpoint",
        rebuilt.divergence,
        f"{rebuilt.checked} recorded checkpoint(s) (RunCheckpointed, RunEnded) compared",
    )
    saved, last_seq = read_portfolio(store)
    report.add(
        "projection",
        _view_divergence(saved.runs[run_id], rebuilt.projection.runs[run_id]),
        "saved portfolio projection against a rebuild from zero",
    )
    _check_analytics(
        report, store, log, saved=saved, rebuilt=rebuilt.projection, path=analytics_path, last_seq=last_seq
    )
    _check_rerun(report, store, log, data_path)
    return report


def _event_at(log: RunLog, seq: int | None) -> str:
    found = [type(e).__name__ for s, e in log.events if s == seq]
    return found[0] if found else "end of log"


def _view_divergence(saved: RunView, rebuilt: RunView) -> Divergence | None:
    for spec in fields(RunView):
        a = encode_state(getattr(saved, spec.name)).decode()
        b = encode_state(getattr(rebuilt, spec.name)).decode()
        if a != b:
            return Divergence(
                check="projection",
                seq=None,
                event="RunView",
                field=spec.name,
                recorded=a[:200],
                replayed=b[:200],
            )
    return None


class _RunReader:
    """An ``EventLogReader`` over one run's events (global seqs kept)."""

    def __init__(self, events: list[tuple[int, LedgerEvent]]) -> None:
        self._events = events

    def read_log(self, after_seq: int, limit: int) -> list[tuple[int, LedgerEvent]]:
        return [(s, e) for s, e in self._events if s > after_seq][:limit]

    def max_seq(self) -> int:
        return self._events[-1][0]


def _check_analytics(  # noqa: PLR0913 - one check's inputs, passed through from replay_run
    report: ReplayReport,
    store: LedgerStore,
    log: RunLog,
    *,
    saved: PortfolioProjection,
    rebuilt: PortfolioProjection,
    path: Path | None,
    last_seq: int,
) -> None:
    if path is None or not path.exists():
        report.skip("analytics", "no DuckDB projection file to compare (it is built by query/report)")
        return
    analytics.sync(path, store, saved, upto=last_seq)
    with tempfile.TemporaryDirectory(prefix="tradeledger-replay-") as work:
        fresh = Path(work) / "rebuilt.duckdb"
        only_run = PortfolioProjection()
        only_run.runs = {report.run_id: rebuilt.runs[report.run_id]}
        analytics.sync(fresh, _RunReader(log.events), only_run, upto=log.events[-1][0])
        found = analytics.compare_run(path, fresh, report.run_id)
    divergence = None
    if found is not None:
        divergence = Divergence(
            check="analytics",
            seq=found.seq,
            event=found.table,
            field=found.column,
            recorded=found.stored,
            replayed=found.rebuilt,
        )
    report.add("analytics", divergence, f"{path.name} rows of the run against a rebuild from zero")


def _check_rerun(report: ReplayReport, store: LedgerStore, log: RunLog, data_path: Path | None) -> None:
    started = log.started
    if started.mode is not TradingMode.BACKTEST:
        report.skip(
            "rerun",
            f"a {started.mode.value} run is simulated on its market-data tape with "
            "`tradeledger replay RUN --as-backtest`",
        )
        return
    data = _data_file(started, data_path)
    fill_model, fill_options = recorded_options(started.fill_model)  # the model and its settings
    request = BacktestRequest(
        ledger_url="",
        data_path=data,
        symbol=started.instrument,
        strategy=started.strategy,
        params=json.loads(started.params),
        cash=plain(started.cash_initial),
        fee=plain(started.fee_rate),
        seed=started.seed,
        fill_model=fill_model,
        fill=fill_options,
        data_label=started.data_source,
        gaps="allow",  # the recorded run accepted this very file (its digest is checked)
    )
    same_code = started.code_version == report.code_version_replaying
    with tempfile.TemporaryDirectory(prefix="tradeledger-replay-") as work:
        scratch = replace(request, ledger_url=str(Path(work) / "rerun.db"))
        # An agent's answers come from the record (matched by input digest), never its server.
        recorded = RecordedChat(event for _, event in log.events)
        _, rerun_store = run_backtest_request(
            scratch,
            replay_of=RecordedStart(run_id=report.run_id, halted=log.halted_at_start),
            chat=recorded.connect,
        )
        try:
            replayed = [e for _, e in _all_events(rerun_store)]
            ignore = frozenset() if same_code else frozenset({"RunStarted.code_version"})
            divergence = first_event_divergence(log.events, replayed, ignore=ignore)
            if divergence is None and same_code:
                divergence = _byte_divergence(store, rerun_store, log)
        finally:
            rerun_store.close()
    detail = f"{len(replayed)} events re-run from {data.name}"
    if not same_code:
        detail += (
            f"; recorded by {started.code_version}, replayed by {report.code_version_replaying}: "
            "compared field by field, code_version aside"
        )
    report.add("rerun", divergence, detail)


def _all_events(store: LedgerStore) -> Iterator[tuple[int, LedgerEvent]]:
    after = 0
    while page := store.read_log(after, PAGE):
        yield from page
        after = page[-1][0]


def _byte_divergence(store: LedgerStore, rerun: LedgerStore, log: RunLog) -> Divergence | None:
    # Same code, same inputs: the stored envelopes (hash chain included) must match byte for byte.
    wanted = {seq for seq, _ in log.events}
    recorded = [row for row in audit.iter_rows(store) if row.seq in wanted]
    for old, new in zip(recorded, audit.iter_rows(rerun), strict=False):
        if bytes(old.state) != bytes(new.state):
            return Divergence(
                check="rerun",
                seq=old.seq,
                event=old.topic.rsplit(":", 1)[-1],
                field="stored bytes",
                recorded=render(bytes(old.state)[:120].decode(errors="replace")),
                replayed=render(bytes(new.state)[:120].decode(errors="replace")),
            )
    return None


def _data_file(started: RunStarted, data_path: Path | None) -> Path:
    recorded = Path(started.data_source)
    candidates = [data_path] if data_path is not None else [recorded, bundled_sample().parent / recorded.name]
    for candidate in candidates:
        if not candidate.is_file():
            continue
        digest = load_candles(candidate).digest
        if digest != started.data_digest:
            msg = (
                f"--data: {candidate} has sha256 {digest[:16]}..., not the run's "
                f"{started.data_digest[:16]}...; pass the exact file the run used"
            )
            raise DataFileError(msg)
        return candidate
    msg = (
        f"--data: the run's data file {started.data_source!r} (sha256 {started.data_digest[:16]}...) "
        "is not here; pass its path with --data"
    )
    raise DataFileError(msg)
