"""The ledger's marks, read without Redis: what a stored value says about a step."""

from __future__ import annotations

import time

import pytest

from worker.attach.ledger import Ledger, StepState


@pytest.mark.parametrize(
    ("value", "state"),
    [
        ("done:1764590000.123", StepState.DONE),
        ("pending:1764590000.123", StepState.PENDING),
        (None, StepState.NOT_STARTED),
        ("", StepState.NOT_STARTED),
        ("garbage", StepState.NOT_STARTED),
    ],
)
def test_a_stored_value_reads_as_a_state(value: str | None, state: StepState) -> None:
    record = {} if value is None else {"note": value}
    assert Ledger.state(record, "note") is state


def test_marks_carry_the_time_they_were_made() -> None:
    before = time.time()
    pending, done = Ledger.pending(), Ledger.done()
    after = time.time()
    assert Ledger.state({"x": pending}, "x") is StepState.PENDING
    assert Ledger.state({"x": done}, "x") is StepState.DONE
    for mark in (pending, done):
        assert before - 0.001 <= float(mark.partition(":")[2]) <= after + 0.001


def test_the_record_key_names_the_ticket_and_the_session() -> None:
    assert Ledger.key("zendesk:7", "s-1") == "replay-attach:attachment:zendesk:7:s-1"
