"""RunBuffer: the EventStore port a sweep worker runs into, keeping each append as one chunk."""

from __future__ import annotations

import dataclasses
from uuid import UUID

import pytest

from factories import a_run_started
from ledger.application.run_buffer import RunBuffer
from ledger.domain.errors import ConcurrencyConflictError
from ledger.ports import EventStore


def test_appends_are_kept_as_chunks_in_order_and_read_back() -> None:
    buffer: EventStore = RunBuffer()
    first, second = a_run_started(run_id=UUID(int=1)), a_run_started(run_id=UUID(int=2))
    assert buffer.append([first]) == [1]
    assert buffer.append([second]) == [2]
    assert buffer.append([]) == []
    assert isinstance(buffer, RunBuffer)
    assert buffer.chunks == [[first], [second]]
    assert buffer.read_log(0, 10) == [(1, first), (2, second)]
    assert buffer.read_log(1, 10) == [(2, second)]
    assert buffer.max_seq() == 2
    assert buffer.read_stream(first.originator_id) == [first]
    assert buffer.read_stream(UUID(int=3)) == []


def test_an_append_that_skips_a_stream_version_keeps_nothing() -> None:
    buffer = RunBuffer()
    started = a_run_started()
    buffer.append([started])
    again = dataclasses.replace(started, originator_version=1)  # version 1 is taken
    with pytest.raises(ConcurrencyConflictError, match="expects version 2, got 1"):
        buffer.append([again])
    assert buffer.chunks == [[started]]
    assert buffer.events == 1
