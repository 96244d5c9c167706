"""The console's side of bounces and data protection: the contact page, export, erasure, logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import bounces
from mailer.models import AuditEntry, Contact, ContactStatus
from mailer.settings import BounceSettings
from mailer.tokens import TokenSigner
from tests.outbox_fixtures import addressed, people, verp_for
from tests.web_fixtures import Site, build_site, csrf_of, login

CORPUS = Path(__file__).parent / "data" / "bounces"


@pytest.fixture
def site(engine: Engine, tmp_path: Path) -> Site:
    return build_site(engine, tmp_path)


@pytest.fixture
def disabled(site: Site) -> int:
    """reader0, disabled by a temporary failure past a (low) threshold; reader1 untouched."""
    raw = (CORPUS / "postfix-delayed.eml").read_bytes()
    with Session(site.engine) as session:
        made = people(session, 2)
        assert made[0].id is not None
        signer = TokenSigner(b"web-privacy-test-key-" * 2)
        verp = verp_for(session, made[0].id, signer)
        handled = bounces.handle(
            session,
            addressed(raw, verp).replace(b"bo.full@semlep.example", made[0].email.encode()),
            [verp],
            signer,
            BounceSettings(threshold=0.5),
            source="smtp",
        )
        assert handled.verdict is bounces.Verdict.DISABLED, handled
        assert handled.contact_id is not None
        return handled.contact_id


def _contact(site: Site, contact_id: int) -> Contact | None:
    with Session(site.engine) as session:
        return session.get(Contact, contact_id)


def test_the_contact_page_shows_bounces_and_staff_can_re_enable(site: Site, disabled: int) -> None:
    client = site.client()
    login(client, "editor")
    page = client.get(f"/staff/contacts/{disabled}")
    assert page.status_code == 200
    assert "Bounces and complaints" in page.text and "temporary" in page.text
    assert "452 4.2.2 Mailbox full" in page.text  # the delayed-delivery report's diagnostic
    assert "Disabled after repeated bounces" in page.text
    assert "bounce:disabled" in page.text  # its history
    # Export and erasure are for admins only: not offered, and refused if tried.
    assert "Data protection" not in page.text
    assert client.get(f"/staff/contacts/{disabled}/data.json").status_code == 403
    refused = client.post(
        f"/staff/contacts/{disabled}/erase",
        data={"csrf": csrf_of(page.text), "confirm": "reader0@lep0.example"},
    )
    assert refused.status_code == 403
    log = client.get("/staff/bounces")
    assert log.status_code == 200 and "Mailbox full" in log.text
    assert f'<a href="/staff/contacts/{disabled}">' in log.text

    enabled = client.post(f"/staff/contacts/{disabled}/enable", data={"csrf": csrf_of(page.text)})
    assert enabled.status_code == 303
    contact = _contact(site, disabled)
    assert contact is not None
    assert contact.status is ContactStatus.ACTIVE and contact.bounce_score == 0
    history = client.get("/staff/audit?action=contact:enable")
    assert "editor@lepnetwork.example" in history.text and f"contact {disabled}" in history.text


def test_an_admin_downloads_everything_then_erases_with_the_address_typed(
    site: Site, disabled: int
) -> None:
    client = site.client()
    login(client, "admin")
    page = client.get(f"/staff/contacts/{disabled}")
    assert "Download everything held about this contact" in page.text
    download = client.get(f"/staff/contacts/{disabled}/data.json")
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    data = json.loads(download.text)
    assert data["email"] == "reader0@lep0.example"
    assert [b["kind"] for b in data["bounces"]] == ["temporary"]
    assert data["bounces"][0]["report"]  # the raw report is part of what is held

    csrf = csrf_of(page.text)
    wrong = client.post(
        f"/staff/contacts/{disabled}/erase", data={"csrf": csrf, "confirm": "someone@else.example"}
    )
    assert wrong.status_code == 303 and _contact(site, disabled) is not None
    erased = client.post(
        f"/staff/contacts/{disabled}/erase",
        data={"csrf": csrf, "confirm": " Reader0@LEP0.example "},
    )
    assert erased.status_code == 303 and erased.headers["location"] == "/staff/contacts"
    assert _contact(site, disabled) is None
    assert client.get(f"/staff/contacts/{disabled}").status_code == 404
    assert "Mailbox full" not in client.get("/staff/bounces").text

    audit = client.get("/staff/audit")
    assert "subject:erase" in audit.text and "subject:export" in audit.text
    assert "reader0@lep0.example" not in audit.text
    with Session(site.engine) as session:
        [entry] = session.exec(
            select(AuditEntry).where(col(AuditEntry.action) == "subject:erase")
        ).all()
        assert entry.actor == "admin@lepnetwork.example"
        assert entry.target == f"contact {disabled}"
