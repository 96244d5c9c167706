"""Staff accounts in the console: an admin adds, changes roles, resets passwords, disables,
enables and ends sessions (audited like `mailer staff`); the last admin stays one; an editor
is refused."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import staff
from mailer.models import AuditEntry, StaffRole
from tests.web_fixtures import Site, build_site, csrf_of, login

JO = "jo@lepnetwork.example"


def _log_in(site: Site, email: str, password: str) -> TestClient | None:
    client = site.client()
    form = client.get("/staff/login")
    answer = client.post(
        "/staff/login",
        data={"csrf": csrf_of(form.text), "email": email, "password": password, "next": "/staff"},
    )
    return client if answer.status_code == 303 else None


def _password_shown(html: str) -> str:
    found = re.search(r'<p class="password">([^<]+)</p>', html)
    assert found, "no password on the page"
    return found.group(1)


def _signed_in(client: TestClient) -> bool:
    return client.get("/staff").status_code == 200


def test_an_admin_manages_accounts_as_the_cli_does(engine: Engine, tmp_path: Path) -> None:
    site = build_site(engine, tmp_path)
    admin = site.client()
    login(admin, "admin")
    listing = admin.get("/staff/accounts").text
    assert 'href="/staff/accounts"' in listing  # the menu shows admins the page
    assert "<dt>Approver</dt><dd>Also approves, schedules and sends issues" in listing
    csrf = csrf_of(listing)

    added = admin.post("/staff/accounts", data={"csrf": csrf, "email": JO, "role": "approver"})
    assert added.status_code == 200 and "It is shown only now" in added.text
    first = _password_shown(added.text)
    assert _password_shown(added.text) not in admin.get("/staff/accounts").text  # once only
    jo = _log_in(site, JO, first)
    assert jo is not None
    again = admin.post(
        "/staff/accounts", data={"csrf": csrf, "email": JO.upper(), "role": "editor"}
    )
    assert again.status_code == 422
    assert f"{JO} already has an account" in again.text
    assert re.search(r'<input[^>]*id="add-email"[^>]*aria-invalid="true"', again.text)

    with Session(site.engine) as session:
        jo_id = staff.find(session, JO).id
    role = admin.post(f"/staff/accounts/{jo_id}/role", data={"csrf": csrf, "role": "editor"})
    assert role.status_code == 303 and not _signed_in(jo)  # its sessions ended
    jo = _log_in(site, JO, first)
    assert jo is not None
    assert jo.get("/staff/accounts").status_code == 403  # an editor now
    assert 'href="/staff/accounts"' not in jo.get("/staff").text

    reset = admin.post(f"/staff/accounts/{jo_id}/password", data={"csrf": csrf})
    second = _password_shown(reset.text)
    assert second != first and not _signed_in(jo)
    assert _log_in(site, JO, first) is None
    jo = _log_in(site, JO, second)
    assert jo is not None

    ended = admin.post(f"/staff/accounts/{jo_id}/end-sessions", data={"csrf": csrf})
    assert ended.status_code == 303 and not _signed_in(jo)
    assert "Ended 1 session(s) of jo@lepnetwork.example" in admin.get("/staff/accounts").text
    assert admin.post(f"/staff/accounts/{jo_id}/disable", data={"csrf": csrf}).status_code == 303
    assert _log_in(site, JO, second) is None
    assert admin.post(f"/staff/accounts/{jo_id}/enable", data={"csrf": csrf}).status_code == 303
    assert _log_in(site, JO, second) is not None

    # The last admin cannot demote or disable itself (the domain says so, the CLI too).
    with Session(site.engine) as session:
        me = staff.find(session, "admin@lepnetwork.example").id
    demote = admin.post(f"/staff/accounts/{me}/role", data={"csrf": csrf, "role": "approver"})
    assert demote.status_code == 422
    assert "admin@lepnetwork.example is the last admin: cannot make it an approver" in demote.text
    disable = admin.post(f"/staff/accounts/{me}/disable", data={"csrf": csrf})
    assert "is the last admin: cannot disable it" in disable.text
    assert _signed_in(admin)
    # With a second admin, demoting yourself works and logs you out.
    admin.post(f"/staff/accounts/{jo_id}/role", data={"csrf": csrf, "role": "admin"})
    demoted = admin.post(f"/staff/accounts/{me}/role", data={"csrf": csrf, "role": "approver"})
    assert demoted.headers["location"] == "/staff/login" and not _signed_in(admin)
    with Session(site.engine) as session:
        assert staff.find(session, "admin@lepnetwork.example").role is StaffRole.APPROVER
        audited = session.exec(
            select(AuditEntry.action, AuditEntry.target)
            .where(col(AuditEntry.actor) == "admin@lepnetwork.example")
            .where(col(AuditEntry.action) != "staff:login")
            .order_by(col(AuditEntry.id))
        ).all()
    assert audited == [
        ("staff:add", JO),
        ("staff:role", JO),
        ("staff:password", JO),
        ("staff:end-sessions", JO),
        ("staff:disable", JO),
        ("staff:enable", JO),
        ("staff:role", JO),
        ("staff:role", "admin@lepnetwork.example"),
    ]


def test_an_editor_and_an_approver_are_refused_the_accounts(engine: Engine, tmp_path: Path) -> None:
    site = build_site(engine, tmp_path)
    for role in ("editor", "approver"):
        client = site.client()
        login(client, role)
        assert 'href="/staff/accounts"' not in client.get("/staff").text
        assert client.get("/staff/accounts").status_code == 403
        csrf = csrf_of(client.get("/staff").text)
        refused = client.post("/staff/accounts", data={"csrf": csrf, "email": JO, "role": "admin"})
        assert refused.status_code == 403
    with Session(site.engine) as session:
        assert JO not in {a.email for a in staff.listing(session)}
