"""The ticket value: its written form (``zendesk:123``, ``jira:BUG-42``) is built and read in
one place, and stays the form stored in Redis and shown in logs and metrics."""

from __future__ import annotations

from worker.attach.events import BugReport
from worker.attach.tickets import Ticket


def test_a_ticket_is_written_as_system_colon_id() -> None:
    assert str(Ticket.zendesk(123)) == "zendesk:123"
    assert str(Ticket.jira("bug-42")) == "jira:BUG-42"


def test_a_written_ticket_reads_back_as_the_same_ticket() -> None:
    for ticket in (Ticket.zendesk(123), Ticket.jira("ABC_1-7")):
        assert Ticket.parse(str(ticket)) == ticket


def test_a_name_that_is_no_ticket_reads_with_empty_parts() -> None:
    assert Ticket.parse("") == Ticket("", "")
    assert Ticket.parse("zendesk") == Ticket("zendesk", "")


def test_a_ticket_is_labelled_as_a_support_engineer_names_it() -> None:
    assert Ticket.zendesk(123).label == "Zendesk ticket 123"
    assert Ticket.jira("BUG-42").label == "Jira issue BUG-42"


def test_an_events_target_is_its_tickets_written_form() -> None:
    zendesk = BugReport(session_id="s-1", zendesk_ticket=123)
    jira = BugReport(session_id="s-1", jira_issue="bug-42")
    assert (zendesk.target, zendesk.target_label) == ("zendesk:123", "Zendesk ticket 123")
    assert (jira.target, jira.target_label) == ("jira:BUG-42", "Jira issue BUG-42")
    assert jira.ticket == Ticket.jira("BUG-42")
