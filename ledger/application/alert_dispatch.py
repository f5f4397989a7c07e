"""Deliver alerts from the log to every notifier, resumably, without ever losing one.

The dispatcher reads the log after its saved position (checkpoint ``alerts``), folds each event
through ``AlertFeed`` and sends each alert to each notifier, in log order per notifier. A
failed delivery goes to that notifier's retry queue; the alerts after it queue behind it, so
order holds. Queues retry with capped exponential backoff (or the channel's ``retry_after``)
and are saved with the position and the feed's state in one checkpoint, so a restart retries
them. When a queue is full, reading stops (the log itself is the buffer) instead of dropping.

Delivery is exactly once across clean restarts. A crash after a send and before its save
repeats that one event's alerts: the checkpoint is saved after every event that raised any.
The dispatcher only reads the ledger and its own checkpoint; it never appends events.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import anyio

from ledger.application.alert_feed import AlertFeed, dumps
from ledger.application.alerts import Alert, Notifier, NotifierError, NotifierRateLimited, alert_from_json
from ledger.ports import CheckpointStore, EventLogReader

CHECKPOINT_NAME = "alerts"
STATE_VERSION = 1  # bump when the state layout changes; the position is kept, the state is not
logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DispatchPolicy:
    """The dispatcher's limits; every loop and queue it runs is bounded by these."""

    page_size: int = 100  # events read per step
    pending_max: int = 1000  # retry queue length per notifier before reading pauses
    retries_per_step: int = 50  # queued deliveries tried per notifier per step
    backoff_s_initial: float = 1.0
    backoff_s_max: float = 300.0
    send_timeout_s: float = 15.0  # a hung channel holds a step up at most this long
    from_beginning: bool = False  # with no checkpoint: alert on the whole history, not from now
    alert_backtests: bool = False


@dataclass(frozen=True, kw_only=True)
class DispatchReport:
    """What one ``step`` did."""

    events: int  # events read
    alerts: int  # alerts raised by them
    sent: int  # deliveries (alert x notifier) that succeeded, retries included
    failed: int  # deliveries that failed and stay queued
    pending: int  # deliveries queued for retry after this step
    blocked: bool  # reading paused because a retry queue is full
    last_seq: int
    errors: tuple[str, ...] = ()


@dataclass(kw_only=True)
class _Pending:
    alert: Alert
    attempts: int
    due_at: float = -math.inf  # monotonic time; not saved, so a restart retries at once


@dataclass(kw_only=True)
class _Step:
    events: int = 0
    alerts: int = 0
    sent: int = 0
    errors: list[str] = field(default_factory=list)


class AlertDispatcher:
    """Keep notifiers current with the log's alerts, exactly once and resumably."""

    def __init__(
        self,
        reader: EventLogReader,
        checkpoints: CheckpointStore,
        notifiers: Mapping[str, Notifier],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        policy: DispatchPolicy | None = None,
    ) -> None:
        """Bind the log, the checkpoint store and the notifiers (by stable name).

        Args:
            reader: the ledger's log.
            checkpoints: where position, feed state and retry queues are saved together.
            notifiers: each notifier under a name that stays the same across restarts (its
                retry queue is saved under it; queues of names no longer given are kept).
            monotonic: the clock for backoff deadlines.
            policy: limits and start-up choices (defaults: ``DispatchPolicy()``).
        """
        self._reader = reader
        self._checkpoints = checkpoints
        self._notifiers = dict(notifiers)
        self._monotonic = monotonic
        self._policy = DispatchPolicy() if policy is None else policy
        self._feed = AlertFeed(alert_backtests=self._policy.alert_backtests)
        self._pending: dict[str, deque[_Pending]] = {name: deque() for name in self._notifiers}
        self.last_seq = 0
        self._saved_seq: int | None = None
        self._loaded = False

    def _load(self) -> None:
        self._loaded = True
        saved = self._checkpoints.load_checkpoint(CHECKPOINT_NAME)
        if saved is None:
            self.last_seq = 0 if self._policy.from_beginning else self._reader.max_seq()
            self._save()  # pin the starting position, so a restart cannot skip what follows
            return
        version, self.last_seq, raw = saved
        self._saved_seq = self.last_seq
        if version != STATE_VERSION:
            logger.warning("alert state version %s is not %s: kept the position only", version, STATE_VERSION)
            return
        state = json.loads(raw)
        self._feed.restore(state["feed"])
        for name, entries in state["pending"].items():
            queue = self._pending.setdefault(name, deque())
            queue.extend(
                _Pending(alert=alert_from_json(e["alert"]), attempts=int(e["attempts"])) for e in entries
            )

    def _save(self) -> None:
        state = {
            "feed": self._feed.snapshot(),
            "pending": {
                name: [{"alert": p.alert.to_json(), "attempts": p.attempts} for p in queue]
                for name, queue in self._pending.items()
            },
        }
        self._checkpoints.save_checkpoint(
            CHECKPOINT_NAME, STATE_VERSION, self.last_seq, dumps(state), expected_seq=self._saved_seq
        )
        self._saved_seq = self.last_seq

    def pending(self) -> int:
        """Return how many deliveries wait for a retry."""
        return sum(len(queue) for queue in self._pending.values())

    async def step(self) -> DispatchReport:
        """Retry what is due, then deliver the alerts of one page of new events, and save.

        Touches no notifier when nothing is new and no retry is due.
        """
        if not self._loaded:
            self._load()
        done = _Step()
        retried = 0
        for name in self._notifiers:
            retried += await self._retry(name, done)
        blocked = self._full()
        if not blocked and self._reader.max_seq() > self.last_seq:
            blocked = await self._read_page(done)
        if retried and done.events == 0:
            self._save()  # only the queues changed
        return DispatchReport(
            events=done.events,
            alerts=done.alerts,
            sent=done.sent,
            failed=len(done.errors),
            pending=self.pending(),
            blocked=blocked,
            last_seq=self.last_seq,
            errors=tuple(done.errors),
        )

    async def run(self, stop: Callable[[], bool], poll_s: float = 1.0) -> None:
        """Step until ``stop()`` is true, sleeping ``poll_s`` (or less, when a retry falls due)."""
        while not stop():
            report = await self.step()
            if report.events < self._policy.page_size or report.blocked:
                await anyio.sleep(self._sleep_s(poll_s))

    def _sleep_s(self, poll_s: float) -> float:
        heads = [
            queue[0].due_at for name, queue in self._pending.items() if queue and name in self._notifiers
        ]
        if not heads:
            return poll_s
        return max(0.0, min(poll_s, min(heads) - self._monotonic()))

    def _full(self) -> bool:
        return any(len(self._pending[name]) >= self._policy.pending_max for name in self._notifiers)

    async def _read_page(self, done: _Step) -> bool:
        for seq, event in self._reader.read_log(self.last_seq, self._policy.page_size):
            if self._full():
                self._save()
                return True
            alerts = self._feed.apply(seq, event)
            self.last_seq = seq
            done.events += 1
            done.alerts += len(alerts)
            for alert in alerts:
                for name in self._notifiers:
                    await self._deliver_new(name, alert, done)
            if alerts:
                self._save()
        if done.events and self._saved_seq != self.last_seq:
            self._save()
        return False

    async def _deliver_new(self, name: str, alert: Alert, done: _Step) -> None:
        queue = self._pending[name]
        if queue:
            queue.append(_Pending(alert=alert, attempts=0))  # behind the failed one: order holds
            return
        delay_s = await self._attempt(name, alert, 1, done)
        if delay_s is not None:
            queue.append(_Pending(alert=alert, attempts=1, due_at=self._monotonic() + delay_s))

    async def _retry(self, name: str, done: _Step) -> int:
        queue = self._pending[name]
        tried = 0
        while queue and tried < self._policy.retries_per_step and queue[0].due_at <= self._monotonic():
            head = queue[0]
            tried += 1
            delay_s = await self._attempt(name, head.alert, head.attempts + 1, done)
            if delay_s is not None:
                head.attempts += 1
                head.due_at = self._monotonic() + delay_s
                break
            queue.popleft()
        return tried

    async def _attempt(self, name: str, alert: Alert, attempt: int, done: _Step) -> float | None:
        # Return None when delivered, else the seconds to wait before the next attempt.
        try:
            with anyio.fail_after(self._policy.send_timeout_s):
                await self._notifiers[name].send(alert)
        except NotifierRateLimited as e:
            delay_s = e.retry_after_s
            reason = str(e)
        except (NotifierError, TimeoutError) as e:
            delay_s = min(self._policy.backoff_s_max, self._policy.backoff_s_initial * 2 ** (attempt - 1))
            reason = str(e) or f"timed out after {self._policy.send_timeout_s:g} s"
        else:
            done.sent += 1
            return None
        message = f"{name}: seq {alert.seq} {alert.kind.value} attempt {attempt} failed: {reason}"
        done.errors.append(message)
        logger.warning("%s; retry in %.1f s", message, delay_s)
        return delay_s
