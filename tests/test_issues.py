"""Issues in the database: stored from files, exported unchanged, frozen once approved."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlmodel import Session

from mailer import clock, events, issuefile, issues
from mailer.models import EventAudience, IssueStatus, Publication
from tests.rendering_fixtures import DATA, definition, renderer


def _import(session: Session, name: str = "bulletin.md") -> int:
    issue = issues.import_file(session, DATA / name, editor="editor@lepnetwork.example")
    session.commit()
    assert issue.id is not None
    return issue.id


@pytest.mark.parametrize("name", ["bulletin.md", "newsletter.md"])
def test_an_imported_issue_exports_exactly_as_it_was_read(session: Session, name: str) -> None:
    issue_id = _import(session, name)
    exported = issuefile.dump(issues.document(session, issues.get(session, issue_id)))
    assert issuefile.parse(exported) == issuefile.read(DATA / name)


def test_numbers_are_given_in_turn_and_never_twice(session: Session, tmp_path: Path) -> None:
    _import(session)  # bulletin 2027/05
    text = (DATA / "bulletin.md").read_text(encoding="utf-8").replace("number: 2027/05\n", "")
    unnumbered = tmp_path / "next.md"
    unnumbered.write_text(text, encoding="utf-8")
    issue = issues.import_file(session, unnumbered)
    assert issue.number == "2027/06"
    with pytest.raises(issues.IssueError, match="bulletin 2027/05 already exists"):
        issues.import_file(session, DATA / "bulletin.md")
    assert issues.next_number(session, Publication.NEWSLETTER, 2027) == "2027/01"


def test_a_draft_can_be_replaced_but_not_by_another_publication(session: Session) -> None:
    issue_id = _import(session)
    issues.import_file(session, DATA / "bulletin.md", issue_id=issue_id)
    with pytest.raises(issues.IssueError, match="is a bulletin; the file is a newsletter"):
        issues.import_file(session, DATA / "newsletter.md", issue_id=issue_id)


def test_status_moves_only_along_the_allowed_paths(session: Session) -> None:
    issue = issues.get(session, _import(session))
    with pytest.raises(issues.IssueStateError, match="cannot become sending"):
        issues.transition(session, issue, IssueStatus.SENDING)
    rendered = renderer().render(issues.content(session, issue), definition(issue.publication))
    issues.approve(session, issue, rendered, approver="approver@lepnetwork.example")
    assert issue.status is IssueStatus.APPROVED
    issues.transition(session, issue, IssueStatus.SCHEDULED)
    issues.transition(session, issue, IssueStatus.SENDING)
    with pytest.raises(issues.IssueStateError):
        issues.cancel(session, issue)
    issues.transition(session, issue, IssueStatus.SENT)
    with pytest.raises(issues.IssueStateError, match="sent: it cannot become"):
        issues.reopen(session, issue)


def test_approval_freezes_content_and_rendering(session: Session) -> None:
    issue = issues.get(session, _import(session))
    definition_ = definition(issue.publication)
    rendered = issues.rendering(session, issue, renderer(), definition_)
    issues.approve(session, issue, rendered)
    session.commit()
    # Content changes are refused...
    with pytest.raises(issues.IssueStateError, match="only a draft can be edited"):
        issues.import_file(session, DATA / "bulletin.md", issue_id=issue.id)
    # ...and the rendering no longer changes, even when the diary does.
    events.add(session, date(2027, 3, 11), "A new event after approval")
    frozen = issues.rendering(session, issue, renderer(), definition_)
    assert frozen.html == rendered.html
    assert frozen.text == rendered.text
    assert frozen.slots == rendered.slots
    assert "A new event after approval" not in frozen.html
    # Reopening makes it editable again and drops the frozen rendering.
    issues.reopen(session, issue)
    assert issue.status is IssueStatus.DRAFT
    assert issue.rendered_html is None
    fresh = issues.rendering(session, issue, renderer(), definition_)
    assert "A new event after approval" in fresh.html


def test_an_issue_carries_six_weeks_of_events_for_its_audience(session: Session) -> None:
    issue = issues.get(session, _import(session))  # slot: Thursday 4 March 2027
    events.add(session, date(2027, 3, 3), "Yesterday's event")
    events.add(session, date(2027, 3, 4), "On the day", audience=EventAudience.BOTH)
    events.add(session, date(2027, 4, 14), "Last day in the window")
    events.add(session, date(2027, 4, 15), "Six weeks on: too late")
    events.add(session, date(2027, 3, 20), "Chief executives only", audience=EventAudience.INTERNAL)
    events.add(session, date(2027, 3, 21), "For stakeholders", audience=EventAudience.EXTERNAL)
    titles = [e.title for e in issues.content(session, issue).events]
    assert titles == ["On the day", "Chief executives only", "Last day in the window"]
    newsletter = issues.get(session, _import(session, "newsletter.md"))  # 18 March 2027
    titles = [e.title for e in issues.content(session, newsletter).events]
    assert titles == ["For stakeholders", "Last day in the window", "Six weeks on: too late"]


def test_cancel_and_listing(session: Session) -> None:
    bulletin = issues.get(session, _import(session))
    newsletter = issues.get(session, _import(session, "newsletter.md"))
    issues.cancel(session, bulletin)
    assert [i.id for i in issues.listing(session)] == [newsletter.id, bulletin.id]
    assert [i.id for i in issues.listing(session, status=IssueStatus.CANCELLED)] == [bulletin.id]
    assert [i.id for i in issues.listing(session, Publication.NEWSLETTER)] == [newsletter.id]
    with pytest.raises(issues.IssueError, match="there is no issue 999"):
        issues.get(session, 999)


def test_an_unplanned_issue_is_numbered_in_the_current_year(session: Session) -> None:
    doc = dataclasses.replace(issuefile.read(DATA / "bulletin.md"), number="", slot_at=None)
    with clock.frozen(datetime(2028, 1, 5, tzinfo=UTC)):
        issue = issues.save_document(session, doc)
    assert issue.number == "2028/01"
    assert issues.slot_label(None) == "-"


def test_a_missed_issue_can_be_reopened_and_approved_again(session: Session) -> None:
    issue = issues.get(session, _import(session))
    rendered = issues.rendering(session, issue, renderer(), definition(issue.publication))
    issues.approve(session, issue, rendered)
    issues.transition(session, issue, IssueStatus.MISSED)
    issues.reopen(session, issue)
    assert issue.status is IssueStatus.DRAFT
    issues.approve(
        session, issue, issues.rendering(session, issue, renderer(), definition(issue.publication))
    )
    assert issues.get(session, issue.id or 0).status is IssueStatus.APPROVED
