"""Contacts in the console: pages and filters (also the CLI's), add, edit, bulk actions
behind the firewall, the page found by id, and an import checked then applied."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import clock, importer
from mailer.contacts import email_hash
from mailer.models import (
    AuditEntry,
    Contact,
    ContactStatus,
    LawfulBasis,
    Publication,
    Role,
    Subscription,
    SubscriptionStatus,
)
from tests.helpers import write_csv
from tests.outbox_fixtures import people
from tests.test_cli import run
from tests.web_fixtures import Site, build_site, csrf_of, login

ZONE = ZoneInfo("Europe/London")


@pytest.fixture
def site(engine: Engine, tmp_path: Path) -> Site:
    return build_site(engine, tmp_path)


def _client(site: Site, role: str = "editor") -> tuple[TestClient, str]:
    client = site.client()
    login(client, role)
    return client, csrf_of(client.get("/staff").text)


def _outsider(session: Session, email: str, name: str = "Zed Civil") -> Contact:
    """A contact of a government department: the newsletter only (the firewall)."""
    fields = {
        "email": email,
        "name": name,
        "organisation": "DBT",
        "role": "officer",
        "lawful_basis": "consent",
        "consented_at": "2026-01-05",
    }
    contact = importer.add_contact(session, fields, zone=ZONE, actor="test")
    session.commit()
    return contact


def _subscribed(site: Site, contact_id: int | None) -> dict[Publication, SubscriptionStatus]:
    with Session(site.engine, expire_on_commit=False) as session:
        rows = session.exec(select(Subscription).where(col(Subscription.contact_id) == contact_id))
        return {s.publication: s.status for s in rows}


def _contact(site: Site, contact_id: int | None) -> Contact:
    with Session(site.engine, expire_on_commit=False) as session:
        found = session.get(Contact, contact_id)
        assert found is not None
        return found


def test_contacts_come_in_pages_that_keep_their_filters(site: Site) -> None:
    with Session(site.engine, expire_on_commit=False) as session:
        leps = people(session, 60)
        leps[3].role = Role.CHAIR
        leps[4].status = ContactStatus.DISABLED
        session.commit()
        outsiders = [_outsider(session, f"civil{n}@dbt.example") for n in range(3)]
    client, _ = _client(site)
    first = client.get("/staff/contacts")
    assert "1 to 50 of 63 contacts" in first.text
    assert 'href="/staff/contacts?page=2" rel="next"' in first.text
    assert "Previous page" not in first.text
    last = client.get("/staff/contacts?page=2")
    assert "51 to 63 of 63 contacts" in last.text and "Next page" not in last.text
    assert client.get("/staff/contacts?page=99").text.count('name="ids"') == 13  # the last page
    assert "1 to 50 of 63" in client.get("/staff/contacts?page=abc").text

    bulletin = client.get("/staff/contacts?publication=bulletin")
    assert "1 to 50 of 60 contacts" in bulletin.text  # the outsiders have no bulletin
    assert 'href="/staff/contacts?publication=bulletin&amp;page=2"' in bulletin.text
    second = client.get("/staff/contacts?publication=bulletin&page=2")
    assert "51 to 60 of 60" in second.text
    assert 'href="/staff/contacts?publication=bulletin" rel="prev"' in second.text

    government = client.get("/staff/contacts?kind=government&q=civil")
    assert "1 to 3 of 3 contacts" in government.text
    assert all(f"/staff/contacts/{c.id}" in government.text for c in outsiders)
    assert "1 to 1 of 1 contacts" in client.get("/staff/contacts?role=chair").text
    disabled = client.get("/staff/contacts?status=disabled&org=D2N2")
    assert "1 to 1 of 1" in disabled.text and leps[4].email in disabled.text
    assert "1 to 50 of 63" in client.get("/staff/contacts?kind=nonsense").text  # ignored: all
    assert "No contacts" in client.get("/staff/contacts?kind=lep&publication=bulletin&q=zz").text


def test_the_cli_lists_with_the_same_filters(project: Path, tmp_path: Path) -> None:
    # `mailer contacts list` asks the same domain query as the console's list.
    assert run("init").exit_code == 0
    path = write_csv(
        tmp_path / "c.csv",
        "email,name,organisation,role,lawful_basis,consented_at,publications\n"
        "ann@d2n2.example,Ann Lee,D2N2,chair,,,\n"
        "zed@dbt.example,Zed Civil,DBT,officer,consent,2025-01-02,newsletter\n"
        "yan@dbt.example,Yan Civil,DBT,officer,consent,2025-01-02,none\n",
    )
    assert run("contacts", "import", str(path)).exit_code == 0
    listed = run(
        "contacts", "list", "--kind", "government", "--publication", "newsletter", "--json"
    )
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    assert [c["email"] for c in data["contacts"]] == ["zed@dbt.example"] and data["total"] == 1
    paged = json.loads(run("contacts", "list", "--limit", "1", "--offset", "1", "--json").stdout)
    assert [c["email"] for c in paged["contacts"]] == ["zed@dbt.example"] and paged["total"] == 3
    assert run("contacts", "list", "--status", "erased-ish").exit_code != 0


def test_one_contact_is_added_with_the_importers_rules(site: Site) -> None:
    client, token = _client(site)
    form = client.get("/staff/contacts/new")
    assert form.status_code == 200 and 'name="lawful_basis"' in form.text
    fields = {
        "csrf": token,
        "email": " Zoe.Partner@DBT.example ",
        "name": "Zoë Partner",
        "organisation": "Department for Business and Trade",
        "role": "officer",
        "lawful_basis": "consent",
        "consented_at": "2026-02-03",
        "publications": "bulletin;newsletter",
    }
    internal = client.post("/staff/contacts/new", data=fields)
    assert internal.status_code == 422
    assert "the bulletin is internal" in internal.text
    assert 'id="publications" name="publications" aria-invalid="true"' in internal.text
    assert 'value="Zoë Partner"' in internal.text  # what was typed is kept
    undated = client.post(
        "/staff/contacts/new", data={**fields, "publications": "", "consented_at": ""}
    )
    assert undated.status_code == 422 and "consent needs the date" in undated.text
    added = client.post("/staff/contacts/new", data={**fields, "publications": ""})
    assert added.status_code == 303, added.text
    contact_id = int(added.headers["location"].rsplit("/", 1)[1])
    contact = _contact(site, contact_id)
    assert contact.email == "zoe.partner@dbt.example"
    assert contact.lawful_basis is LawfulBasis.CONSENT and contact.consented_at is not None
    assert contact.consent_source == "added in the console by editor@lepnetwork.example"
    assert _subscribed(site, contact_id) == {Publication.NEWSLETTER: SubscriptionStatus.ACTIVE}
    again = client.post("/staff/contacts/new", data={**fields, "publications": ""})
    assert again.status_code == 422 and f"already contact {contact_id}" in again.text
    with Session(site.engine, expire_on_commit=False) as session:
        [entry] = session.exec(
            select(AuditEntry).where(col(AuditEntry.action) == "contact:add")
        ).all()
        assert entry.actor == "editor@lepnetwork.example" and "newsletter" in entry.detail


def test_an_address_subscriptions_and_status_are_edited_by_the_rules(site: Site) -> None:
    with Session(site.engine, expire_on_commit=False) as session:
        lep, other = people(session, 2)
        outsider = _outsider(session, "zed@dbt.example")
        lep_id, outsider_id = lep.id, outsider.id
        taken, organisation_id = other.email, lep.organisation_id
    client, token = _client(site)
    details = {"csrf": token, "name": "Reader Zero", "role": "chair"}
    details["organisation_id"] = str(organisation_id)
    clash = client.post(f"/staff/contacts/{lep_id}", data={**details, "email": taken})
    assert clash.status_code == 422 and "already the address of contact" in clash.text
    assert 'id="email" name="email" value="' + taken + '"' in clash.text  # kept as typed
    bad = client.post(f"/staff/contacts/{lep_id}", data={**details, "email": "no@@where"})
    assert bad.status_code == 422 and 'aria-describedby="email-error"' in bad.text
    saved = client.post(
        f"/staff/contacts/{lep_id}", data={**details, "email": " New.Address@LEP0.example "}
    )
    assert saved.status_code == 303
    changed = _contact(site, lep_id)
    assert changed.email == "new.address@lep0.example" and changed.role is Role.CHAIR
    assert changed.email_hash == email_hash("new.address@lep0.example")

    # The firewall: the bulletin is refused for a government contact, and nothing changes.
    refused = client.post(
        f"/staff/contacts/{outsider_id}/subscriptions",
        data={"csrf": token, "publications": ["bulletin", "newsletter"]},
    )
    assert refused.status_code == 422 and "the bulletin is internal" in refused.text
    assert _subscribed(site, outsider_id) == {Publication.NEWSLETTER: SubscriptionStatus.ACTIVE}
    off = client.post(f"/staff/contacts/{lep_id}/subscriptions", data={"csrf": token})
    assert off.status_code == 303 and _subscribed(site, lep_id) == {}
    status = client.post(f"/staff/contacts/{lep_id}/status", data={"csrf": token, "status": "x"})
    assert status.status_code == 422
    client.post(f"/staff/contacts/{lep_id}/status", data={"csrf": token, "status": "disabled"})
    assert _contact(site, lep_id).status is ContactStatus.DISABLED
    history = client.get(f"/staff/contacts/{lep_id}").text
    for action in ("contact:email", "contact:subscriptions", "contact:status"):
        assert action in history
    assert "new.address@lep0.example" not in history.split("<h2>History</h2>")[1]


def test_bulk_actions_go_through_the_firewall_and_back_to_the_same_page(site: Site) -> None:
    with Session(site.engine, expire_on_commit=False) as session:
        lep = people(session, 1)[0]
        outsider = _outsider(session, "zed@dbt.example")
        ids = [str(lep.id), str(outsider.id)]
        assert lep.id is not None
        lep_id, outsider_id = lep.id, outsider.id
    client, token = _client(site)
    client.post(f"/staff/contacts/{lep_id}/subscriptions", data={"csrf": token})
    answer = client.post(
        "/staff/contacts/bulk",
        data={"csrf": token, "action": "add:bulletin", "ids": ids, "back": "kind=lep&page=2"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/staff/contacts?kind=lep&page=2"
    assert _subscribed(site, lep_id) == {Publication.BULLETIN: SubscriptionStatus.ACTIVE}
    assert Publication.BULLETIN not in _subscribed(site, outsider_id)
    shown = client.get(answer.headers["location"]).text
    assert "1 changed" in shown and f"contact {outsider_id}: the bulletin is internal" in shown
    sneaky = client.post(
        "/staff/contacts/bulk",
        data={"csrf": token, "action": "disable", "ids": ids, "back": "//evil.example/x"},
    )
    assert sneaky.headers["location"] == "/staff/contacts"
    assert _contact(site, lep_id).status is ContactStatus.DISABLED
    assert _contact(site, outsider_id).status is ContactStatus.DISABLED
    nothing = client.post("/staff/contacts/bulk", data={"csrf": token, "action": "disable"})
    assert nothing.status_code == 303


def test_a_contact_page_is_found_by_its_id_not_by_part_of_its_address(site: Site) -> None:
    # jbob@x contains bob@x: a substring search once showed jbob's summary on bob's page.
    with Session(site.engine, expire_on_commit=False) as session:
        jbob = _outsider(session, "jbob@x.example", "J Bob")
        fields = {"email": "bob@x.example", "name": "Bob", "organisation": "D2N2", "role": "chair"}
        bob = importer.add_contact(session, fields, zone=ZONE, actor="test")
        session.commit()
        assert jbob.id is not None and bob.id is not None and jbob.id < bob.id
        bob_id = bob.id
    client, _ = _client(site)
    page = client.get(f"/staff/contacts/{bob_id}").text
    summary = page.split("<h2>Details</h2>")[0]
    assert "bob@x.example" in summary and "jbob@x.example" not in summary
    assert "Nottinghamshire LEP (lep)" in summary and "Department for Business" not in summary
    assert "bulletin, newsletter" in summary


def _upload(client: TestClient, token: str, body: bytes, **extra: str) -> str:
    files = {"file": ("new leps.csv", body, "text/csv")}
    answer = client.post("/staff/contacts/import", files=files, data={"csrf": token, **extra})
    assert answer.status_code == 200, answer.text
    return answer.text


CSV = (
    b"email,name,organisation,role\n"
    b"ann@d2n2.example,Ann Lee,D2N2,chair\n"
    b"nobody@,No One,D2N2,chair\n"
    b"bo@d2n2.example,Bo Chan,D2N2,officer\n"
)


def _count(site: Site) -> int:
    with Session(site.engine, expire_on_commit=False) as session:
        return len(session.exec(select(Contact)).all())


def test_a_checked_import_is_applied_without_a_second_upload(site: Site) -> None:
    client, token = _client(site)
    checked = _upload(client, token, CSV, dry_run="yes")
    assert "new leps.csv (checked, nothing written)" in checked
    assert "2 would be added" in checked and _count(site) == 0
    kept = re.search(r'name="token" value="([^"]+)"', checked)
    assert kept, "no apply form"
    report = client.get(f"/staff/contacts/import/{kept.group(1)}/problems.csv")
    assert report.status_code == 200
    assert report.headers["content-disposition"] == 'attachment; filename="new_leps-problems.csv"'
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert [(r["line"], r["outcome"], r["field"]) for r in rows] == [("3", "rejected", "email")]

    # Another login cannot use it; this one applies it once.
    stranger, stranger_token = _client(site, "approver")
    theirs = stranger.post(
        "/staff/contacts/import/apply", data={"csrf": stranger_token, "token": kept.group(1)}
    )
    assert theirs.status_code == 404 and _count(site) == 0
    applied = client.post(
        "/staff/contacts/import/apply", data={"csrf": token, "token": kept.group(1)}
    )
    assert applied.status_code == 200 and "2 added" in applied.text and _count(site) == 2
    assert "Download the problems report" in applied.text and "Apply this file" not in applied.text
    again = client.post(
        "/staff/contacts/import/apply", data={"csrf": token, "token": kept.group(1)}
    )
    assert again.status_code == 404 and _count(site) == 2
    with Session(site.engine, expire_on_commit=False) as session:
        audited = session.exec(
            select(AuditEntry).where(col(AuditEntry.action) == "contacts:import")
        ).all()
        assert [(e.target, e.actor) for e in audited] == [
            ("new leps.csv", "editor@lepnetwork.example")
        ]
    forged = client.post("/staff/contacts/import/apply", data={"csrf": token, "token": "../x"})
    assert forged.status_code == 404


def test_a_kept_upload_expires(site: Site) -> None:
    client, token = _client(site)
    checked = _upload(client, token, CSV, dry_run="yes")
    kept = re.search(r'name="token" value="([^"]+)"', checked)
    assert kept
    folder = site.config.var_dir / "uploads" / kept.group(1)
    assert folder.is_dir()
    with clock.frozen(clock.now() + timedelta(minutes=61)):
        late = client.post(
            "/staff/contacts/import/apply", data={"csrf": token, "token": kept.group(1)}
        )
    assert late.status_code == 404 and "expired" in late.text
    assert not folder.exists() and _count(site) == 0
