"""Every console route refuses an anonymous visitor and a member of staff whose role is too
junior: proved by walking the routers that serve them."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine

from mailer.models import StaffRole
from mailer.web.staff import GUARDED_ROUTERS
from mailer.web.staff.common import RoleRequired
from tests.web_fixtures import build_site, csrf_of, login

APPROVERS = (StaffRole.APPROVER, StaffRole.ADMIN)
ADMINS = (StaffRole.ADMIN,)
# What needs more than an editor: the roles are declared on the routes; this says what
# they must be, so a route that loses its role fails here.
SENIOR = {
    ("POST", "/staff/issues/{issue_id}/approve"): APPROVERS,
    ("GET", "/staff/issues/{issue_id}/cancel"): APPROVERS,
    ("POST", "/staff/issues/{issue_id}/cancel"): APPROVERS,
    ("POST", "/staff/issues/{issue_id}/reopen"): APPROVERS,
    ("GET", "/staff/issues/{issue_id}/send"): APPROVERS,
    ("POST", "/staff/issues/{issue_id}/send"): APPROVERS,
    ("GET", "/staff/contacts/{contact_id}/data.json"): ADMINS,
    ("GET", "/staff/contacts/{contact_id}/erase"): ADMINS,
    ("POST", "/staff/contacts/{contact_id}/erase"): ADMINS,
    ("POST", "/staff/sessions/end-all"): ADMINS,
    ("POST", "/staff/calendar/plan"): APPROVERS,
    ("POST", "/staff/calendar/add"): APPROVERS,
    ("POST", "/staff/calendar/{slot_id}/move"): APPROVERS,
    ("POST", "/staff/calendar/{slot_id}/skip"): APPROVERS,
    ("GET", "/staff/accounts"): ADMINS,
    ("POST", "/staff/accounts"): ADMINS,
    ("POST", "/staff/accounts/{account_id}/role"): ADMINS,
    ("POST", "/staff/accounts/{account_id}/password"): ADMINS,
    ("POST", "/staff/accounts/{account_id}/disable"): ADMINS,
    ("POST", "/staff/accounts/{account_id}/enable"): ADMINS,
    ("POST", "/staff/accounts/{account_id}/end-sessions"): ADMINS,
}


def _console_routes() -> list[tuple[str, str, tuple[StaffRole, ...]]]:
    found = []
    for router in GUARDED_ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            roles: tuple[StaffRole, ...] = ()
            for dependency in route.dependencies:
                if isinstance(dependency.dependency, RoleRequired):
                    roles = dependency.dependency.roles
            for method in route.methods or ():
                found.append((method, "/staff" + route.path, roles))
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_console_route_refuses_anonymous_and_too_junior_staff(
    engine: Engine, tmp_path: Path
) -> None:
    site = build_site(engine, tmp_path)
    routes = _console_routes()
    assert len(routes) > 30
    assert {(m, p): r for m, p, r in routes if r} == SENIOR
    anonymous = site.client()
    for method, path, _ in routes:
        answer = anonymous.request(method, _concrete(path))
        assert answer.status_code == 303, (method, path, answer.status_code)
        assert answer.headers["location"].startswith("/staff/login"), (method, path)
    juniors = {
        StaffRole.ADMIN: "approver",  # admin-only routes, tried by an approver
        StaffRole.APPROVER: "editor",
    }
    clients = {}
    for role in ("editor", "approver"):
        clients[role] = site.client()
        login(clients[role], role)
    tried = 0
    for method, path, roles in routes:
        if not roles:
            continue
        junior = juniors[min(roles, key=lambda r: list(StaffRole).index(r))]
        client = clients[junior]
        token = csrf_of(client.get("/staff").text)
        answer = client.request(method, _concrete(path), data={"csrf": token})
        assert answer.status_code == 403, (method, path, junior, answer.status_code)
        tried += 1
    assert tried >= 6


def test_a_missing_console_page_keeps_the_menu_and_a_public_one_is_a_page(
    engine: Engine, tmp_path: Path
) -> None:
    site = build_site(engine, tmp_path)
    client = site.client()
    public = client.get("/no-such-page")
    assert public.status_code == 404 and "text/html" in public.headers["content-type"]
    assert "Newsletter archive" in public.text and "Staff console" not in public.text
    login(client, "editor")
    for path in ("/staff/no-such-page", "/staff/issues/999999", "/staff/contacts/abc"):
        missing = client.get(path)
        assert missing.status_code == 404, path
        assert 'aria-label="Staff console"' in missing.text, path  # the menu stays
