"""The site over HTTP: one-click unsubscribe, sign-up with double opt-in, the console's locks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import clock, issues, outbox, publications, subscriptions
from mailer.models import (
    Contact,
    ContactStatus,
    Issue,
    IssueStatus,
    LawfulBasis,
    Publication,
    Subscription,
    SubscriptionStatus,
)
from tests.conftest import LISTS
from tests.outbox_fixtures import approved, drafted, external_org, people
from tests.web_fixtures import Site, build_site, csrf_of, link_in, login


def _status(site: Site, email: str, publication: Publication) -> SubscriptionStatus | None:
    with Session(site.engine) as session:
        found = session.exec(
            select(Subscription)
            .join(Contact, col(Contact.id) == col(Subscription.contact_id))
            .where(col(Contact.email) == email, col(Subscription.publication) == publication)
        ).first()
        return found.status if found else None


def _token(site: Site, email: str, publication: Publication = Publication.BULLETIN) -> str:
    """The token a reader's links carry, for the approved test issue of ``publication``."""
    with Session(site.engine) as session:
        contact = session.exec(select(Contact).where(col(Contact.email) == email)).one()
        issue = session.exec(select(Issue).where(col(Issue.publication) == publication)).first()
        assert contact.id is not None and issue is not None and issue.id is not None
        token: str = site.app.state.ctx.signer.recipient(contact.id, issue.id)
        return token


@pytest.fixture
def site(engine: Engine, tmp_path: Path) -> Site:
    return build_site(engine, tmp_path)


@pytest.fixture
def reader(site: Site) -> str:
    with Session(site.engine) as session:
        people(session, 2)
        approved(session)
    return "reader0@lep0.example"


@pytest.mark.parametrize("encoding", ["form", "multipart"])
def test_one_click_unsubscribe_works_without_cookies_and_never_redirects(
    site: Site, reader: str, encoding: str
) -> None:
    client = site.client()
    token = _token(site, reader)
    body = {"List-Unsubscribe": "One-Click"}
    kwargs = (
        {"data": body}
        if encoding == "form"
        else {"files": {"List-Unsubscribe": (None, "One-Click")}}
    )
    first = client.post(f"/u/{token}", **kwargs)
    assert first.status_code == 200
    assert "You are unsubscribed" in first.text
    assert "set-cookie" not in first.headers
    assert _status(site, reader, Publication.BULLETIN) is SubscriptionStatus.UNSUBSCRIBED
    assert _status(site, reader, Publication.NEWSLETTER) is SubscriptionStatus.ACTIVE
    again = client.post(f"/u/{token}", **kwargs)
    assert again.status_code == 200
    assert _status(site, reader, Publication.BULLETIN) is SubscriptionStatus.UNSUBSCRIBED


def test_the_unsubscribe_page_changes_nothing_until_the_button(site: Site, reader: str) -> None:
    client = site.client()
    token = _token(site, reader)
    page = client.get(f"/u/{token}")
    assert page.status_code == 200
    assert "Unsubscribe from the LEP Network Bulletin?" in page.text
    assert _status(site, reader, Publication.BULLETIN) is SubscriptionStatus.ACTIVE


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # altered signature
        lambda t: "2" + t[1:] if not t.startswith("2") else "3" + t[1:],  # another contact
        lambda t: "forged-token",
    ],
)
def test_a_forged_or_altered_token_changes_nothing_and_says_so(
    site: Site, reader: str, mangle: object
) -> None:
    client = site.client()
    token = mangle(_token(site, reader))  # type: ignore[operator]
    for response in (
        client.get(f"/u/{token}"),
        client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}),
    ):
        assert response.status_code == 400
        assert "Nothing was changed" in response.text
    assert _status(site, reader, Publication.BULLETIN) is SubscriptionStatus.ACTIVE
    assert client.get(f"/p/{token}").status_code == 400


def test_preferences_offer_the_bulletin_to_lep_contacts_only(site: Site, reader: str) -> None:
    client = site.client()
    token = _token(site, reader)
    page = client.get(f"/p/{token}")
    assert 'value="bulletin"' in page.text
    saved = client.post(
        f"/p/{token}", data={"name": "Reader Zero-Renamed", "publication": ["newsletter"]}
    )
    assert saved.status_code == 200
    assert "Your preferences are saved" in saved.text
    assert _status(site, reader, Publication.BULLETIN) is SubscriptionStatus.UNSUBSCRIBED
    with Session(site.engine) as session:
        assert (
            session.exec(select(Contact.name).where(col(Contact.email) == reader)).one()
            == "Reader Zero-Renamed"
        )
    # An external contact is never offered, and cannot take, the internal bulletin.
    with Session(site.engine) as session:
        contact = session.exec(select(Contact).where(col(Contact.email) == reader)).one()
        contact.organisation_id = external_org(session)
        session.commit()
    page = client.get(f"/p/{token}")
    assert 'value="bulletin"' not in page.text
    client.post(f"/p/{token}", data={"name": "Reader", "publication": ["bulletin", "newsletter"]})
    assert _status(site, reader, Publication.BULLETIN) is SubscriptionStatus.UNSUBSCRIBED


def test_signing_up_needs_a_confirmation_and_keeps_the_consent_record(site: Site) -> None:
    client = site.client()
    with clock.frozen(datetime(2027, 2, 1, 10, tzinfo=UTC)) as frozen:
        page = client.post(
            "/signup",
            data={
                "name": "Sam Stakeholder",
                "email": "Sam@Partner.example",
                "organisation": "FSB",
                "consent": "yes",
            },
        )
        assert page.status_code == 200
        assert "Check your inbox" in page.text
        assert _status(site, "sam@partner.example", Publication.NEWSLETTER) is None
        [confirmation] = site.captured()
        assert confirmation["To"] == "sam@partner.example"
        link = urlsplit(link_in(confirmation, "/confirm/")).path
        # The link itself changes nothing (scanners follow links); the button does.
        assert "Confirm my subscription" in client.get(link).text
        assert _status(site, "sam@partner.example", Publication.NEWSLETTER) is None
        frozen.advance(timedelta(minutes=5))
        confirmed = client.post(link)
        assert confirmed.status_code == 200
        assert "Thank you, Sam Stakeholder" in confirmed.text
        assert client.post(link).status_code == 200  # harmless to repeat
    assert _status(site, "sam@partner.example", Publication.NEWSLETTER) is SubscriptionStatus.ACTIVE
    with Session(site.engine) as session:
        sam = session.exec(select(Contact).where(col(Contact.email) == "sam@partner.example")).one()
    assert sam.lawful_basis is LawfulBasis.CONSENT
    assert sam.consent_source == "web sign-up"
    assert sam.consented_at == datetime(2027, 2, 1, 10, tzinfo=UTC)
    assert sam.consent_confirmed_at == datetime(2027, 2, 1, 10, 5, tzinfo=UTC)
    assert sam.consent_wording_version == site.config.settings.signup.wording_version


def test_sign_ups_never_reveal_a_subscriber_and_cannot_flood(site: Site, reader: str) -> None:
    client = site.client()
    known = client.post("/signup", data={"name": "Reader", "email": reader, "consent": "yes"})
    unknown = client.post(
        "/signup", data={"name": "Newcomer", "email": "new@partner.example", "consent": "yes"}
    )
    assert known.text == unknown.text
    assert [m["To"] for m in site.captured()] == ["new@partner.example"]
    # No confirmation storm: three emails a day to one address at most.
    for _ in range(3):
        client.post(
            "/signup", data={"name": "Newcomer", "email": "new@partner.example", "consent": "yes"}
        )
    limited = client.post(
        "/signup", data={"name": "Newcomer", "email": "new@partner.example", "consent": "yes"}
    )
    assert limited.status_code == 429  # the sixth from this network address within the hour
    assert [m["To"] for m in site.captured()].count("new@partner.example") == 3


def test_bad_sign_ups_are_refused_by_field(site: Site) -> None:
    client = site.client()
    no_consent = client.post("/signup", data={"name": "A", "email": "a@partner.example"})
    assert no_consent.status_code == 422
    assert "tick the box" in no_consent.text
    bad = client.post("/signup", data={"name": "A", "email": "not-an-address", "consent": "yes"})
    assert bad.status_code == 422
    assert "email:" in bad.text
    evil = client.post(
        "/signup",
        data={"name": "A\r\nBcc: x@evil.example", "email": "a@partner.example", "consent": "yes"},
    )
    assert evil.status_code == 422
    assert site.captured() == []


def test_a_forged_confirmation_link_changes_nothing(site: Site) -> None:
    client = site.client()
    response = client.post("/confirm/1.forged.signature")
    assert response.status_code == 400
    assert "not valid" in response.text


def test_staff_pages_need_a_login_and_forms_need_their_csrf_token(site: Site) -> None:
    client = site.client()
    for path in ("/staff", "/staff/issues", "/staff/contacts", "/staff/mailbox"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/staff/login")
    login(client, "editor")
    assert client.get("/staff").status_code == 200
    missing = client.post("/staff/issues/new", data={"publication": "bulletin"})
    assert missing.status_code == 403
    wrong = client.post("/staff/issues/new", data={"publication": "bulletin", "csrf": "guess"})
    assert wrong.status_code == 403


def test_an_editor_cannot_approve_and_an_approver_not_their_own_edit(
    site: Site, reader: str
) -> None:
    with Session(site.engine) as session:
        draft = drafted(session, "newsletter.md", editor="approver@lepnetwork.example")
        draft_id = draft.id
    editor = site.client()
    login(editor, "editor")
    token = csrf_of(editor.get("/staff").text)
    assert editor.post(f"/staff/issues/{draft_id}/approve", data={"csrf": token}).status_code == 403
    approver = site.client()
    login(approver, "approver")
    token = csrf_of(approver.get("/staff").text)
    refused = approver.post(
        f"/staff/issues/{draft_id}/approve", data={"csrf": token}, follow_redirects=True
    )
    assert "another approver must approve it" in refused.text
    with Session(site.engine) as session:
        assert issues.get(session, draft_id or 0).status is IssueStatus.DRAFT


def test_view_online_and_the_archive(site: Site, reader: str) -> None:
    client = site.client()
    token = _token(site, reader)
    view = client.get(f"/v/{token}")
    assert view.status_code == 200
    assert "Dear Reader 0," in view.text
    assert client.get("/archive").status_code == 200
    # The approved internal bulletin is not in the public archive.
    with Session(site.engine) as session:
        bulletin_id = session.exec(select(Issue)).one().id
    assert client.get(f"/archive/{bulletin_id}").status_code == 404
    # A sent newsletter is.
    with Session(site.engine) as session:
        newsletter = approved(session, "newsletter.md")
        rule = publications.load(LISTS, Publication.NEWSLETTER).audience
        outbox.enqueue(session, newsletter, rule)
        session.commit()
        newsletter_id = newsletter.id
    asyncio.run(site.app.state.ctx.drain_outbox())
    listing = client.get("/archive")
    assert f"/archive/{newsletter_id}" in listing.text
    archived = client.get(f"/archive/{newsletter_id}")
    assert archived.status_code == 200
    assert "Dear reader," in archived.text
    assert client.get("/privacy").status_code == 200


def test_purging_forgets_unconfirmed_sign_ups(site: Site) -> None:
    client = site.client()
    client.post("/signup", data={"name": "Late", "email": "late@partner.example", "consent": "yes"})
    with Session(site.engine) as session:
        with clock.frozen(clock.now() + timedelta(days=5)):
            assert subscriptions.purge_unconfirmed(session, site.config.settings.signup) == 1
        assert (
            session.exec(
                select(Contact).where(col(Contact.email) == "late@partner.example")
            ).first()
            is None
        )
    assert ContactStatus.ACTIVE.value == "active"
