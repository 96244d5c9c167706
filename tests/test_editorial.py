"""The editorial door attacked through its front ends: the CLI as a real process, the console
over HTTP, and the calendar's rhythm under any cadence and time zone.

The CLI tests run on SQLite only (each `mailer` process costs one to three seconds and the rules
live in one database-agnostic module); the console and function tests run on both databases.
"""

from __future__ import annotations

import getpass
import html
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import (
    calendar,
    clock,
    content,
    db,
    editorial,
    importer,
    issuefile,
    issues,
    organisations,
    staff,
)
from mailer import settings as mailer_settings
from mailer.models import (
    AuditEntry,
    Contact,
    Issue,
    IssueStatus,
    Publication,
    Slot,
    SlotStatus,
    StaffRole,
)
from mailer.rendering import Renderer
from mailer.settings import BulletinCadence, NewsletterCadence
from mailer.transports import CaptureTransport
from mailer.web.app import create_app
from tests.helpers import cli, write_csv
from tests.outbox_fixtures import APPROVER, EDITOR, SETTINGS, drafted, staff_accounts
from tests.rendering_fixtures import DATA, NETWORK, WEB, definition, renderer
from tests.test_cli import run
from tests.web_fixtures import Site, build_site, csrf_of, login

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
BULLETIN_TEXT = (DATA / "bulletin.md").read_text(encoding="utf-8")


# -- helpers ---------------------------------------------------------------------------------


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


def _flat(text: str) -> str:
    """Output with Rich's line wrapping undone, for matching whole sentences."""
    return " ".join(text.split())


@contextmanager
def _database(db_url: str) -> Iterator[Session]:
    """A session on the database the CLI processes of a test write to."""
    engine = db.create_engine(db_url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            yield session
    finally:
        engine.dispose()


@pytest.fixture
def initialised(project: Path, db_url: str) -> Path:
    """The project after what `mailer init` does (schema, shipped lists), done in-process to
    spare a process; the four-eyes test runs the real `mailer init`."""
    engine = db.create_engine(db_url)
    try:
        db.init_schema(engine)
        with Session(engine) as session:
            organisations.load_lists(session, project / "lists")
            staff_accounts(
                session,
                ("a@lepnetwork.example", StaffRole.EDITOR),
                ("b@lepnetwork.example", StaffRole.APPROVER),
            )
            session.commit()
    finally:
        engine.dispose()
    return project


def _project_settings(project: Path) -> mailer_settings.Settings:
    return mailer_settings.load(project / "config.toml", environ={}).settings


def _front(text: str, **changes: str | None) -> str:
    """An issue file's text with front matter lines replaced (a None value drops the line)."""
    lines = text.split("\n")
    end = lines.index("---", 1)
    front = lines[1:end]
    for key, value in changes.items():
        front = [line for line in front if not line.startswith(f"{key}:")]
        if value is not None:
            front.append(f"{key}: {value}")
    return "\n".join(["---", *front, *lines[end:]])


def _rhythm(year: int, cadence: BulletinCadence, zone: ZoneInfo) -> list[tuple[str, datetime]]:
    """The year's bulletin slots as the calendar must number them: (number, send time)."""
    return [
        (f"{year}/{n:02d}", calendar.at(day, cadence.send_time, str(zone)))
        for n, day in enumerate(calendar.bulletin_dates(year, cadence), start=1)
    ]


def _nearest_two(year: int, around: datetime, cadence: BulletinCadence, zone: ZoneInfo) -> str:
    slots = _rhythm(year, cadence, zone)
    closest = sorted(sorted(slots, key=lambda s: abs(s[1] - around))[:2], key=lambda s: s[1])
    return ", ".join(f"{n} ({issues.slot_label(at, zone)})" for n, at in closest)


def _audit_entries(session: Session, action: str) -> list[AuditEntry]:
    return list(
        session.exec(
            select(AuditEntry).where(col(AuditEntry.action) == action).order_by(col(AuditEntry.id))
        )
    )


def _slot(session: Session, publication: Publication, number: str) -> Slot:
    return session.exec(
        select(Slot).where(col(Slot.publication) == publication, col(Slot.number) == number)
    ).one()


def _site_in(engine: Engine, tmp_path: Path, timezone: str | None = None) -> Site:
    """The console on a real database, its calendar in ``timezone`` when one is given."""
    site = build_site(engine, tmp_path)
    if timezone is None:
        return site
    chosen = site.config.settings.calendar.model_copy(update={"timezone": timezone})
    config = replace(
        site.config, settings=site.config.settings.model_copy(update={"calendar": chosen})
    )
    app = create_app(config, engine, transport=lambda: CaptureTransport(site.mail, engine))
    return replace(site, app=app, config=config)


def _signed_in(site: Site, role: str) -> TestClient:
    client = site.client()
    login(client, role)
    return client


def _approve_form(client: TestClient, issue_id: int, slot_id: str | None) -> str:
    """Post the console's approve form as the client's staff; the page it lands on."""
    token = csrf_of(client.get(f"/staff/issues/{issue_id}").text)
    data = {"csrf": token} if slot_id is None else {"csrf": token, "slot_id": slot_id}
    response = client.post(f"/staff/issues/{issue_id}/approve", data=data, follow_redirects=True)
    assert response.status_code == 200, response.text
    return html.unescape(response.text)


def _status(site: Site, issue_id: int) -> Issue:
    with Session(site.engine) as session:
        return issues.get(session, issue_id)


# -- 1. four eyes through the CLI ------------------------------------------------------------


@SQLITE_ONLY
def test_cli_four_eyes_the_editor_and_an_editor_account_cannot_approve(
    project: Path, db_url: str
) -> None:
    # Jo imports the bulletin and then tries to approve it: refused, it stays a draft. An
    # existing staff account with the editor role is refused too. Without --by the OS user
    # approves, is told so on stderr, and is the name in the audit log.
    _ok(cli(project, "init"))
    assert run("staff", "add", "jo@lepnetwork.example", "--role", "approver").exit_code == 0
    bulletin = str(DATA / "bulletin.md")  # tests/data/issues/bulletin.md
    created = _ok(cli(project, "issue", "import", bulletin, "--by", "jo@lepnetwork.example"))
    assert "Created issue 1: bulletin 2027/05" in created.stdout

    own = cli(project, "issue", "approve", "1", "--by", "jo@lepnetwork.example")
    assert own.returncode != 0
    assert "jo@lepnetwork.example edited issue 1 last" in _flat(own.stderr)
    assert "another approver must approve it" in _flat(own.stderr)
    assert "four eyes" in own.stderr
    with _database(db_url) as session:
        assert issues.get(session, 1).status is IssueStatus.DRAFT

    _ok(cli(project, "staff", "add", "x@lepnetwork.example", "--role", "editor"))
    editor = cli(project, "issue", "approve", "1", "--by", "x@lepnetwork.example")
    assert editor.returncode != 0
    assert "x@lepnetwork.example is an editor" in _flat(editor.stderr)
    assert "approver or admin role" in _flat(editor.stderr)
    with _database(db_url) as session:
        assert issues.get(session, 1).status is IssueStatus.DRAFT
        assert _audit_entries(session, "issue:approve") == []

    anonymous = _ok(cli(project, "issue", "approve", "1"))
    actor = f"{getpass.getuser()} (command line)"
    assert f"Approving as {actor}, the operating-system user" in _flat(anonymous.stderr)
    assert "--by EMAIL" in anonymous.stderr
    with _database(db_url) as session:
        issue = issues.get(session, 1)
        assert issue.status is IssueStatus.SCHEDULED
        assert issue.approved_by == actor
        (entry,) = _audit_entries(session, "issue:approve")
        assert (entry.actor, entry.target) == (actor, "issue 1")
        assert "scheduled for 2027/05" in entry.detail
        (made,) = _audit_entries(session, "issue:new")
        assert made.actor == "jo@lepnetwork.example"


@pytest.fixture(scope="module")
def approve_help(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`mailer issue approve --help`, run once (it needs no configuration)."""
    return _flat(_ok(cli(tmp_path_factory.mktemp("help"), "issue", "approve", "--help")).stdout)


def test_cli_approve_help_states_the_four_eyes_rule(approve_help: str) -> None:
    # `mailer issue approve --help` explains four eyes, the role an approver needs, and
    # that lint errors block.
    text = approve_help
    assert "Four eyes" in text
    assert "approver_may_be_editor = false" in text
    assert "approver or admin role" in text
    assert "Lint errors" in text


def test_cli_approve_help_names_the_config_section(approve_help: str) -> None:
    # The help must say where the setting lives: the [staff] section of config.toml.
    assert "approver_may_be_editor = false in the staff section of config.toml" in " ".join(
        approve_help.split()
    )


# -- 2. the untouched skeleton ---------------------------------------------------------------


@SQLITE_ONLY
def test_cli_the_untouched_skeleton_cannot_be_approved(
    initialised: Path, db_url: str, tmp_path: Path
) -> None:
    # `issue new bulletin > f` gives the next open slot's skeleton; imported by one person
    # and approved by another, it is still refused (exit 1) and every placeholder is named.
    project = initialised
    skeleton = _ok(cli(project, "issue", "new", "bulletin"))
    cadence = _project_settings(project).publications.bulletin
    year = clock.now().astimezone(LONDON).year
    upcoming = [
        (n, at)
        for n, at in _rhythm(year, cadence, LONDON) + _rhythm(year + 1, cadence, LONDON)
        if at > clock.now()
    ]
    number, send_at = upcoming[0]
    assert f"number: {number}" in skeleton.stdout
    assert send_at.astimezone(LONDON).isoformat() in skeleton.stdout
    draft = tmp_path / "f.md"
    draft.write_text(skeleton.stdout, encoding="utf-8")
    _ok(cli(project, "issue", "import", str(draft), "--by", "a@lepnetwork.example"))

    refused = cli(project, "issue", "approve", "1", "--by", "b@lepnetwork.example")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    out = _flat(refused.stdout)
    for where in (
        "the subject",
        "the preheader",
        "the item title 'Headline of the first item'",
        "the item title 'A LEP success story'",
        "the text of 'Headline of the first item'",
        "the text of 'A LEP success story'",
        "the picture of 'Headline of the first item' (https://images.example/photo.jpg)",
    ):
        assert f"{where} is still the new issue's placeholder" in out, where
    assert out.count("[placeholder]") == 7
    assert "lint errors: fix them, then approve" in _flat(refused.stderr)
    with _database(db_url) as session:
        issue = issues.get(session, 1)
        assert (issue.status, issue.number, issue.approved_by) == (IssueStatus.DRAFT, number, None)
        assert _audit_entries(session, "issue:approve") == []


# -- 3. slot binding through the CLI ---------------------------------------------------------


@SQLITE_ONLY
def test_cli_a_slot_time_must_be_an_open_slot_of_the_publication(
    initialised: Path, db_url: str, tmp_path: Path
) -> None:
    # Times that are no slot (a Friday in 2031, any day of August), a number that disagrees
    # with its slot, a newsletter while none is planned, and a slot already held are all
    # refused with the reason and the nearest open slots; a time that is an open slot gives
    # the issue that slot's number.
    project = initialised
    cadence = _project_settings(project).publications.bulletin

    friday = datetime(2031, 3, 7, 9, 30, tzinfo=LONDON)
    missed = cli(project, "issue", "new", "bulletin", "--slot", "2031-03-07T09:30")
    assert missed.returncode == 2
    said = _flat(missed.stderr)
    assert "there is no bulletin slot at Fri 7 Mar 2031 09:30" in said
    nearest = _nearest_two(2031, friday, cadence, LONDON)
    assert f"the nearest open bulletin slots: {nearest}" in said
    assert "2031/05 (Thu 6 Mar 2031 09:30)" in nearest  # the rhythm's Thursday before
    assert missed.stdout == ""

    august = cli(project, "issue", "new", "bulletin", "--slot", "2027-08-12T09:30")
    assert august.returncode == 2
    said = _flat(august.stderr)
    assert "there is no bulletin slot at Thu 12 Aug 2027 09:30" in said
    nearest = _nearest_two(2027, datetime(2027, 8, 12, 9, 30, tzinfo=LONDON), cadence, LONDON)
    assert f"the nearest open bulletin slots: {nearest}" in said
    assert all(f"{month} 2027" not in nearest for month in ("Aug", "Dec"))

    # The file's number 2027/06 against its slot, the time of 2027/05: refused naming both.
    disagreeing = tmp_path / "disagreeing.md"
    disagreeing.write_text(_front(BULLETIN_TEXT, number="2027/06"), encoding="utf-8")
    clash = cli(project, "issue", "import", str(disagreeing), "--by", EDITOR)
    assert clash.returncode == 2
    said = _flat(clash.stderr)
    assert "number 2027/06 does not match the slot at Thu 4 Mar 2027 09:30" in said
    assert "which is bulletin 2027/05" in said

    # No newsletter slot is planned yet: the refusal says how to plan one.
    newsletter = cli(project, "issue", "import", str(DATA / "newsletter.md"), "--by", EDITOR)
    assert newsletter.returncode == 2
    said = _flat(newsletter.stderr)
    assert "there is no newsletter slot at Thu 18 Mar 2027 10:00" in said
    assert "plan one with `mailer calendar add newsletter WHEN`" in said

    # A local time (no offset) that is the open slot 2027/06 gives the issue number 2027/06.
    bound = tmp_path / "bound.md"
    bound.write_text(_front(BULLETIN_TEXT, number=None, slot="2027-03-18T09:30"), "utf-8")
    created = _ok(cli(project, "issue", "import", str(bound), "--by", EDITOR))
    assert "Created issue 1: bulletin 2027/06" in created.stdout
    assert "slot Thu 18 Mar 2027 09:30" in created.stdout

    # A second issue for the same slot, even written with the slot's own number: refused.
    again = tmp_path / "again.md"
    again.write_text(_front(BULLETIN_TEXT, number="2027/06", slot="2027-03-18T09:30"), "utf-8")
    held = cli(project, "issue", "import", str(again), "--by", EDITOR)
    assert held.returncode == 2
    said = _flat(held.stderr)
    assert "the bulletin slot 2027/06 at Thu 18 Mar 2027 09:30 already has issue 1" in said
    assert (
        "the nearest open bulletin slots: 2027/05 (Thu 4 Mar 2027 09:30), "
        "2027/07 (Thu 1 Apr 2027 09:30)" in said
    )

    with _database(db_url) as session:
        found = session.exec(select(Issue)).all()
        assert [(i.number, i.slot_at) for i in found] == [
            ("2027/06", datetime(2027, 3, 18, 9, 30, tzinfo=UTC))
        ]


# -- 4. the console's approve form -----------------------------------------------------------


def test_console_approve_form_checks_the_chosen_slot(engine: Engine, tmp_path: Path) -> None:
    # The approver's slot choice: junk, a slot that does not exist, a newsletter slot, a
    # slot another issue holds and a skipped own slot each give a clear message and leave
    # the draft a draft; another open bulletin slot moves the issue there and schedules it.
    site = _site_in(engine, tmp_path)
    with Session(engine, expire_on_commit=False) as session:
        draft = drafted(session)  # bulletin 2027/05, by the editor
        assert draft.id is not None
        calendar.plan_newsletters(session, 2027, SETTINGS)
        newsletter_slot = session.exec(
            select(Slot).where(col(Slot.publication) == Publication.NEWSLETTER)
        ).first()
        assert newsletter_slot is not None
        other = editorial.save(
            session,
            issuefile.parse(_front(BULLETIN_TEXT, number="2027/06", slot=None), LONDON),
            editor=EDITOR,
            settings=SETTINGS,
        )
        held = _slot(session, Publication.BULLETIN, "2027/06")
        target = _slot(session, Publication.BULLETIN, "2027/07")
        session.commit()
    issue_id = draft.id
    approver = _signed_in(site, "approver")

    page = _approve_form(approver, issue_id, "abc")
    assert "Not approved: 'abc' is not a slot; choose one from the list." in page
    page = _approve_form(approver, issue_id, "987654")
    assert "Not approved: there is no slot 987654" in page
    page = _approve_form(approver, issue_id, str(newsletter_slot.id))
    assert (
        f"Not approved: slot {newsletter_slot.id} is a newsletter slot; issue {issue_id} is a "
        "bulletin: choose one of its own slots" in page
    )
    page = _approve_form(approver, issue_id, str(held.id))
    assert (
        f"the bulletin slot 2027/06 at Thu 18 Mar 2027 09:30 already has issue {other.id}" in page
    )
    assert _status(site, issue_id).status is IssueStatus.DRAFT

    with Session(engine) as session:
        own = _slot(session, Publication.BULLETIN, "2027/05")
        assert own.id is not None
        calendar.skip_slot(session, own.id, "conference week")
        session.commit()
    page = _approve_form(approver, issue_id, None)
    assert "Not approved: the slot of bulletin 2027/05 is skipped: choose an open slot" in page
    after = _status(site, issue_id)
    assert (after.status, after.number) == (IssueStatus.DRAFT, "2027/05")

    page = _approve_form(approver, issue_id, str(target.id))
    assert "Approved, scheduled for 2027/07 (Thu 1 Apr 2027 09:30)" in page
    moved = _status(site, issue_id)
    assert (moved.status, moved.number, moved.slot_at) == (
        IssueStatus.SCHEDULED,
        "2027/07",
        target.send_at,
    )
    assert moved.approved_by == APPROVER
    with Session(engine) as session:
        (entry,) = _audit_entries(session, "issue:approve")
        assert (entry.actor, entry.target) == (APPROVER, f"issue {issue_id}")
        (change,) = _audit_entries(session, "issue:slot")
        assert change.detail.startswith("2027/05 -> 2027/07")
        views = {(v.publication, v.number): v for v in calendar.year_view(session, 2027, SETTINGS)}
        assert views[Publication.BULLETIN, "2027/07"].issue_id == issue_id
        assert views[Publication.BULLETIN, "2027/05"].issue_id is None


def test_console_approver_who_edited_last_is_refused_until_another_approves(
    engine: Engine, tmp_path: Path
) -> None:
    # Extends tests/test_web.py: the editor drafts, the approver then edits it in the
    # console's editor and so becomes its last editor: the approver is refused, the admin
    # approves it.
    site = _site_in(engine, tmp_path)
    with Session(engine, expire_on_commit=False) as session:
        draft = drafted(session)
    assert draft.id is not None
    client = _signed_in(site, "approver")
    page = client.get(f"/staff/issues/{draft.id}")
    text = _front(BULLETIN_TEXT, preheader="Skills England's assessment and the spring conference")
    saved = client.post(
        f"/staff/issues/{draft.id}/raw", data={"csrf": csrf_of(page.text), "text": text}
    )
    assert saved.status_code == 303, saved.text
    with Session(engine) as session:
        assert issues.get(session, draft.id).last_edited_by == APPROVER
        (edit,) = _audit_entries(session, "issue:edit")
        assert edit.actor == APPROVER

    refused = _approve_form(client, draft.id, None)
    assert "Not approved: approver@lepnetwork.example edited issue" in refused
    assert "another approver must approve it" in refused
    assert _status(site, draft.id).status is IssueStatus.DRAFT

    accepted = _approve_form(_signed_in(site, "admin"), draft.id, None)
    assert "Approved, scheduled for 2027/05" in accepted
    done = _status(site, draft.id)
    assert (done.status, done.approved_by) == (IssueStatus.SCHEDULED, "admin@lepnetwork.example")


def test_console_saving_an_issue_for_a_time_that_is_no_slot_is_refused(
    engine: Engine, tmp_path: Path
) -> None:
    # The console's editor goes through the same door: a slot time in August is refused
    # (422, the editor kept with the text) naming the nearest open slots.
    site = _site_in(engine, tmp_path)
    with Session(engine, expire_on_commit=False) as session:
        draft = drafted(session)
    client = site.client()
    login(client, "editor")
    page = client.get(f"/staff/issues/{draft.id}")
    text = _front(BULLETIN_TEXT, number=None, slot="2027-08-12T09:30")
    response = client.post(
        f"/staff/issues/{draft.id}/raw", data={"csrf": csrf_of(page.text), "text": text}
    )
    assert response.status_code == 422
    shown = html.unescape(response.text)
    assert "there is no bulletin slot at Thu 12 Aug 2027 09:30" in shown
    assert "2027/15 (Thu 22 Jul 2027 09:30), 2027/16 (Thu 2 Sep 2027 09:30)" in shown
    assert "2027-08-12T09:30" in shown  # the text typed is kept
    assert _status(site, draft.id or 0).slot_at == datetime(2027, 3, 4, 9, 30, tzinfo=UTC)


def test_console_an_out_of_range_slot_id_is_a_message_not_a_500(
    engine: Engine, tmp_path: Path
) -> None:
    # A forged form with a slot id no database integer can hold is refused with a message.
    site = _site_in(engine, tmp_path)
    with Session(engine, expire_on_commit=False) as session:
        draft = drafted(session)
    client = TestClient(
        site.app,
        base_url="https://lepnetwork.example",
        follow_redirects=False,
        raise_server_exceptions=False,
    )
    login(client, "approver")
    token = csrf_of(client.get(f"/staff/issues/{draft.id}").text)
    response = client.post(
        f"/staff/issues/{draft.id}/approve",
        data={"csrf": token, "slot_id": "99999999999999999999"},
    )
    assert response.status_code == 303
    assert _status(site, draft.id or 0).status is IssueStatus.DRAFT


def test_a_slot_chosen_on_approval_is_audited_by_the_approver(session: Session) -> None:
    # Every step of an approval is audited by name: moving the issue to the slot the
    # approver chose is recorded under the approver, not an anonymous 'editorial'.
    draft = drafted(session)
    assert draft.id is not None
    target = _slot(session, Publication.BULLETIN, "2027/07")
    editorial.approve(
        session,
        draft.id,
        approver=APPROVER,
        renderer=renderer(),
        definition=definition(Publication.BULLETIN),
        settings=SETTINGS,
        slot_id=target.id,
    )
    (change,) = _audit_entries(session, "issue:slot")
    assert change.actor == APPROVER


# -- approval rules at the function door -----------------------------------------------------


def test_approval_may_be_by_the_editor_only_when_the_setting_allows(session: Session) -> None:
    # With [staff] approver_may_be_editor = true the last editor may approve. With the
    # shipped false, nobody unnamed approves, nor the editor in other letter case or with
    # spaces; an unscheduled issue is approved but not scheduled, and said to be sent by hand.
    relaxed = SETTINGS.model_copy(
        update={"staff": SETTINGS.staff.model_copy(update={"approver_may_be_editor": True})}
    )
    draft = drafted(session, editor=APPROVER)  # an approver wrote it
    assert draft.id is not None
    done = editorial.approve(
        session,
        draft.id,
        approver=APPROVER,
        renderer=renderer(),
        definition=definition(Publication.BULLETIN),
        settings=relaxed,
    )
    assert done.issue.status is IssueStatus.SCHEDULED
    unscheduled = editorial.save(
        session,
        issuefile.parse(_front(BULLETIN_TEXT, number=None, slot=None), LONDON),
        editor=APPROVER,
        settings=SETTINGS,
    )
    assert unscheduled.id is not None and unscheduled.slot_at is None
    year = clock.now().astimezone(LONDON).year
    assert (
        unscheduled.number
        == f"{year}/{len(calendar.bulletin_dates(year, BulletinCadence())) + 1:02d}"
    )
    with pytest.raises(editorial.ApprovalRefused, match="say who you are"):
        editorial.approve(
            session,
            unscheduled.id,
            approver="   ",
            renderer=renderer(),
            definition=definition(Publication.BULLETIN),
            settings=SETTINGS,
        )
    with pytest.raises(editorial.ApprovalRefused, match="another approver must approve it"):
        editorial.approve(
            session,
            unscheduled.id,
            approver=f"  {APPROVER.upper()} ",
            renderer=renderer(),
            definition=definition(Publication.BULLETIN),
            settings=SETTINGS,
        )
    by_hand = editorial.approve(
        session,
        unscheduled.id,
        approver="admin@lepnetwork.example",
        renderer=renderer(),
        definition=definition(Publication.BULLETIN),
        settings=SETTINGS,
    )
    assert by_hand.issue.status is IssueStatus.APPROVED
    assert by_hand.slot is None
    assert f"mailer send {unscheduled.id}" in by_hand.note


def test_an_editor_account_with_an_international_domain_cannot_approve(
    session: Session,
) -> None:
    # ed@bücher.example is an editor account (stored as ed@xn--bcher-kva.example); naming
    # it as approver must be refused for its role.
    staff.add(session, "ed@bücher.example", StaffRole.EDITOR, "an-editor-password-1")
    draft = drafted(session)
    assert draft.id is not None
    with pytest.raises(editorial.ApprovalRefused, match="approving needs the approver"):
        editorial.approve(
            session,
            draft.id,
            approver="ed@bücher.example",
            renderer=renderer(),
            definition=definition(Publication.BULLETIN),
            settings=SETTINGS,
        )


# -- 5. calendar: holidays never push into a skipped month -----------------------------------


def test_a_bank_holiday_before_a_skipped_month_moves_back() -> None:
    # Mondays, no bulletins in September or December 2026: Mon 31 Aug (bank holiday) goes
    # back to Fri 28 Aug, never to Tue 1 Sep. Without September skipped it moves forward.
    cadence = BulletinCadence(weekday="monday", skip_months=(9, 12))
    dates = calendar.bulletin_dates(2026, cadence)
    assert date(2026, 8, 28) in dates
    assert date(2026, 8, 31) not in dates
    assert all(d.month not in (9, 12) for d in dates)
    assert date(2026, 5, 26) in dates  # Spring bank holiday Mon 25 May: the Tuesday
    forward = calendar.bulletin_dates(2026, BulletinCadence(weekday="monday", skip_months=(12,)))
    assert date(2026, 9, 1) in forward
    assert date(2026, 8, 28) not in forward
    newsletters = calendar.newsletter_dates(
        2026, NewsletterCadence(weekday="monday", week_of_month=4, skip_months=(9, 12))
    )
    assert date(2026, 8, 24) in newsletters  # the fourth Monday of August is a working day
    assert all(d.month not in (9, 12) for d in newsletters)


def _england(year: int) -> set[date]:
    return set(holidays.country_holidays("GB", subdiv="ENG", years=year))


@settings(max_examples=300, deadline=None)
@given(
    year=st.integers(min_value=2026, max_value=2035),
    weekday=st.sampled_from(calendar.WEEKDAYS),
    skip=st.sets(st.integers(min_value=1, max_value=12), max_size=11),
    interval=st.integers(min_value=1, max_value=62),
    start_day=st.integers(min_value=1, max_value=28),
    week=st.integers(min_value=1, max_value=4),
    cap=st.integers(min_value=1, max_value=12),
)
def test_property_no_date_in_a_skipped_month_on_a_weekend_or_holiday(
    year: int, weekday: str, skip: set[int], interval: int, start_day: int, week: int, cap: int
) -> None:
    # Whatever the weekday (weekends too), interval, January start and skipped months, no
    # bulletin or newsletter date falls in a skipped month, on a weekend, on an England bank
    # holiday, or outside its year; dates are in order, each once; the cap holds.
    skipped = tuple(sorted(skip))
    off = _england(year)
    bulletins = calendar.bulletin_dates(
        year,
        BulletinCadence(
            weekday=weekday,
            skip_months=skipped,
            interval_days=interval,
            new_year_start_day=start_day,
        ),
    )
    newsletters = calendar.newsletter_dates(
        year,
        NewsletterCadence(
            weekday=weekday, skip_months=skipped, week_of_month=week, max_per_year=cap
        ),
    )
    for found in (bulletins, newsletters):
        assert found == sorted(set(found))
        for day in found:
            assert day.year == year
            assert day.month not in skip
            assert day.weekday() < 5
            assert day not in off
    assert len(newsletters) <= min(cap, 12 - len(skip))
    if calendar.WEEKDAYS.index(weekday) < 5:  # (a Saturday pattern can shift into March)
        assert len({d.month for d in newsletters}) == len(newsletters)
    if interval <= 14 and any(m not in skip for m in range(2, 12)):
        # An open month after January, seen at least twice by the rhythm, gets a bulletin.
        # (Not always otherwise: a rhythm starting on 27 January on Mondays, with only
        # January open, has no date left; a long interval can jump a single open month.)
        assert bulletins, "a month after January is open, so some bulletin is planned"


# -- 6. the calendar's time zone everywhere --------------------------------------------------


@pytest.fixture
def new_york(initialised: Path) -> Path:
    """The initialised project with [calendar] timezone = "America/New_York"."""
    project = initialised
    path = project / "config.toml"
    text = path.read_text(encoding="utf-8")
    assert 'timezone = "Europe/London"' in text
    path.write_text(
        text.replace('timezone = "Europe/London"', 'timezone = "America/New_York"'), "utf-8"
    )
    return project


@SQLITE_ONLY
def test_cli_slot_times_are_read_in_the_configured_zone(new_york: Path, db_url: str) -> None:
    # In New York the rhythm's slots are at 09:30 New York time: `--slot 2027-03-04T09:30`
    # (no offset) is that slot, written back with its -05:00 offset and numbered 2027/05.
    made = _ok(cli(new_york, "issue", "new", "bulletin", "--slot", "2027-03-04T09:30"))
    assert "slot: '2027-03-04T09:30:00-05:00'" in made.stdout
    document = issuefile.parse(made.stdout, NEW_YORK)
    assert document.number == "2027/05"
    assert document.slot_at == datetime(2027, 3, 4, 14, 30, tzinfo=UTC)
    with _database(db_url) as session:
        slots = {s.number: s.send_at for s in session.exec(select(Slot))}
    assert slots["2027/05"] == datetime(2027, 3, 4, 14, 30, tzinfo=UTC)
    assert slots["2027/20"] == datetime(2027, 10, 28, 13, 30, tzinfo=UTC)  # still on EDT


def test_consent_dates_without_a_time_are_midnight_in_the_configured_zone(
    loaded: Session, tmp_path: Path
) -> None:
    # importer.import_contacts with [calendar] timezone = "America/New_York": "2025-03-31"
    # is midnight in New York (daylight time, UTC-4), not midnight in London.
    zoned = SETTINGS.calendar.model_copy(update={"timezone": "America/New_York"})
    people = write_csv(
        tmp_path / "people.csv",
        "email,name,organisation,role,lawful_basis,consented_at,source,publications\n"
        "bo@fsb.example,Bo Chan,Federation of Small Businesses,stakeholder,consent,"
        "2025-03-31,sign-up form at LEP conference,\n",
    )
    report = importer.import_contacts(loaded, people, zone=zoned.zone)
    assert (report.added, report.rejected) == (1, [])
    bo = loaded.exec(select(Contact).where(col(Contact.email) == "bo@fsb.example")).one()
    assert bo.consented_at == datetime(2025, 3, 31, 4, 0, tzinfo=UTC)


def test_console_in_new_york_reads_local_slots_and_labels_the_new_york_date(
    engine: Engine, tmp_path: Path
) -> None:
    # The console of a New York deployment: a slot at 21:00 on Thursday 4 March New York
    # (02:00 UTC on Friday 5 March) is typed without offset, the issue is bound to it, and
    # the preview's date label says Thursday 4 March; rendered for London it would say Friday.
    site = _site_in(engine, tmp_path, "America/New_York")
    zoned = site.config.settings
    late = datetime(2027, 3, 5, 2, 0, tzinfo=UTC)
    with Session(engine, expire_on_commit=False) as session:
        extra = calendar.add_slot(session, Publication.BULLETIN, late, zoned)
        session.commit()
    assert extra.deadline_at.astimezone(NEW_YORK) == datetime(2027, 3, 2, 17, 0, tzinfo=NEW_YORK)
    editor = site.client()
    login(editor, "editor")
    made = editor.post(
        "/staff/issues/new",
        data={"csrf": csrf_of(editor.get("/staff/issues").text), "publication": "bulletin"},
    )
    assert made.status_code == 303
    issue_id = int(made.headers["location"].rsplit("/", 1)[1])
    page = editor.get(f"/staff/issues/{issue_id}/raw")  # the issue file itself
    assert "slot: '2027-01-07T09:30:00-05:00'" in html.unescape(page.text)
    text = _front(BULLETIN_TEXT, number=None, slot="'2027-03-04T21:00'")
    saved = editor.post(
        f"/staff/issues/{issue_id}/raw", data={"csrf": csrf_of(page.text), "text": text}
    )
    assert saved.status_code == 303, saved.text
    issue = _status(site, issue_id)
    assert (issue.number, issue.slot_at) == (extra.number, late)

    preview = editor.get(f"/staff/issues/{issue_id}/preview.html")
    assert "Thursday 4 March 2027" in preview.text
    assert "Friday 5 March 2027" not in preview.text
    shown = html.unescape(editor.get(f"/staff/issues/{issue_id}").text)
    assert "2027-03-04T21:00:00-05:00" in shown
    approver = _signed_in(site, "approver")  # the approve form's slot list, in New York time
    offered = html.unescape(approver.get(f"/staff/issues/{issue_id}").text)
    assert f"Thu 04 Mar 2027 21:00 (bulletin {extra.number})" in offered  # by date first
    assert "Thu 04 Mar 2027 09:30 (bulletin 2027/05)" in offered

    with Session(engine) as session:
        content = issues.content(session, issue, LONDON)
    london = Renderer(renderer().templates_dir, NETWORK, WEB, LONDON)
    assert "Friday 5 March 2027" in london.render(content, definition(Publication.BULLETIN)).html


def test_an_issue_file_without_offset_is_read_in_the_settings_zone() -> None:
    # issuefile.parse with the zone from settings: the same text is a different instant
    # in London and in New York, and an explicit offset wins over the zone.
    zoned = SETTINGS.model_copy(
        update={"calendar": SETTINGS.calendar.model_copy(update={"timezone": "America/New_York"})}
    )
    text = _front(BULLETIN_TEXT, slot="'2027-07-01T09:30'")
    assert issuefile.parse(text, zoned.calendar.zone).slot_at == datetime(
        2027, 7, 1, 13, 30, tzinfo=UTC
    )
    assert issuefile.parse(text, SETTINGS.calendar.zone).slot_at == datetime(
        2027, 7, 1, 8, 30, tzinfo=UTC
    )
    fixed = _front(BULLETIN_TEXT, slot="'2027-07-01T09:30:00+00:00'")
    assert issuefile.parse(fixed, zoned.calendar.zone).slot_at == datetime(
        2027, 7, 1, 9, 30, tzinfo=UTC
    )


def test_the_console_offers_only_open_slots_of_the_issues_own_publication(session: Session) -> None:
    # open_slots offers only planned, unheld, future slots of the issue's own publication.
    draft = drafted(session)
    assert draft.id is not None
    offered = editorial.open_slots(session, Publication.BULLETIN, issue_id=draft.id)
    assert offered and all(s.status is SlotStatus.PLANNED for s in offered)
    assert all(s.publication is Publication.BULLETIN for s in offered)
    assert all(s.send_at > clock.now() for s in offered)
    assert "2027/05" in {s.number for s in offered}  # its own slot is offered to it
    assert "2027/05" not in {s.number for s in editorial.open_slots(session, Publication.BULLETIN)}


# -- attacks from the outside review -------------------------------------------------------


@SQLITE_ONLY
def test_cli_only_named_staff_edit_and_approve(initialised: Path, db_url: str) -> None:
    # Four eyes holds only if every name is a person: --by variants that are no staff
    # account (a trailing dot, a plus tag, a bare name, a look-alike) are refused for both
    # editing and approving, so an editor cannot approve their own issue under another name.
    project = initialised
    made = _ok(
        cli(project, "issue", "import", str(DATA / "bulletin.md"), "--by", "a@lepnetwork.example")
    )
    assert "Created issue 1" in made.stdout
    for variant in (
        "a@lepnetwork.example.",
        "a+x@lepnetwork.example",
        "A",
        "\uff41@lepnetwork.example",  # a fullwidth a
        "a@lepnetwork.example\u200b",
    ):
        refused = run("issue", "approve", "1", "--by", variant)
        assert refused.exit_code == 2, (variant, refused.output)
        assert "staff account" in _flat(refused.output), variant
        edited = run("issue", "import", str(DATA / "bulletin.md"), "--id", "1", "--by", variant)
        assert edited.exit_code == 2, (variant, edited.output)
    with _database(db_url) as session:
        issue = issues.get(session, 1)
        assert (issue.status, issue.last_edited_by) == (IssueStatus.DRAFT, "a@lepnetwork.example")
    # The same person in other letter case or with spaces is still the same person.
    same = run("issue", "approve", "1", "--by", "  A@LEPNETWORK.EXAMPLE ")
    assert same.exit_code == 2 and "a@lepnetwork.example is an editor" in _flat(same.output)
    assert run("issue", "approve", "1", "--by", "b@lepnetwork.example").exit_code == 0


def test_a_lightly_touched_skeleton_is_still_not_written() -> None:
    # A full stop added here and there, a capital, the picture's placeholder description or
    # address (with a port or a trailing dot), the sponsor's placeholder site: all still
    # the new issue's placeholders, and all block approval.
    document = content.skeleton(Publication.NEWSLETTER, "2027/02", None)
    first = document.sections[0].items[0]
    assert first.image is not None
    touched = replace(
        document,
        subject=document.subject + ".",
        preheader=document.preheader.upper() + "?",
        sections=(
            replace(
                document.sections[0],
                items=(
                    replace(
                        first,
                        title="Real headline",
                        body="Real text.",
                        image=replace(first.image, url="https://images.example.:443/a.jpg"),
                    ),
                ),
            ),
            document.sections[1],
        ),
    )
    found = content.placeholders(touched.content())
    assert "the subject" in found and "the preheader" in found
    assert any(f.startswith("the picture of 'Real headline'") for f in found)
    assert "the item title 'A LEP success story'" in found
    assert "the sponsor" in found
    written = replace(
        touched,
        subject="Newsletter: LEP successes",
        preheader="Five LEP successes",
        sections=(
            replace(
                touched.sections[0],
                items=(
                    replace(
                        touched.sections[0].items[0],
                        image=replace(
                            first.image,
                            url="https://images.lepnetwork.example/a.jpg",
                            alt="Apprentices at work",
                        ),
                    ),
                ),
            ),
        ),
        sponsor=None,
    )
    assert content.placeholders(written.content()) == []


@SQLITE_ONLY
def test_two_slots_of_one_publication_never_share_a_time(initialised: Path, db_url: str) -> None:
    # Adding (or moving) a bulletin slot to a time another bulletin slot has is refused,
    # so a time always names one slot.
    added = run("calendar", "add", "bulletin", "2027-01-07T09:30")
    assert added.exit_code == 2
    assert "bulletin 2027/01 is already at that time" in _flat(added.output)
    extra = run("calendar", "add", "bulletin", "2027-01-08T09:30")
    assert extra.exit_code == 0, extra.output
    with _database(db_url) as session:
        moving = session.exec(
            select(Slot).where(col(Slot.send_at) == datetime(2027, 1, 8, 9, 30, tzinfo=UTC))
        ).one()
    moved = run("calendar", "move", str(moving.id), "2027-01-07T09:30")
    assert moved.exit_code == 2 and "already at that time" in _flat(moved.output)
    assert run("calendar", "add", "newsletter", "2027-01-07T09:30").exit_code == 0  # another
