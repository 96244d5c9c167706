"""The LEP firewall attacked at every door: sign-up, confirmation, preferences, view online,
the console, the command line, the importer, the claim before SMTP, and the send itself.

Who may be in an internal audience: a contact staff put in a LEP (import, console, CLI),
or one whose confirmed address is at one of that LEP's own mail domains. Nothing a reader
types makes them one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import audiences, db, delivery, editorial, issuefile, issues, outbox, publications
from mailer.models import (
    AuditEntry,
    CapturedMessage,
    Contact,
    Delivery,
    DeliveryStatus,
    Issue,
    Organisation,
    OrganisationKind,
    Publication,
    Subscription,
    SubscriptionStatus,
)
from mailer.organisations import Directory
from mailer.transports import SmtpTransport
from tests.conftest import LISTS
from tests.helpers import cli, write_csv
from tests.outbox_fixtures import APPROVER, EDITOR
from tests.rendering_fixtures import DATA, ZONE, definition, renderer
from tests.smtp_server import running
from tests.test_cli import run
from tests.web_fixtures import Site, build_site, csrf_of, link_in, login

HEADER = "email,name,organisation,role\n"
D2N2 = "Derby, Derbyshire, Nottingham and Nottinghamshire LEP"


# -- what the doors are made of -------------------------------------------------------


def _contact(engine: Engine, email: str) -> tuple[Contact, Organisation]:
    with Session(engine) as session:
        contact = session.exec(select(Contact).where(col(Contact.email) == email)).one()
        organisation = session.get(Organisation, contact.organisation_id)
        assert organisation is not None
        return contact, organisation


def _subscriptions(engine: Engine, email: str) -> dict[Publication, SubscriptionStatus]:
    with Session(engine) as session:
        rows = session.exec(
            select(Subscription)
            .join(Contact, col(Contact.id) == col(Subscription.contact_id))
            .where(col(Contact.email) == email)
        ).all()
        return {row.publication: row.status for row in rows}


def _sign_up(site: Site, client: TestClient, email: str, organisation: str) -> bool:
    """Sign up on the public site and press the emailed button; whether it was confirmed."""
    before = len(site.captured())
    page = client.post(
        "/signup",
        data={"name": "Pat Reader", "email": email, "organisation": organisation, "consent": "y"},
    )
    assert page.status_code == 200, page.text
    mail = [m for m in site.captured()[before:] if str(m["To"]) == email]
    if not mail:
        return False
    confirmed = client.post(urlsplit(link_in(mail[-1], "/confirm/")).path)
    assert confirmed.status_code == 200, confirmed.text
    return True


def _edit(staff: TestClient, contact: Contact, organisation_id: int | None) -> int:
    """Save a contact's form in the console with another organisation; the status code."""
    page = staff.get(f"/staff/contacts/{contact.id}")
    return staff.post(
        f"/staff/contacts/{contact.id}",
        data={
            "csrf": csrf_of(page.text),
            "name": contact.name,
            "role": contact.role.value,
            "organisation_id": str(organisation_id),
        },
    ).status_code


def _recipients(engine: Engine, issue_id: int) -> set[str]:
    """Every address the capture transport kept a copy of the issue for."""
    with Session(engine) as session:
        issue = session.get(Issue, issue_id)
        assert issue is not None
        rows = session.exec(
            select(CapturedMessage).where(col(CapturedMessage.subject) == issue.subject)
        ).all()
    return {address for row in rows for address in row.recipients.split(",")}


def _token(site: Site, engine: Engine, email: str, issue_id: int) -> str:
    """The token a reader's links carry in their copy of ``issue_id``."""
    contact, _ = _contact(engine, email)
    assert contact.id is not None
    token: str = site.app.state.ctx.signer.recipient(contact.id, issue_id)
    return token


@dataclasses.dataclass
class Deployment:
    """A deployment set up through the CLI, and the site serving the same database."""

    project: Path
    engine: Engine
    site: Site
    bulletin: int
    newsletter: int

    def send(self, issue_id: int) -> set[str]:
        """`mailer send ISSUE --yes` as a process; who received that issue."""
        sent = cli(self.project, "send", str(issue_id), "--yes")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        return _recipients(self.engine, issue_id)


@pytest.fixture
def deployment(project: Path, db_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """Three staff-imported LEP contacts, an approved bulletin and an approved newsletter,
    all made with `mailer` processes; the site (HTTP) on the same database."""
    # Setting up is not what is attacked here: it runs in this process, as the CLI would.
    assert run("init").exit_code == 0
    engine = db.create_engine(db_url)
    (tmp_path / "site").mkdir()
    site = build_site(engine, tmp_path / "site")  # and its staff: editor, approver, admin
    leps = write_csv(
        tmp_path / "leps.csv",
        HEADER + "chair@d2n2lep.org,Ann Chair,D2N2,chair\n"
        "officer@semlep.com,Bo Officer,SEMLEP,officer\n"
        "ceo@gbslep.co.uk,Cy Chief,GBSLEP,chief executive\n",
    )
    assert run("contacts", "import", str(leps)).exit_code == 0
    assert run("calendar", "plan", "--year", "2027").exit_code == 0
    for number, name in ((1, "bulletin.md"), (2, "newsletter.md")):
        made = run("issue", "import", str(DATA / name), "--by", EDITOR)
        assert made.exit_code == 0, made.output
        approved = run("issue", "approve", str(number), "--by", APPROVER)
        assert approved.exit_code == 0, approved.output
    try:
        yield Deployment(project, engine, site, 1, 2)
    finally:
        engine.dispose()


# -- the reproduction, and the doors one by one ------------------------------------------


def test_a_sign_up_naming_a_lep_is_never_its_contact_nor_gets_the_bulletin(
    deployment: Deployment,
) -> None:
    # The reported walk-through: sign up naming D2N2 from an outside address, confirm,
    # open preferences from a newsletter and tick the bulletin, then send the bulletin.
    site, engine = deployment.site, deployment.engine
    client = site.client()
    assert _sign_up(site, client, "eve@gmail.example", "D2N2")
    eve, group = _contact(engine, "eve@gmail.example")
    assert group.kind is OrganisationKind.OTHER  # the public sign-up group
    assert eve.stated_organisation == "D2N2"  # kept for staff to review, never membership
    token = _token(site, engine, "eve@gmail.example", deployment.newsletter)
    page = client.get(f"/p/{token}")
    assert 'value="newsletter"' in page.text
    assert 'value="bulletin"' not in page.text
    forged = client.post(
        f"/p/{token}", data={"name": "Eve", "publication": ["bulletin", "newsletter"]}
    )
    assert forged.status_code == 200
    assert _subscriptions(engine, "eve@gmail.example") == {
        Publication.NEWSLETTER: SubscriptionStatus.ACTIVE
    }
    # Even a link naming the bulletin (as if she had been sent one) shows her nothing.
    viewed = client.get(f"/v/{_token(site, engine, 'eve@gmail.example', deployment.bulletin)}")
    assert viewed.status_code == 400
    assert "for contacts of LEPs only" in viewed.text
    received = deployment.send(deployment.bulletin)
    assert received == {"chair@d2n2lep.org", "officer@semlep.com", "ceo@gbslep.co.uk"}
    assert "eve@gmail.example" in deployment.send(deployment.newsletter)


def test_a_confirmed_address_at_a_lep_s_own_domain_makes_a_lep_contact(
    deployment: Deployment,
) -> None:
    # The double opt-in proves the mailbox; the domain is the LEP's own (lists/leps.csv).
    site, engine = deployment.site, deployment.engine
    client = site.client()
    cases = {
        "new.officer@d2n2lep.org": OrganisationKind.LEP,  # the domain itself
        "press@news.d2n2lep.org": OrganisationKind.LEP,  # a subdomain of it
        "spoof@d2n2lep.org.evil.example": OrganisationKind.OTHER,  # only looks like it
        "spoof@notd2n2lep.org": OrganisationKind.OTHER,
    }
    for email in cases:
        assert _sign_up(site, client, email, "")
    for email, kind in cases.items():
        _, organisation = _contact(engine, email)
        assert organisation.kind is kind, email
        if kind is OrganisationKind.LEP:
            assert organisation.name == D2N2
    # Offered the bulletin in preferences, only the LEP's own addresses can take it.
    for email in cases:
        token = _token(site, engine, email, deployment.newsletter)
        client.post(f"/p/{token}", data={"name": "Pat", "publication": ["bulletin"]})
    received = deployment.send(deployment.bulletin)
    assert {"new.officer@d2n2lep.org", "press@news.d2n2lep.org"} <= received
    assert not received & {"spoof@d2n2lep.org.evil.example", "spoof@notd2n2lep.org"}
    with Session(engine) as session:
        entry = session.exec(
            select(AuditEntry).where(col(AuditEntry.action) == "contact:organisation")
        ).first()
    assert entry is not None and "confirmed address" in entry.actor


def test_staff_link_a_stated_organisation_in_the_console_and_the_cli(
    deployment: Deployment,
) -> None:
    # A reader's stated organisation waits for staff; one action links it, and says so.
    site, engine, project = deployment.site, deployment.engine, deployment.project
    client = site.client()
    assert _sign_up(site, client, "jo@d2n2.example", "D2N2")
    assert _sign_up(site, client, "kim@semlep.example", "SEMLEP")
    listed = cli(project, "contacts", "list", "--stated")
    assert listed.returncode == 0
    assert "(stated: D2N2)" in listed.stdout and "kim@semlep.example" in listed.stdout
    assert "chair@d2n2lep.org" not in listed.stdout
    login(client, "editor")
    jo, _ = _contact(engine, "jo@d2n2.example")
    review = client.get("/staff/contacts?stated=1")
    assert "jo@d2n2.example" in review.text and "chair@d2n2lep.org" not in review.text
    page = client.get(f"/staff/contacts/{jo.id}")
    assert f"Link to {D2N2}" in page.text.replace("&#39;", "'")
    linked = client.post(
        f"/staff/contacts/{jo.id}/link", data={"csrf": csrf_of(page.text)}, follow_redirects=True
    )
    assert f"Linked to {D2N2}" in linked.text
    jo, lep = _contact(engine, "jo@d2n2.example")
    assert (lep.name, jo.stated_organisation) == (D2N2, None)
    assert _subscriptions(engine, "jo@d2n2.example")[Publication.BULLETIN] is (
        SubscriptionStatus.ACTIVE
    )
    by_cli = cli(project, "contacts", "link", "kim@semlep.example")
    assert by_cli.returncode == 0, by_cli.stderr
    assert "Linked kim@semlep.example to South East Midlands LEP (lep)" in by_cli.stdout
    refused = cli(project, "contacts", "link", "chair@d2n2lep.org")
    assert refused.returncode == 2 and "stated no organisation" in refused.stderr
    with Session(engine) as session:
        actors = {
            e.actor
            for e in session.exec(
                select(AuditEntry).where(col(AuditEntry.action) == "contact:organisation")
            )
        }
    assert "editor@lepnetwork.example" in actors
    assert any("command line" in actor for actor in actors)
    received = deployment.send(deployment.bulletin)
    assert {"jo@d2n2.example", "kim@semlep.example"} <= received


def test_moving_a_contact_out_of_its_lep_ends_the_bulletin_at_every_staff_door(
    deployment: Deployment, tmp_path: Path
) -> None:
    # Console form, CLI import --update: whichever door moves a LEP contact to an outside
    # organisation, its bulletin ends at once and the next bulletin does not reach it.
    site, engine, project = deployment.site, deployment.engine, deployment.project
    client = site.client()
    login(client, "editor")
    ann, _ = _contact(engine, "chair@d2n2lep.org")
    with Session(engine) as session:
        dbt = Directory.load(session).find("DBT")
        assert dbt is not None
    saved = _edit(client, ann, dbt.id)
    assert saved == 303
    assert Publication.BULLETIN not in _subscriptions(engine, "chair@d2n2lep.org")
    moved = write_csv(
        tmp_path / "moved.csv",
        "email,name,organisation,role,lawful_basis\n"
        "officer@semlep.com,Bo Officer,DBT,officer,legitimate_interest\n",
    )
    update = cli(project, "contacts", "import", str(moved), "--update")
    assert update.returncode == 0 and "1 updated" in update.stdout, update.stdout
    assert Publication.BULLETIN not in _subscriptions(engine, "officer@semlep.com")
    # The importer refuses to give an outside contact the bulletin outright.
    bad = write_csv(
        tmp_path / "bad.csv",
        "email,name,organisation,role,lawful_basis,publications\n"
        "sneak@gov.example,Sneak,DBT,stakeholder,legitimate_interest,bulletin\n",
    )
    refused = cli(project, "contacts", "import", str(bad))
    assert "1 rejected" in refused.stdout
    assert "publications" in refused.stdout and "the bulletin is internal" in refused.stdout
    assert deployment.send(deployment.bulletin) == {"ceo@gbslep.co.uk"}


def test_the_claim_refuses_a_contact_moved_out_after_the_snapshot(
    deployment: Deployment,
) -> None:
    # The bulletin's audience is snapshotted; then staff move a recipient out of the LEPs.
    # The sender checks again before SMTP: that copy is never handed over.
    engine = deployment.engine
    with Session(engine) as session:
        issue = issues.get(session, deployment.bulletin)
        queued = outbox.enqueue(
            session, issue, publications.load(LISTS, issue.publication).audience
        )
        session.commit()
    assert queued == 3
    client = deployment.site.client()
    login(client, "editor")
    cy, _ = _contact(engine, "ceo@gbslep.co.uk")
    with Session(engine) as session:
        media = session.exec(
            select(Organisation).where(col(Organisation.kind) == OrganisationKind.MEDIA)
        ).first()
        assert media is not None
    _edit(client, cy, media.id)
    assert deployment.send(deployment.bulletin) == {"chair@d2n2lep.org", "officer@semlep.com"}
    with Session(engine) as session:
        row = session.exec(select(Delivery).where(col(Delivery.contact_id) == cy.id)).one()
    assert row.status is DeliveryStatus.FAILED
    assert row.last_reply is not None and "firewall" in row.last_reply


# -- random journeys through every door ---------------------------------------------------

ORGS = ("D2N2", "SEMLEP", "DBT", "FSB", "Demo News", "Atlantis", "")
KNOWN = ORGS[:5]
LEPS = {"D2N2", "SEMLEP"}
DOMAINS = ("gmail.example", "d2n2lep.org", "news.semlep.com", "d2n2lep.org.evil.example")
LEP_DOMAINS = {"d2n2lep.org": "D2N2", "news.semlep.com": "SEMLEP"}  # from lists/leps.csv
PUBLIC = "public"

operation = st.one_of(
    st.tuples(st.just("signup"), st.integers(0, 3), st.sampled_from(ORGS)),
    st.tuples(
        st.just("preferences"),
        st.integers(0, 3),
        st.sets(st.sampled_from(["bulletin", "newsletter"])),
    ),
    st.tuples(st.just("import"), st.integers(0, 3), st.sampled_from(KNOWN), st.booleans()),
    st.tuples(st.just("edit"), st.integers(0, 3), st.sampled_from(KNOWN)),
    st.tuples(st.just("link"), st.integers(0, 3)),
)


class Journey:
    """Drives the doors over HTTP (public site and console) and keeps its own model of where
    each address belongs, from the rules alone: staff put a contact somewhere (import of a
    new contact, console edit, link to the stated organisation), or a confirmed sign-up
    from a LEP's own domain joins that LEP; nothing else moves anyone."""

    def __init__(self, site: Site, tmp_path: Path, prefix: str) -> None:
        self.site, self.engine, self.tmp_path = site, site.engine, tmp_path
        self.public = site.client()
        self.staff = site.client()
        login(self.staff, "editor")
        self.addresses = [f"{prefix}.{n}@{DOMAINS[n]}" for n in range(4)]
        self.where: dict[str, str] = {}  # address -> organisation short name, or PUBLIC
        self.stated: dict[str, str | None] = {}

    def lep_contacts(self) -> set[str]:
        return {address for address, org in self.where.items() if org in LEPS}

    def _contact(self, email: str) -> Contact | None:
        with Session(self.engine) as session:
            return session.exec(select(Contact).where(col(Contact.email) == email)).first()

    def _org_id(self, text: str) -> int:
        with Session(self.engine) as session:
            found = Directory.load(session).find(text)
        assert found is not None and found.id is not None
        return found.id

    def _move(self, email: str, org: str) -> None:
        if self.where.get(email) != org:
            self.stated[email] = None
        self.where[email] = org

    def signup(self, n: int, typed: str) -> None:
        email = self.addresses[n]
        if not _sign_up(self.site, self.public, email, typed):
            return  # no confirmation sent (already a subscriber): nothing happens
        lep = LEP_DOMAINS.get(email.rsplit("@", 1)[1])
        if email not in self.where:
            self.where[email], self.stated[email] = PUBLIC, typed or None
        if lep is not None and self.where[email] == PUBLIC:
            self._move(email, lep)

    def preferences(self, n: int, wanted: set[str]) -> None:
        contact = self._contact(self.addresses[n])
        if contact is None or contact.id is None:
            return
        with Session(self.engine) as session:
            newsletter = session.exec(
                select(Issue.id).where(col(Issue.publication) == Publication.NEWSLETTER)
            ).first()
        token = self.site.app.state.ctx.signer.recipient(contact.id, newsletter or 1)
        answer = self.public.post(
            f"/p/{token}", data={"name": "Pat", "publication": sorted(wanted)}
        )
        assert answer.status_code == 200, answer.text

    def import_row(self, n: int, org: str, bulletin: bool) -> None:
        email = self.addresses[n]
        cell = "bulletin;newsletter" if bulletin else ""
        path = write_csv(
            self.tmp_path / f"{email}.csv",
            "email,name,organisation,role,lawful_basis,publications\n"
            f"{email},Pat Reader,{org},officer,legitimate_interest,{cell}\n",
        )
        page = self.staff.get("/staff/contacts/import")
        with path.open("rb") as handle:
            answer = self.staff.post(
                "/staff/contacts/import",
                data={"csrf": csrf_of(page.text)},
                files={"file": (path.name, handle, "text/csv")},
            )
        assert answer.status_code == 200, answer.text
        # A new row is written unless it asks the bulletin for an outsider; a contact
        # already held is left alone (the console's import has no --update).
        if email not in self.where and (org in LEPS or not bulletin):
            self.where[email], self.stated[email] = org, None

    def edit(self, n: int, org: str) -> None:
        email = self.addresses[n]
        contact = self._contact(email)
        if contact is None:
            return
        assert _edit(self.staff, contact, self._org_id(org)) == 303
        self._move(email, org)

    def link(self, n: int) -> None:
        email = self.addresses[n]
        contact = self._contact(email)
        if contact is None:
            return
        page = self.staff.get(f"/staff/contacts/{contact.id}")
        self.staff.post(f"/staff/contacts/{contact.id}/link", data={"csrf": csrf_of(page.text)})
        stated = self.stated.get(email)
        if stated in KNOWN:
            assert stated is not None
            self._move(email, stated)
            self.stated[email] = None

    def check_the_database_agrees(self) -> None:
        """Everyone is where the model says: the doors did what the rules say, no more."""
        with Session(self.engine) as session:
            directory = Directory.load(session)
            for email, org in self.where.items():
                contact = session.exec(select(Contact).where(col(Contact.email) == email)).one()
                stored = session.get(Organisation, contact.organisation_id)
                assert stored is not None
                if org == PUBLIC:
                    assert stored.kind is OrganisationKind.OTHER, (email, stored.name)
                else:
                    expected = directory.find(org)
                    assert expected is not None and stored.id == expected.id, (email, org)
                assert contact.stated_organisation == self.stated[email], email


@pytest.fixture
def roomy_site(engine: Engine, tmp_path: Path) -> Site:
    """The site with the sign-up rate limits out of the way (the journeys sign up often)."""
    site = build_site(engine, tmp_path)
    signup = site.config.settings.signup.model_copy(
        update={"per_ip_per_hour": 1_000_000, "per_address_per_day": 1_000_000}
    )
    config = dataclasses.replace(
        site.config, settings=site.config.settings.model_copy(update={"signup": signup})
    )
    site.app.state.ctx.config = config
    site.config = config
    return site


_journeys = itertools.count()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(operation, min_size=1, max_size=8))
def test_property_no_journey_through_the_doors_puts_an_outsider_in_the_bulletin(
    roomy_site: Site, tmp_path: Path, steps: list[tuple[object, ...]]
) -> None:
    # Random sequences of sign-up (with confirmation), preferences, console import, console
    # edit and link; then a bulletin is resolved and sent through a real SMTP server. Only
    # addresses staff made LEP contacts, or confirmed at a LEP's own domain, receive it.
    number = next(_journeys)
    journey = Journey(roomy_site, tmp_path, f"j{number}")
    doors: dict[str, Callable[..., None]] = {
        "signup": journey.signup,
        "preferences": journey.preferences,
        "import": journey.import_row,
        "edit": journey.edit,
        "link": journey.link,
    }
    for name, *args in steps:
        doors[str(name)](*args)
    engine = roomy_site.engine
    with Session(engine) as session:
        document = dataclasses.replace(
            issuefile.read(DATA / "bulletin.md", ZONE),
            number="",
            slot_at=None,
            subject=f"Bulletin for journey {number}",
        )
        issue = editorial.save(
            session, document, editor=EDITOR, settings=roomy_site.config.settings
        )
        issue_id = issue.id
        assert issue_id is not None
        editorial.approve(
            session,
            issue_id,
            approver=APPROVER,
            renderer=renderer(),
            definition=definition(Publication.BULLETIN),
            settings=roomy_site.config.settings,
        )
        rule = publications.load(LISTS, Publication.BULLETIN).audience
        resolved = {r.email for r in audiences.resolve(session, Publication.BULLETIN, rule)}
        outbox.enqueue(session, issue, rule)
        session.commit()
    with running() as (controller, handler):
        sender = delivery.Sender(
            engine,
            roomy_site.config,
            SmtpTransport("127.0.0.1", controller.port, timeout=10),
            signer=roomy_site.app.state.ctx.signer,
        )
        asyncio.run(sender.run(issue_id=issue_id))
    received = {r for m in handler.messages for r in m.recipients}
    mine = {a for a in received if a.startswith(f"j{number}.")}
    assert mine <= journey.lep_contacts(), (steps, journey.where)
    assert {a for a in resolved if a.startswith(f"j{number}.")} == mine
    journey.check_the_database_agrees()


def test_a_replayed_confirmation_link_undoes_nothing(deployment: Deployment) -> None:
    # A confirmation link is valid for days. Used again after staff moved the contact out
    # of its LEP, and after the reader unsubscribed, it changes nothing at all.
    site, engine = deployment.site, deployment.engine
    client = site.client()
    before = len(site.captured())
    client.post(
        "/signup",
        data={"name": "Con Tractor", "email": "contractor@d2n2lep.org", "consent": "y"},
    )
    [mail] = site.captured()[before:]
    link = urlsplit(link_in(mail, "/confirm/")).path
    assert client.post(link).status_code == 200
    assert _contact(engine, "contractor@d2n2lep.org")[1].name == D2N2  # the LEP's domain
    staff = site.client()
    login(staff, "editor")
    contractor, _ = _contact(engine, "contractor@d2n2lep.org")
    with Session(engine) as session:
        dbt = Directory.load(session).find("DBT")
        assert dbt is not None
    _edit(staff, contractor, dbt.id)
    unsubscribe = client.post(
        f"/u/{_token(site, engine, 'contractor@d2n2lep.org', deployment.newsletter)}"
    )
    assert unsubscribe.status_code == 200
    assert client.post(link).status_code == 200  # harmless to repeat...
    assert _contact(engine, "contractor@d2n2lep.org")[1].name == dbt.name  # ...and inert
    assert _subscriptions(engine, "contractor@d2n2lep.org")[Publication.NEWSLETTER] is (
        SubscriptionStatus.UNSUBSCRIBED
    )
    assert "contractor@d2n2lep.org" not in deployment.send(deployment.bulletin)
