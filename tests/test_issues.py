"""Issues in the database: stored from files, exported unchanged, frozen once approved."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlmodel import Session

from mailer import clock, editorial, events, issuefile, issues
from mailer.models import EventAudience, Issue, IssueStatus, Publication, SlotStatus
from tests.outbox_fixtures import APPROVER, EDITOR, SETTINGS, drafted, staff_accounts
from tests.rendering_fixtures import DATA, ZONE, definition, renderer


def _import(session: Session, name: str = "bulletin.md") -> int:
    issue = drafted(session, name)
    assert issue.id is not None
    return issue.id


def _save(session: Session, path: Path, issue_id: int | None = None) -> Issue:
    staff_accounts(session)
    document = issuefile.read(path, ZONE)
    return editorial.save(session, document, issue_id=issue_id, editor=EDITOR, settings=SETTINGS)


def _approve(session: Session, issue_id: int) -> editorial.Approval:
    issue = issues.get(session, issue_id)
    return editorial.approve(
        session,
        issue_id,
        approver=APPROVER,
        renderer=renderer(),
        definition=definition(issue.publication),
        settings=SETTINGS,
    )


@pytest.mark.parametrize("name", ["bulletin.md", "newsletter.md"])
def test_an_imported_issue_exports_exactly_as_it_was_read(session: Session, name: str) -> None:
    issue_id = _import(session, name)
    exported = issuefile.dump(issues.document(session, issues.get(session, issue_id)), ZONE)
    assert issuefile.parse(exported, ZONE) == issuefile.read(DATA / name, ZONE)


def test_a_slot_holds_one_issue_and_its_number_comes_from_the_slot(
    session: Session, tmp_path: Path
) -> None:
    _import(session)  # bulletin 2027/05, Thursday 4 March 2027
    text = (DATA / "bulletin.md").read_text(encoding="utf-8").replace("number: 2027/05\n", "")
    unnumbered = tmp_path / "next.md"
    unnumbered.write_text(text, encoding="utf-8")
    with pytest.raises(editorial.SlotError, match="2027/05 at Thu 4 Mar 2027 09:30 already has"):
        _save(session, unnumbered)
    moved = tmp_path / "moved.md"
    moved.write_text(text.replace("2027-03-04T09:30:00+00:00", "2027-03-18T09:30:00+00:00"))
    assert _save(session, moved).number == "2027/06"
    assert issues.next_number(session, Publication.NEWSLETTER, 2027) == "2027/01"


def test_a_draft_can_be_replaced_but_not_by_another_publication(session: Session) -> None:
    issue_id = _import(session)
    _save(session, DATA / "bulletin.md", issue_id=issue_id)
    with pytest.raises(issues.IssueError, match="is a bulletin; the file is a newsletter"):
        _save(session, DATA / "newsletter.md", issue_id=issue_id)


def test_status_moves_only_along_the_allowed_paths(session: Session) -> None:
    issue = issues.get(session, _import(session))
    with pytest.raises(issues.IssueStateError, match="cannot become sending"):
        issues.transition(session, issue, IssueStatus.SENDING)
    rendered = renderer().render(
        issues.content(session, issue, ZONE), definition(issue.publication)
    )
    issues.freeze(session, issue, rendered, approver=APPROVER)
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
    issues.freeze(session, issue, rendered, approver=APPROVER)
    session.commit()
    # Content changes are refused...
    with pytest.raises(issues.IssueStateError, match="only a draft can be edited"):
        _save(session, DATA / "bulletin.md", issue_id=issue.id)
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
    titles = [e.title for e in issues.content(session, issue, ZONE).events]
    assert titles == ["On the day", "Chief executives only", "Last day in the window"]
    newsletter = issues.get(session, _import(session, "newsletter.md"))  # 18 March 2027
    titles = [e.title for e in issues.content(session, newsletter, ZONE).events]
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


def test_an_unscheduled_issue_is_numbered_after_every_slot_of_the_year(session: Session) -> None:
    doc = dataclasses.replace(issuefile.read(DATA / "bulletin.md", ZONE), number="", slot_at=None)
    staff_accounts(session)
    with clock.frozen(datetime(2028, 1, 5, tzinfo=UTC)):
        issue = editorial.save(session, doc, editor=EDITOR, settings=SETTINGS)
    assert (issue.number, issue.slot_at) == ("2028/23", None)  # the rhythm holds 01 to 22
    assert issues.slot_label(None, ZONE) == "-"


def test_a_missed_issue_can_be_reopened_and_approved_again(session: Session) -> None:
    issue_id = _import(session)
    assert _approve(session, issue_id).slot is not None  # scheduled for its slot
    issue = issues.get(session, issue_id)
    slot = editorial._own_slot(session, issue)
    assert slot is not None
    issues.transition(session, issue, IssueStatus.MISSED)
    slot.status = SlotStatus.MISSED
    issues.reopen(session, issue)
    assert issue.status is IssueStatus.DRAFT
    again = _approve(session, issue_id)
    assert again.slot is None and "send it now with `mailer send" in again.note
    assert issues.get(session, issue_id).status is IssueStatus.APPROVED
