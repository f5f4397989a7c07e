"""Parameter sweeps: many backtests in parallel processes, one writer, one ledger (SPEC C7).

How a sweep runs, and why:

1. **Validate everything first.** The grid is parsed, the data file is read once, and every
   combination is prepared (``prepare_backtest``) before the ledger is opened: a bad grid,
   an unknown parameter or an invalid value in any combination leaves the ledger untouched.
2. **Decide every run id before dispatch.** The parent picks each run's id exactly as
   ``tradeledger backtest`` would (``free_run_id``: the inputs digest and the first free
   attempt number), counting ids promised to earlier identical combinations of the same sweep
   as taken. The kill switch is read once, at the sweep's start.
3. **Workers compute, the parent writes.** Worker processes (``forkserver``: the server imports
   the engine once and forks each worker from it; spawn would import it once per worker, and
   plain fork is unsafe in a process holding database connections) run their backtest into a
   ``RunBuffer``. When the run has finished, the worker sends its chunks as the store's own
   rows, chain-encoded (``codec.encode_link``, exactly what ``LedgerStore.append`` builds), and
   the run's own projection. The parent, the only writer, inserts each chunk atomically as it
   is (``LedgerStore.append_encoded`` checks it continues the run's committed chain), and puts
   the run's projection into the tracked portfolio (``adopt_run``): it neither decodes,
   re-encodes nor folds the events, which was most of its time. The stored events, hashes and
   chain segments are those of a single ``tradeledger backtest`` of that combination (tested).
4. **Whole runs or nothing.** A worker buffers its whole run and sends it only on success, so
   a run that fails half way writes nothing (no half run without its ``RunEnded``). Runs are
   written in grid order (``imap``): on a failure, the runs before the failing combination are
   in the ledger, it and those after it are not, and the sweep raises ``SweepRunError`` naming
   it. Grid order also makes the ledger's global order of a sweep reproducible.
5. **PostgreSQL uses the same writer path.** Workers could append there directly (per-run
   chains and optimistic concurrency make concurrent writers safe), but one path keeps the
   whole-run guarantee and the reproducible log order on both backends, and the single
   writer is not the bottleneck: its appends cost a small fraction of a run's computation.

``--jobs 1`` (or a single combination) runs the combinations one after another in this
process, through the same buffer and append path: the "one after another" baseline.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from multiprocessing import forkserver
from uuid import UUID

from ledger.adapters import codec
from ledger.adapters.candles_gaps import GapReport, gap_report
from ledger.adapters.codec import GENESIS_HASH, ChainHead
from ledger.adapters.ids import SeededIds
from ledger.adapters.store import LedgerStore
from ledger.adapters.store.schema import Row
from ledger.application.candles import Candles
from ledger.application.run_buffer import RunBuffer
from ledger.application.sweep_grid import GridAxis, combinations, describe, parse_grid
from ledger.bootstrap import (
    BacktestRequest,
    PreparedBacktest,
    adopt_run,
    execute_backtest,
    free_run_id,
    ledger_halted,
    open_ledger,
    prepare_backtest,
    request_candles,
    request_data_path,
)
from ledger.domain.errors import BadInputError, InvariantViolationError, LedgerError, ParameterError
from projections.portfolio import PortfolioProjection, RunView
from projections.runner import ProjectionRunner

# Why 64: each job is a process holding the candles and one buffered run; more processes than
# this on one machine only add memory and context switches.
JOBS_MAX = 64


_WARM_MODULES = ("anyio._backends._asyncio", "ledger.strategies.sma", "numpy.ma")


class SweepRunError(LedgerError):
    """A combination's run failed in its worker; nothing of it was written."""


@dataclass(frozen=True, kw_only=True)
class SweepRequest:
    """A sweep as a user asks for it: a base backtest and the grid of parameters to vary."""

    base: BacktestRequest
    grid: tuple[str, ...]  # the --grid options, K=V1,V2,...
    jobs: int | None = None  # None: one per CPU
    # Parameters the user fixed (--param), which a grid may not also sweep; None: every
    # parameter of the base. Others (a config file's) are overridden by the grid.
    fixed: Mapping[str, str] | None = None


@dataclass(frozen=True, kw_only=True)
class SweepRun:
    """One combination of a sweep: its grid values and the run id it was given."""

    values: dict[str, str]
    request: BacktestRequest
    run_id: UUID


@dataclass(frozen=True, kw_only=True)
class SweepResult:
    """What a sweep wrote: its runs in grid order, and the ledger they went to."""

    axes: list[GridAxis]
    runs: list[SweepRun]
    jobs: int
    store: LedgerStore
    portfolio: PortfolioProjection  # the tracked portfolio, saved after the last run
    data_report: GapReport  # the candles every run read, with their gaps (under --gaps allow)


@dataclass(frozen=True, kw_only=True)
class _Plan:
    axes: list[GridAxis]
    prepared: list[tuple[dict[str, str], PreparedBacktest]]
    candles: Candles
    data_report: GapReport
    jobs: int


@dataclass(frozen=True, kw_only=True)
class SweepTask:
    """One combination as the parent hands it to a worker."""

    request: BacktestRequest
    run_id: UUID
    halted: bool
    config_hash: str


@dataclass(frozen=True, kw_only=True)
class EncodedChunk:
    """One atomic append of a run, chain-encoded: the store's rows and the heads around them."""

    rows: list[Row]
    head_from: ChainHead
    head_to: ChainHead


@dataclass(frozen=True, kw_only=True)
class EncodedRun:
    """A finished run as a worker sends it: its chunks, encoded, and its own projection."""

    run_id: UUID
    chunks: list[EncodedChunk]
    events: int
    view: RunView  # the engine's fold of exactly these events


def jobs_default() -> int:
    """Return the default number of worker processes: one per CPU."""
    return os.cpu_count() or 1


Worker = Callable[[SweepTask], EncodedRun]


def run_sweep(
    request: SweepRequest,
    progress: Callable[[int, int], None] | None = None,
    *,
    worker: Worker | None = None,
) -> SweepResult:
    """Validate the whole sweep, then run every combination into the ledger.

    ``progress(done, total)`` is called as runs reach the ledger. ``worker``: what a worker
    process runs per combination (default ``run_combination``; a module-level function, as
    worker processes import it by name).

    Raises:
        BadInputError: (and subclasses) a bad grid, option, data file or combination; the
            ledger was not touched.
        SweepRunError: a combination failed in its worker; the runs before it were written.
    """
    if request.jobs != 1:
        _start_workers_server()  # its imports overlap the validation below
    plan = _plan(request)
    store = open_ledger(request.base.ledger_url, create=True)
    halted = ledger_halted(store)
    runs: list[SweepRun] = []
    taken: set[UUID] = set()
    for values, prepared in plan.prepared:
        ids = SeededIds(prepared.spec.seed)
        run_id = free_run_id(store, ids, prepared.spec.config_hash, taken)
        taken.add(run_id)
        runs.append(SweepRun(values=values, request=prepared.request, run_id=run_id))
    total = len(runs)
    if progress is not None:
        progress(0, total)
    # The tracked portfolio takes each written run's own projection (the engine folded the
    # events it wrote; adopt_run checks they are the log's next seqs) and is saved once, at
    # the end; another writer's events in between are folded from the store instead.
    tracker = ProjectionRunner(store, store, PortfolioProjection())
    tracker.load()
    written = _written_runs(store, runs, plan, halted, worker or run_combination)
    for done, (view, seqs, events) in enumerate(written, start=1):
        if seqs is None or not adopt_run(tracker, view, seqs, events):
            tracker.catch_up(save=False)
        if progress is not None:
            progress(done, total)
    tracker.save()
    projection = tracker.projection
    if not isinstance(projection, PortfolioProjection):  # the runner holds what it was given
        msg = "the sweep's tracked projection is not the portfolio"
        raise TypeError(msg)
    return SweepResult(
        axes=plan.axes,
        runs=runs,
        jobs=plan.jobs,
        store=store,
        portfolio=projection,
        data_report=plan.data_report,
    )


def _written_runs(
    store: LedgerStore, runs: list[SweepRun], plan: _Plan, halted: bool, worker: Worker
) -> Iterator[tuple[RunView, tuple[int, int] | None, int]]:
    # Yields each run's projection, its seqs and event count once its events are in the
    # ledger, in grid order.
    if plan.jobs == 1:
        for run, (_, prepared) in zip(runs, plan.prepared, strict=True):
            buffer = RunBuffer()
            try:
                result = execute_backtest(prepared, buffer, run_id=run.run_id, halted=halted)
            except BadInputError:
                raise  # validated before dispatch: if one still happens, it stays what it is
            except Exception as e:
                raise _failure(run, e) from e
            seqs = [seq for chunk in buffer.chunks for seq in store.append(chunk)]
            yield result.view, (seqs[0], seqs[-1]) if seqs else None, len(seqs)
        return
    tasks = [
        SweepTask(request=r.request, run_id=r.run_id, halted=halted, config_hash=p.spec.config_hash)
        for r, (_, p) in zip(runs, plan.prepared, strict=True)
    ]
    for encoded in _run_in_workers(tasks, plan, runs, worker):
        yield encoded.view, _write(store, encoded), encoded.events


def _plan(request: SweepRequest) -> _Plan:
    base = request.base
    axes = parse_grid(request.grid, base.params if request.fixed is None else request.fixed)
    jobs = jobs_default() if request.jobs is None else request.jobs
    if not 1 <= jobs <= JOBS_MAX:
        msg = f"--jobs: {jobs} is out of range; use a whole number from 1 to {JOBS_MAX}"
        raise ParameterError(msg)
    candles = request_candles(base)  # refuses gaps unless the policy allows them
    data_report = gap_report(request_data_path(base), candles)
    options = " ".join(axis.option for axis in axes)
    prepared: list[tuple[dict[str, str], PreparedBacktest]] = []
    for values in combinations(axes):
        combination = replace(base, params={**base.params, **values})
        try:
            prepared.append((values, prepare_backtest(combination, candles=candles)))
        except BadInputError as e:
            msg = f"{options}: the combination {describe(values)} is refused: {e}"
            raise ParameterError(msg) from e
    return _Plan(
        axes=axes,
        prepared=prepared,
        candles=candles,
        data_report=data_report,
        jobs=min(jobs, len(prepared)),
    )


def _start_workers_server() -> None:
    # The server imports this module (and with it the engine) once; every worker forks from it.
    # "__main__" too: each worker would otherwise re-import the parent's main module (the
    # `tradeledger` script imports the whole CLI: ccxt, duckdb, rich), once per worker.
    # A script calling run_sweep must guard its top level with `if __name__ == "__main__":`.
    # The rest are what a first run would import lazily (anyio's asyncio backend, the strategy
    # registry's modules, numpy.ma): 0.1 s of each worker's first run (the server ignores a
    # module that does not import).
    forkserver.set_forkserver_preload(["__main__", __name__, *_WARM_MODULES])
    forkserver.ensure_running()


def _run_in_workers(
    tasks: list[SweepTask], plan: _Plan, runs: list[SweepRun], worker: Worker
) -> Iterator[EncodedRun]:
    context = multiprocessing.get_context("forkserver")
    _start_workers_server()  # started already, unless --jobs was 1 and then capped
    with context.Pool(plan.jobs, initializer=_worker_init, initargs=(plan.candles,)) as pool:
        results = pool.imap(worker, tasks)
        for run in runs:
            try:
                encoded: EncodedRun = next(results)
            except BadInputError:
                raise  # validated before dispatch: if one still happens, it stays what it is
            except Exception as e:
                raise _failure(run, e) from e
            if encoded.run_id != run.run_id:
                msg = f"a worker returned run {encoded.run_id} where {run.run_id} was expected"
                raise InvariantViolationError(msg)
            yield encoded


def _failure(run: SweepRun, error: Exception) -> SweepRunError:
    detail = str(error) if isinstance(error, LedgerError) else f"{type(error).__name__}: {error}"
    msg = (
        f"sweep combination {describe(run.values)} (run {run.run_id}) failed, so it and the "
        f"combinations after it were not written: {detail}"
    )
    return SweepRunError(msg)


def _write(store: LedgerStore, encoded: EncodedRun) -> tuple[int, int] | None:
    # The worker's rows go in as they are, chunk by chunk; the store checks that each chunk
    # continues the run's committed chain (the worker linked it after the same head). Returns
    # the first and last seq written.
    seqs: list[int] = []
    for chunk in encoded.chunks:
        seqs += store.append_encoded(
            encoded.run_id, chunk.rows, head_from=chunk.head_from, head_to=chunk.head_to
        )
    return (seqs[0], seqs[-1]) if seqs else None


# -- worker processes ------------------------------------------------------------------------

_WORKER_CANDLES: list[Candles] = []


def _worker_init(candles: Candles) -> None:
    # Each worker receives the parent's validated candles once instead of re-reading the file.
    _WORKER_CANDLES[:] = [candles]


def run_combination(task: SweepTask) -> EncodedRun:
    """Run one combination in a worker process; return its events chain-encoded, by chunk."""
    prepared = prepare_backtest(task.request, candles=_WORKER_CANDLES[0])
    if prepared.spec.config_hash != task.config_hash:
        msg = f"run {task.run_id}: the worker's inputs digest differs from the parent's"
        raise InvariantViolationError(msg)
    buffer = RunBuffer()
    result = execute_backtest(prepared, buffer, run_id=task.run_id, halted=task.halted)
    # The run's id was free, so its chain starts at genesis; every event a backtest writes
    # belongs to its run. The rows are what LedgerStore.append would build (encode_link).
    head = ChainHead(n=0, hash=GENESIS_HASH)
    digest = bytes.fromhex(head.hash)
    run_hex = task.run_id.hex
    chunks: list[EncodedChunk] = []
    for events in buffer.chunks:
        start = head
        rows: list[Row] = []
        for event in events:
            if event.run_id != task.run_id:
                msg = f"run {task.run_id} wrote an event of run {event.run_id}"
                raise InvariantViolationError(msg)
            n = head.n + 1
            topic, stream, state, digest, hex_digest = codec.encode_link(event, n, head.hash, digest, run_hex)
            rows.append((event.originator_id, stream, event.originator_version, topic, state))
            head = ChainHead(n=n, hash=hex_digest)
        chunks.append(EncodedChunk(rows=rows, head_from=start, head_to=head))
    return EncodedRun(run_id=task.run_id, chunks=chunks, events=head.n, view=result.view)
