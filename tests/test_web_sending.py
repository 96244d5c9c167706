"""Safe actions and test sends in the console: send now, cancel and erase ask first on a
page that says what will happen; tests go to seeds by their own names behind the
firewall; the mailbox is searched and paged."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailer import clock
from mailer.models import CapturedMessage, Delivery, Issue, IssueStatus
from mailer.settings import ProofSettings
from tests.outbox_fixtures import approved, drafted, people
from tests.web_fixtures import Site, build_site, csrf_of, login

SEVEN_WEEKS_BEFORE = datetime(2027, 1, 14, 9, 0, tzinfo=UTC)  # bulletin 2027/05: 4 Mar 09:30


@pytest.fixture
def site(engine: Engine, tmp_path: Path) -> Iterator[Site]:
    with clock.frozen(SEVEN_WEEKS_BEFORE):
        yield build_site(engine, tmp_path)


def _client(site: Site, role: str) -> tuple[TestClient, str]:
    client = site.client()
    login(client, role)
    return client, csrf_of(client.get("/staff").text)


def _issue(site: Site, issue_id: int | None) -> Issue:
    with Session(site.engine) as session:
        found = session.get(Issue, issue_id)
        assert found is not None
        return found


def _deliveries(site: Site) -> int:
    with Session(site.engine) as session:
        return len(session.exec(select(Delivery)).all())


def test_send_now_asks_first_saying_to_how_many_and_how_early(site: Site) -> None:
    with Session(site.engine) as session:
        people(session, 5)
        issue_id = approved(session).id
    client, token = _client(site, "approver")
    page = client.get(f"/staff/issues/{issue_id}")
    assert f'href="/staff/issues/{issue_id}/send">Send now' in page.text
    asked = client.get(f"/staff/issues/{issue_id}/send")
    assert asked.status_code == 200
    assert (
        "Send bulletin 2027/05 now to 5 recipients, seven weeks before its slot on "
        "Thu 4 Mar 2027 09:30?"
    ) in asked.text
    assert 'name="confirm" value="yes"' in asked.text
    assert _issue(site, issue_id).status is IssueStatus.SCHEDULED and _deliveries(site) == 0
    unconfirmed = client.post(f"/staff/issues/{issue_id}/send", data={"csrf": token})
    assert unconfirmed.headers["location"] == f"/staff/issues/{issue_id}/send"
    assert _issue(site, issue_id).status is IssueStatus.SCHEDULED and _deliveries(site) == 0
    sent = client.post(f"/staff/issues/{issue_id}/send", data={"csrf": token, "confirm": "yes"})
    assert sent.headers["location"] == f"/staff/sends/{issue_id}"
    assert _deliveries(site) == 5
    assert _issue(site, issue_id).status in (IssueStatus.SENDING, IssueStatus.SENT)
    again = client.get(f"/staff/issues/{issue_id}/send")  # no longer sendable: back, and says so
    assert again.headers["location"] == f"/staff/issues/{issue_id}"


def test_approval_shows_slots_by_date_and_cancel_asks_first(site: Site) -> None:
    with Session(site.engine) as session:
        issue_id = drafted(session, "newsletter.md").id
    client, token = _client(site, "approver")
    draft = client.get(f"/staff/issues/{issue_id}").text
    assert "Thu 18 Mar 2027 10:00 (newsletter 2027/03)</option>" in draft
    client.post(f"/staff/issues/{issue_id}/approve", data={"csrf": token, "slot_id": ""})
    assert _issue(site, issue_id).status is IssueStatus.SCHEDULED
    asked = client.get(f"/staff/issues/{issue_id}/cancel")
    assert (
        "Cancel newsletter 2027/03: it will not be sent at its slot on Thu 18 Mar 2027 10:00?"
        in asked.text
    )
    assert "cannot be undone" in asked.text
    assert _issue(site, issue_id).status is IssueStatus.SCHEDULED
    client.post(f"/staff/issues/{issue_id}/cancel", data={"csrf": token, "confirm": "no"})
    assert _issue(site, issue_id).status is IssueStatus.SCHEDULED
    client.post(f"/staff/issues/{issue_id}/cancel", data={"csrf": token, "confirm": "yes"})
    assert _issue(site, issue_id).status is IssueStatus.CANCELLED
    late = client.get(f"/staff/issues/{issue_id}/cancel")
    assert late.status_code == 303


def test_erasing_a_contact_asks_first_on_its_own_page(site: Site) -> None:
    with Session(site.engine) as session:
        contact_id = people(session, 1)[0].id
    client, _ = _client(site, "admin")
    contact = client.get(f"/staff/contacts/{contact_id}").text
    assert f'href="/staff/contacts/{contact_id}/erase"' in contact
    asked = client.get(f"/staff/contacts/{contact_id}/erase")
    assert "Erase Reader 0 &lt;reader0@lep0.example&gt;? This cannot be undone." in asked.text
    assert 'name="confirm" required' in asked.text
    assert client.get(f"/staff/contacts/{contact_id}").status_code == 200  # still there


def _with_seeds(site: Site, *seeds: str) -> None:
    ctx = site.app.state.ctx
    settings = ctx.config.settings.model_copy(
        update={"proofs": ProofSettings(seed_addresses=seeds)}
    )
    ctx.config = dataclasses.replace(ctx.config, settings=settings)


def _greeting(site: Site, address: str) -> list[str]:
    found = []
    for message in site.captured():
        if message["To"].addresses[0].addr_spec == address:
            body = message.get_body(("plain",))
            assert body is not None
            found.append(next(line for line in body.get_content().splitlines() if "Dear" in line))
    return found


def test_tests_go_to_seeds_by_name_and_the_bulletins_only_inside(site: Site) -> None:
    with Session(site.engine) as session:
        people(session, 1)  # Reader 0, a LEP contact
        bulletin = approved(session).id
        newsletter = approved(session, "newsletter.md").id
    _with_seeds(site, "Zoë Partner <zoe@partner.example>", "reader0@lep0.example")
    client, token = _client(site, "editor")
    page = client.get(f"/staff/issues/{bulletin}").text
    assert 'name="to" value="editor@lepnetwork.example" checked>' in page
    assert 'name="to" value="zoe@partner.example" disabled>' in page  # not for the bulletin
    assert "Reader 0 &lt;reader0@lep0.example&gt;" in page

    chosen = ["editor@lepnetwork.example", "reader0@lep0.example"]
    client.post(f"/staff/issues/{bulletin}/test", data={"csrf": token, "to": chosen})
    assert "Test sent to editor@lepnetwork.example: 250" in client.get("/staff/issues").text
    assert _greeting(site, "reader0@lep0.example") == ["Dear Reader 0,"]
    assert _greeting(site, "editor@lepnetwork.example") == ["Dear editor,"]
    for refused, why in (
        ("zoe@partner.example", "may not see the bulletin"),
        ("someone@else.example", "is not in the seed list"),
    ):
        client.post(f"/staff/issues/{bulletin}/test", data={"csrf": token, "to": refused})
        assert why in client.get("/staff/issues").text
        assert _greeting(site, refused) == []
    client.post(
        f"/staff/issues/{newsletter}/test", data={"csrf": token, "to": "zoe@partner.example"}
    )
    assert _greeting(site, "zoe@partner.example") == ["Dear Zoë Partner,"]


def test_the_mailbox_is_searched_and_paged(site: Site) -> None:
    with Session(site.engine) as session:
        for n in range(50):
            session.add(
                CapturedMessage(
                    message_id=f"<b{n}@x>",
                    envelope_from="bounces@lepnetwork.example",
                    recipients=f"reader{n}@lep.example",
                    subject=f"LEP Network Bulletin {n}",
                    path="/nowhere",
                    size=1,
                )
            )
        for n in range(5):
            session.add(
                CapturedMessage(
                    message_id=f"<n{n}@x>",
                    envelope_from="bounces@lepnetwork.example",
                    recipients="zoe@partner.example",
                    subject=f"Newsletter {n}",
                    path="/nowhere",
                    size=1,
                )
            )
        session.commit()
    client, _ = _client(site, "editor")
    first = client.get("/staff/mailbox").text
    assert "1 to 50 of 55 messages" in first and 'href="/staff/mailbox?page=2"' in first
    assert "Newsletter 4" in first and "LEP Network Bulletin 5<" in first  # newest first
    assert "51 to 55 of 55" in client.get("/staff/mailbox?page=2").text
    partner = client.get("/staff/mailbox?q=PARTNER").text
    assert "1 to 5 of 5 messages" in partner and "Bulletin" not in partner.split("<table")[1]
    assert "1 to 5 of 5" in client.get("/staff/mailbox?q=newsletter").text
    beyond = client.get("/staff/mailbox?q=bulletin&page=2").text  # one page only: back to it
    assert "1 to 50 of 50 messages" in beyond and "Next page" not in beyond
    assert "Nothing matches." in client.get("/staff/mailbox?q=%25zz").text
