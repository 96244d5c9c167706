"""LEPs contribute to the bulletin: the signed link in its footer, the form over HTTP, the
queue in the console and on the command line, accepting into the next draft or the diary,
declining with a reason, the emails to the contributor, and the attacks (forged and
foreign tokens, oversized bodies, hostile Markdown, a flood of submissions)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import clock, contributions, editorial, issues, publications
from mailer.content import IssueDocument, ItemContent
from mailer.models import (
    AuditEntry,
    Contact,
    ContactStatus,
    Contribution,
    ContributionStatus,
    Event,
    Issue,
    IssueStatus,
    Item,
    LawfulBasis,
    MediaImage,
    Publication,
    Role,
    Slot,
    SlotStatus,
)
from mailer.settings import ContributionSettings
from mailer.transports import SmtpTransport
from tests.outbox_fixtures import approved, external_org, people
from tests.smtp_server import RecordingHandler, running
from tests.test_markup import _DANGER, XSS
from tests.web_fixtures import Site, build_site, csrf_of, link_in, login

MID_JANUARY = datetime(2027, 1, 14, 9, 0, tzinfo=UTC)


def _png(width: int = 640, height: int = 320) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (29, 107, 55)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def site(engine: Engine, tmp_path: Path) -> Iterator[Site]:
    with clock.frozen(MID_JANUARY):
        yield build_site(engine, tmp_path)


def _staff(site: Site, role: str = "editor") -> tuple[TestClient, str]:
    client = site.client()
    login(client, role)
    return client, csrf_of(client.get("/staff").text)


def _sent_bulletin(site: Site, readers: int = 3) -> list[EmailMessage]:
    """Send a bulletin to ``readers`` LEP contacts from the console; their messages."""
    with Session(site.engine) as session:
        people(session, readers)
        issue_id = approved(session).id
    client, token = _staff(site, "approver")
    sent = client.post(f"/staff/issues/{issue_id}/send", data={"csrf": token, "confirm": "yes"})
    assert sent.status_code == 303
    mail = sorted(site.captured(), key=lambda m: str(m["To"]))
    assert len(mail) == readers and str(mail[0]["To"]) == "Reader 0 <reader0@lep0.example>"
    return mail


def _contribute_path(message: EmailMessage) -> str:
    path = urlsplit(link_in(message, "/contribute/")).path
    html = message.get_body(("html",))
    assert html is not None and f'href="https://lepnetwork.example{path}"' in html.get_content()
    return path


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def _form(**fields: str) -> dict[str, str]:
    return {
        "kind": "lep_news",
        "headline": "D2N2 opens its Growth Hub in Derby",
        "text": "The **Growth Hub** opened on Monday.\n\nIt serves 4,000 firms.",
        "link": "https://d2n2lep.example/growth-hub",
        "image_alt": "",
        "event_date": "",
        "event_time": "",
        "event_place": "",
    } | fields


def _rows(site: Site) -> list[Contribution]:
    with Session(site.engine) as session:
        return list(session.exec(select(Contribution).order_by(col(Contribution.id))).all())


def test_a_lep_reader_sends_news_through_the_bulletins_link_and_staff_accept_it(
    site: Site,
) -> None:
    message = _sent_bulletin(site)[0]
    path = _contribute_path(message)
    reader = site.client()
    form = reader.get(path)
    assert form.status_code == 200
    assert "From <strong>Reader 0</strong>, Derby, Derbyshire, Nottingham and" in form.text
    done = reader.post(
        path,
        data=_form(image_alt="The Growth Hub's new front door"),
        files={"image": ("hub.png", _png(), "image/png")},
    )
    assert done.status_code == 200, done.text
    assert "Thank you" in done.text and "proposed for the bulletin of" in done.text
    (row,) = _rows(site)
    assert row.status is ContributionStatus.RECEIVED and row.image_name
    receipt = site.captured()[-1]
    assert receipt["To"] == "reader0@lep0.example"
    assert "D2N2 opens its Growth Hub" in receipt["Subject"]
    assert "before the content deadline" in _text(receipt)

    client, token = _staff(site)
    queue = client.get("/staff/contributions")
    assert (
        "D2N2 opens its Growth Hub in Derby" in queue.text and "before the deadline" in queue.text
    )
    shown = client.get(f"/staff/contributions/{row.id}")
    assert "<strong>Growth Hub</strong>" in shown.text and row.image_name in shown.text
    accepted = client.post(f"/staff/contributions/{row.id}/accept", data={"csrf": token})
    assert accepted.status_code == 303
    issue_id = int(accepted.headers["location"].rsplit("/", 1)[1])
    with Session(site.engine) as session:
        issue = issues.get(session, issue_id)
        assert issue.status is IssueStatus.DRAFT and issue.number == "2027/02"
        document = issues.document(session, issue)
        news = next(s for s in document.sections if s.heading == "LEP news")
        assert [i.title for i in news.items] == [
            "D2N2 opens its Growth Hub in Derby"
        ]  # placeholder gone
        assert news.items[0].contribution == row.id
        definition = publications.load(site.config.lists_dir, Publication.BULLETIN)
        html = issues.rendering(session, issue, site.app.state.ctx.renderer, definition).html
    assert "D2N2 opens its Growth Hub in Derby" in html and f"/media/{row.image_name}" in html
    # The editor keeps the link back through a save of the form.
    editor = client.get(f"/staff/issues/{issue_id}").text
    assert f'href="/staff/contributions/{row.id}"' in editor
    with Session(site.engine) as session:
        actions = [
            e.action for e in session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()
        ]
    assert "contribution:submit" in actions and "contribution:accept" in actions


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages, not the database
def test_an_event_goes_to_the_diary_and_a_late_one_to_the_following_bulletin(
    site: Site,
) -> None:
    path = _contribute_path(_sent_bulletin(site)[0])
    with Session(site.engine) as session:
        slots = list(
            session.exec(
                select(Slot)
                .where(
                    col(Slot.publication) == Publication.BULLETIN, col(Slot.send_at) > MID_JANUARY
                )
                .order_by(col(Slot.send_at))
            ).all()
        )
    late = slots[0].deadline_at + timedelta(minutes=1)
    with clock.frozen(late):
        sent = site.client().post(
            path,
            data=_form(
                kind="event",
                headline="Skills bootcamp for employers",
                event_date="2027-02-10",
                event_time="14:00",
                event_place="Nottingham Trent University",
            ),
        )
        assert sent.status_code == 200, sent.text
        assert "after the next bulletin's content deadline" in sent.text
        (row,) = _rows(site)
        with Session(site.engine) as session:
            entry = contributions.entry(session, row.id or 0)
        assert not entry.proposal.in_time and entry.proposal.slot is not None
        assert entry.proposal.slot.number == slots[1].number
        client, token = _staff(site)
        assert "after the deadline" in client.get("/staff/contributions").text
        accepted = client.post(f"/staff/contributions/{row.id}/accept", data={"csrf": token})
        assert accepted.headers["location"].startswith("/staff/events/")
    with Session(site.engine) as session:
        event = session.exec(select(Event).where(col(Event.contribution_id) == row.id)).one()
        assert (event.title, event.location) == (
            "Skills bootcamp for employers",
            "14:00, Nottingham Trent University",
        )
        zone = site.config.settings.calendar.zone
        diary = issues.diary(session, Publication.BULLETIN, slots[1].send_at, zone)
    assert "Skills bootcamp for employers" in [e.title for e in diary]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages, not the database
def test_only_lep_contacts_may_contribute_and_forged_links_change_nothing(site: Site) -> None:
    path = _contribute_path(_sent_bulletin(site)[0])
    signer = site.app.state.ctx.signer
    token = path.rsplit("/", 1)[1]
    reader = site.client()
    for forged in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "1-1.abc", "x" * 300):
        answer = reader.post(f"/contribute/{forged}", data=_form())
        assert answer.status_code == 400 and "not valid" in answer.text
        assert reader.get(f"/contribute/{forged}").status_code == 400
    with Session(site.engine) as session:
        outsider = Contact(
            email="policy@dbt.example",
            email_hash="x" * 64,
            name="A. Civil Servant",
            organisation_id=external_org(session),
            role=Role.STAKEHOLDER,
            lawful_basis=LawfulBasis.CONSENT,
        )
        session.add(outsider)
        session.commit()
        assert outsider.id is not None
        newsletter = session.exec(select(Issue)).first()
        assert newsletter is not None and newsletter.id is not None
        foreign = signer.recipient(outsider.id, newsletter.id)
        lep = session.exec(
            select(Contact).where(col(Contact.email) == "reader1@lep1.example")
        ).one()
        lep.status = ContactStatus.DISABLED
        session.commit()
        disabled = signer.recipient(lep.id or 0, newsletter.id)
    for refused in (foreign, disabled):
        page = reader.get(f"/contribute/{refused}")
        assert page.status_code == 403
        assert "for and with the Local Enterprise Partnerships" in page.text
        assert f"email {site.config.settings.network.contact_email}" in page.text
        assert reader.post(f"/contribute/{refused}", data=_form()).status_code == 403
    assert _rows(site) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages, not the database
def test_field_errors_are_shown_at_their_fields_with_what_was_typed(site: Site) -> None:
    path = _contribute_path(_sent_bulletin(site)[0])
    reader = site.client()
    cases = {
        "headline": _form(headline="Line one\r\nBcc: victim@example.org"),
        "link": _form(link="http://insecure.example/page"),
        "text": _form(text="x" * 3001),
        "event_date": _form(kind="event", event_place="Derby", event_date="2026-12-31"),
        "event_time": _form(kind="event", event_date="2027-03-01", event_time="25:99"),
        "kind": _form(kind="advert"),
        "link_long": _form(link="https://d2n2lep.example/" + "a" * 1000),
        "text_nul": _form(text="A NUL\x00 byte"),
        "image_alt": _form(),  # an image with no description
    }
    for field, data in cases.items():
        files = {"image": ("hub.png", _png(), "image/png")} if field == "image_alt" else None
        answer = reader.post(path, data=data, files=files)
        assert answer.status_code == 422, field
        assert (
            f'id="c-{field.split("_")[0] if field.endswith(("_long", "_nul")) else field}-error"'
            in answer.text
        ), (field, answer.text)
        assert 'value="https://d2n2lep.example/growth-hub"' in answer.text or field.startswith(
            "link"
        )
    typed = reader.post(path, data=_form(text="## A heading\nkept text"))
    assert "kept text</textarea>" in typed.text and "would begin a new section" in typed.text
    not_an_image = reader.post(
        path,
        data=_form(image_alt="A chart"),
        files={"image": ("chart.png", b"<svg onload=alert(1)>", "image/png")},
    )
    assert not_an_image.status_code == 422 and 'id="c-image-error"' in not_an_image.text
    assert _rows(site) == []
    with Session(site.engine) as session:
        assert session.exec(select(MediaImage)).all() == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages, not the database
def test_an_oversized_body_is_refused_before_it_is_read(site: Site) -> None:
    path = _contribute_path(_sent_bulletin(site)[0])
    limit = (site.config.settings.web.image_limit_mb + 1) * 1024 * 1024
    answer = site.client().post(
        path,
        data=_form(image_alt="Noise"),
        files={"image": ("big.png", b"\0" * (limit + 1), "image/png")},
    )
    assert answer.status_code == 413
    assert _rows(site) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages, not the database
def test_hostile_markdown_is_neutralised_in_the_console_and_the_issue(site: Site) -> None:
    path = _contribute_path(_sent_bulletin(site)[0])
    corpus = "\n\n".join(XSS)
    sent = site.client().post(path, data=_form(text=corpus, headline="<script>alert(1)</script>"))
    assert sent.status_code == 200, sent.text
    assert "<script>alert" not in sent.text
    (row,) = _rows(site)
    client, token = _staff(site)
    shown = client.get(f"/staff/contributions/{row.id}").text
    preview = shown.split('<div class="preview-text">', 1)[1].split("</div>", 1)[0]
    live = re.sub(r"&[a-z]+;|&#\d+;", "", preview)
    assert not [t for t in re.findall(r"<[^>]+>", live) if _DANGER.search(t)], preview
    assert "<script>alert(1)</script>" not in shown
    accepted = client.post(f"/staff/contributions/{row.id}/accept", data={"csrf": token})
    issue_id = int(accepted.headers["location"].rsplit("/", 1)[1])
    with Session(site.engine) as session:
        issue = issues.get(session, issue_id)
        definition = publications.load(site.config.lists_dir, Publication.BULLETIN)
        html = issues.rendering(session, issue, site.app.state.ctx.renderer, definition).html
    body = html.split("<body", 1)[1]
    live = re.sub(r"&[a-z]+;|&#\d+;", "", body)
    assert not [t for t in re.findall(r"<[^>]+>", live) if _DANGER.search(t)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages, not the database
def test_declining_emails_the_reason_and_a_sent_issue_credits_its_contributor_once(
    site: Site,
) -> None:
    path = _contribute_path(_sent_bulletin(site)[0])
    reader = site.client()
    for headline in ("First story", "Second story", "Third story"):
        assert reader.post(path, data=_form(headline=headline)).status_code == 200
    first, second, third = _rows(site)
    client, token = _staff(site)
    refused = client.post(f"/staff/contributions/{third.id}/decline", data={"csrf": token})
    assert refused.status_code == 422 and "Reason: must not be empty" in refused.text
    client.post(
        f"/staff/contributions/{third.id}/decline",
        data={"csrf": token, "reason": "Already covered in bulletin 2027/01"},
    )
    declined = site.captured()[-1]
    assert declined["To"] == "reader0@lep0.example"
    assert "Already covered in bulletin 2027/01" in _text(declined)
    again = client.post(
        f"/staff/contributions/{third.id}/accept", data={"csrf": token}
    )  # decided once only
    assert again.status_code == 422 and "already declined" in again.text
    for row in (first, second):
        client.post(f"/staff/contributions/{row.id}/accept", data={"csrf": token})
    with Session(site.engine) as session:
        draft = session.exec(
            select(Issue).where(
                col(Issue.number) == "2027/02", col(Issue.publication) == "bulletin"
            )
        ).one()
        _written(session, site, draft)
        draft_id = draft.id
    approver, approver_token = _staff(site, "approver")
    approval = approver.post(f"/staff/issues/{draft_id}/approve", data={"csrf": approver_token})
    assert approval.status_code == 303, approval.text
    before = len(site.captured())
    approver.post(f"/staff/issues/{draft_id}/send", data={"csrf": approver_token, "confirm": "yes"})
    told = asyncio_run_notices(site)
    assert told == 1  # one email for both items
    credit = site.captured()[-1]
    assert credit["To"] == "reader0@lep0.example"
    text = _text(credit)
    assert '"First story" and "Second story" are in today\'s bulletin' in text
    view = urlsplit(link_in(credit, "/v/")).path
    assert "First story" in reader.get(view).text
    assert asyncio_run_notices(site) == 0 and len(site.captured()) > before


def _written(session: Session, site: Site, draft: Issue) -> None:
    """The skeleton's placeholders replaced, as staff would before approval."""
    document = issues.document(session, draft)
    sections = tuple(
        dataclasses.replace(
            section,
            items=tuple(i for i in section.items if i.contribution is not None)
            or (ItemContent("Skills England's first report", "It was published today."),),
        )
        for section in document.sections
    )
    written = dataclasses.replace(
        document,
        subject="LEP Network Bulletin 2027/02: Growth Hubs",
        preheader="Two LEP stories",
        sections=sections,
    )
    editorial.save(
        session,
        written,
        editor="editor@lepnetwork.example",
        settings=site.config.settings,
        issue_id=draft.id,
    )
    session.commit()


def asyncio_run_notices(site: Site) -> int:
    import asyncio

    ctx = site.app.state.ctx
    return asyncio.run(
        contributions.send_notices(ctx.engine, ctx.config, ctx.signer, ctx.new_transport)
    )


def test_a_flood_of_submissions_stops_at_the_daily_limit(site: Site) -> None:
    path = _contribute_path(_sent_bulletin(site)[0])
    token = path.rsplit("/", 1)[1]
    limits = ContributionSettings(per_day=3)
    settings = site.config.settings.model_copy(update={"contributions": limits})
    checked = contributions.check(
        contributions.Fields(**_form()), limits, has_image=False, today=MID_JANUARY.date()
    )
    outcomes: list[str] = []

    def attempt() -> None:
        with Session(site.engine) as session:
            who = contributions.contributor(session, site.app.state.ctx.signer, token)
            try:
                contributions.submit(
                    session, who, checked, image=None, settings=settings, media_folder=Path("/x")
                )
                session.commit()
                outcomes.append("stored")
            except contributions.TooManyContributions:
                session.rollback()
                outcomes.append("refused")
            except Exception as exc:  # a busy database: refused too, nothing written
                session.rollback()
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(_rows(site)) == 3 == outcomes.count("stored"), outcomes
    reader = site.client()  # the site's own limit: five a day
    assert [reader.post(path, data=_form()).status_code for _ in range(3)] == [200, 200, 429]
    assert len(_rows(site)) == 5


def test_two_staff_accepting_at_once_place_it_once(site: Site) -> None:
    path = _contribute_path(_sent_bulletin(site)[0])
    assert site.client().post(path, data=_form()).status_code == 200
    (row,) = _rows(site)
    outcomes: list[str] = []
    ready = threading.Barrier(2, timeout=30)

    def accept(who: str) -> None:
        with Session(site.engine) as session:
            ready.wait()
            try:
                contributions.accept(session, row.id or 0, by=who, settings=site.config.settings)
                session.commit()
                outcomes.append("accepted")
            except contributions.ContributionError as exc:
                session.rollback()
                outcomes.append(str(exc))
            except Exception as exc:  # a busy database: nothing written either
                session.rollback()
                outcomes.append(type(exc).__name__)

    threads = [
        threading.Thread(target=accept, args=(f"{role}@lepnetwork.example",))
        for role in ("editor", "approver")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes.count("accepted") == 1, outcomes
    with Session(site.engine) as session:
        items = session.exec(select(Item).where(col(Item.contribution_id) == row.id)).all()
    assert len(items) == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages, not the database
def test_staff_edit_a_contribution_before_accepting_it(site: Site) -> None:
    path = _contribute_path(_sent_bulletin(site)[0])
    assert site.client().post(path, data=_form()).status_code == 200
    (row,) = _rows(site)
    client, token = _staff(site)
    edited = _form(headline="Derby's Growth Hub: 4,000 firms", link="ftp://nope")
    refused = client.post(f"/staff/contributions/{row.id}/edit", data={"csrf": token, **edited})
    assert refused.status_code == 422 and 'id="e-link-error"' in refused.text
    assert 'value="Derby&#39;s Growth Hub: 4,000 firms"' in refused.text  # kept as typed
    edited["link"] = "https://d2n2lep.example/hub"
    saved = client.post(f"/staff/contributions/{row.id}/edit", data={"csrf": token, **edited})
    assert saved.status_code == 303
    accepted = client.post(f"/staff/contributions/{row.id}/accept", data={"csrf": token})
    issue_id = int(accepted.headers["location"].rsplit("/", 1)[1])
    with Session(site.engine) as session:
        document = issues.document(session, issues.get(session, issue_id))
        item = next(i for s in document.sections for i in s.items if i.contribution == row.id)
        assert (item.title, item.link) == (
            "Derby's Growth Hub: 4,000 firms",
            "https://d2n2lep.example/hub",
        )
        actions = session.exec(select(AuditEntry.action)).all()
    assert "contribution:edit" in actions
    late = client.post(f"/staff/contributions/{row.id}/edit", data={"csrf": token, **edited})
    assert late.status_code == 422 and "edit the item in its issue instead" in late.text


def _quiet_receipts(site: Site, path: str, count: int) -> None:
    """``count`` contributions whose receipts are still owed (as after a relay outage)."""
    reader = site.client()
    for n in range(count):
        assert reader.post(path, data=_form(headline=f"Story {n}")).status_code == 200
    with Session(site.engine) as session:
        for row in session.exec(select(Contribution)).all():
            row.receipt_sent_at = None
        session.commit()


def test_three_senders_at_once_send_each_receipt_once(site: Site) -> None:
    # The web's background task, `contributions notify` and the daemon may all run at
    # once: each email is claimed by one of them, none is lost or doubled.
    path = _contribute_path(_sent_bulletin(site)[0])
    _quiet_receipts(site, path, 4)
    before = len(site.captured())
    start = threading.Barrier(3, timeout=30)
    counts: list[int] = []

    def run() -> None:
        start.wait()
        counts.append(asyncio_run_notices(site))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and sum(counts) == 4, counts
    subjects = sorted(str(m["Subject"]) for m in site.captured()[before:])
    assert subjects == [f"Received for the bulletin: Story {n}" for n in range(4)]
    assert asyncio_run_notices(site) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the relay's answers
def test_a_put_off_email_is_retried_and_a_refused_one_is_not(site: Site) -> None:
    path = _contribute_path(_sent_bulletin(site)[0])
    _quiet_receipts(site, path, 2)
    put_off, refused = _rows(site)
    ctx = site.app.state.ctx
    handler = RecordingHandler(rcpt_faults={"reader0@lep0.example": 451})
    with running(handler) as (controller, _):

        def tick(only: int | None) -> int:
            return asyncio.run(
                contributions.send_notices(
                    ctx.engine,
                    ctx.config,
                    ctx.signer,
                    lambda: SmtpTransport("127.0.0.1", controller.port),
                    only=only,
                )
            )

        assert tick(put_off.id) == 0 and tick(put_off.id) == 0  # 451: kept for later
        handler.rcpt_faults.clear()
        assert tick(put_off.id) == 1
        handler.rcpt_faults["reader0@lep0.example"] = 550
        assert tick(refused.id) == 0
        handler.rcpt_faults.clear()
        assert tick(None) == 0  # a 5xx is final: not tried again
    assert [str(m.recipients) for m in handler.messages] == ["['reader0@lep0.example']"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the rules, not the database
def test_an_items_link_to_a_contribution_is_checked_wherever_it_comes_from(site: Site) -> None:
    path = _contribute_path(_sent_bulletin(site)[0])
    reader = site.client()
    for headline in ("Accepted story", "Waiting story"):
        assert reader.post(path, data=_form(headline=headline)).status_code == 200
    accepted, waiting = _rows(site)
    client, token = _staff(site)
    into = client.post(f"/staff/contributions/{accepted.id}/accept", data={"csrf": token})
    issue_id = int(into.headers["location"].rsplit("/", 1)[1])
    with Session(site.engine) as session:
        other = session.exec(
            select(Issue).where(col(Issue.publication) == Publication.BULLETIN)
        ).first()
        assert other is not None and other.id != issue_id
        mine = issues.document(session, issues.get(session, issue_id))
        newsletter = dataclasses.replace(mine, publication=Publication.NEWSLETTER)
        with pytest.raises(issues.IssueError, match="only the bulletin carries"):
            issues.save_document(session, newsletter, issue_id=None)
        session.rollback()
        stolen = dataclasses.replace(mine, number="2027/09")
        with pytest.raises(issues.IssueError, match=f"accepted into issue {issue_id}"):
            issues.save_document(session, stolen, issue_id=None)
        session.rollback()
        unaccepted = _relinked(mine, waiting.id or 0)
        with pytest.raises(issues.IssueError, match="received: only an accepted"):
            issues.save_document(session, unaccepted, issue_id=issue_id)
        session.rollback()
        gone = _relinked(mine, 999_999)  # an erased contribution: the link goes
        saved = issues.save_document(session, gone, issue_id=issue_id)
        assert all(
            i.contribution in (None, accepted.id)
            for s in issues.document(session, saved).sections
            for i in s.items
        )


def _relinked(document: IssueDocument, contribution: int) -> IssueDocument:
    first = document.sections[0]
    item = dataclasses.replace(first.items[0], contribution=contribution)
    return dataclasses.replace(
        document,
        sections=(
            dataclasses.replace(first, items=(item, *first.items[1:])),
            *document.sections[1:],
        ),
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages, not the database
def test_an_editors_old_form_does_not_undo_an_accepted_contribution(site: Site) -> None:
    path = _contribute_path(_sent_bulletin(site)[0])
    assert site.client().post(path, data=_form(headline="First story")).status_code == 200
    assert site.client().post(path, data=_form(headline="Second story")).status_code == 200
    first, second = _rows(site)
    client, token = _staff(site)
    into = client.post(f"/staff/contributions/{first.id}/accept", data={"csrf": token})
    issue_id = int(into.headers["location"].rsplit("/", 1)[1])
    editor = site.client()
    login(editor, "editor")
    opened = _fields(editor.get(f"/staff/issues/{issue_id}").text)
    client.post(f"/staff/contributions/{second.id}/accept", data={"csrf": token})
    stale = editor.post(f"/staff/issues/{issue_id}", data=opened | {"op": "save"})
    assert stale.status_code == 422 and "changed this draft since you opened it" in stale.text
    with Session(site.engine) as session:
        linked = session.exec(
            select(Item.contribution_id).where(col(Item.contribution_id).is_not(None))
        ).all()
    assert sorted(i or 0 for i in linked) == sorted([first.id or 0, second.id or 0])
    again = editor.post(f"/staff/issues/{issue_id}", data=_fields(stale.text) | {"op": "save"})
    assert again.status_code == 303  # saved knowingly, the second time


def _fields(html: str) -> dict[str, str]:
    from tests.test_web_editor import fields_of

    return fields_of(html)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the rules, not the database
def test_late_stays_late_and_a_moved_contact_is_not_credited(site: Site) -> None:
    path = _contribute_path(_sent_bulletin(site)[0])
    with Session(site.engine) as session:
        first = session.exec(
            select(Slot)
            .where(col(Slot.publication) == Publication.BULLETIN, col(Slot.send_at) > MID_JANUARY)
            .order_by(col(Slot.send_at))
        ).first()
        assert first is not None
    with clock.frozen(first.deadline_at + timedelta(minutes=1)):
        assert site.client().post(path, data=_form()).status_code == 200
    (row,) = _rows(site)
    with Session(site.engine) as session:
        slot = session.get(Slot, first.id)
        assert slot is not None
        slot.status = SlotStatus.DISPATCHED  # the next bulletin has gone
        session.commit()
    with clock.frozen(first.send_at + timedelta(hours=1)), Session(site.engine) as session:
        proposal = contributions.entry(session, row.id or 0).proposal
    assert proposal.in_time is False and proposal.deadline == first.deadline_at
    client, token = _staff(site)
    into = client.post(f"/staff/contributions/{row.id}/accept", data={"csrf": token})
    issue_id = int(into.headers["location"].rsplit("/", 1)[1])
    with Session(site.engine) as session:
        _written(session, site, issues.get(session, issue_id))
        contact = session.get(Contact, row.contact_id)
        assert contact is not None
        contact.organisation_id = external_org(session)  # moved out of the LEP
        session.commit()
    asyncio_run_notices(site)
    with Session(site.engine) as session:
        issue = issues.get(session, issue_id)
        issue.status = IssueStatus.SENT
        session.commit()
    before = len(site.captured())
    assert asyncio_run_notices(site) == 0 and len(site.captured()) == before
