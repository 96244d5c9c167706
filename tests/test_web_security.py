"""The site against an attacker: sessions that end, logins that cannot be raced or used to
find accounts, bodies refused before they are read, clean pages for bad ids, headers."""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
import threading
from collections import Counter
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx2 as httpx
import pytest
from argon2 import PasswordHasher, profiles
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import clock, sessions, staff
from mailer.models import Contact, LoginThrottle, StaffAccount, StaffSession
from mailer.web import guard
from tests.outbox_fixtures import approved, people
from tests.web_fixtures import PASSWORDS, Site, build_site, csrf_of, login

AT = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
EDITOR = "editor@lepnetwork.example"


@pytest.fixture
def site(engine: Engine, tmp_path: Path) -> Site:
    return build_site(engine, tmp_path)


def _client(site: Site, address: str = "testclient") -> TestClient:
    return TestClient(
        site.app,
        base_url="https://lepnetwork.example",
        follow_redirects=False,
        client=(address, 50000),
    )


def _attempt(client: TestClient, email: str, password: str) -> httpx.Response:
    form = client.get("/staff/login")
    return client.post(
        "/staff/login",
        data={"csrf": csrf_of(form.text), "email": email, "password": password, "next": "/staff"},
    )


def _refusal(response: httpx.Response) -> str:
    match = re.search(r'<p class="error" role="alert">([^<]*)</p>', response.text)
    assert match, response.text
    return match.group(1)


def _opens_console(site: Site, cookie: str) -> bool:
    """Whether a copy of the session cookie, sent by another browser, opens the console."""
    other = _client(site, "203.0.113.9")
    response = other.get("/staff", headers={"cookie": f"{sessions_cookie()}={cookie}"})
    return response.status_code == 200


def sessions_cookie() -> str:
    from mailer.web.pages import SESSION_COOKIE

    return SESSION_COOKIE


def _cookie(client: TestClient) -> str:
    value = client.cookies.get(sessions_cookie())
    assert value
    return value


class CountingHasher(PasswordHasher):
    """argon2 as the app uses it, counting each verification and whose hash it was."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checked: Counter[str] = Counter()
        self.lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self.lock:
            self.checked["dummy" if hash == staff._dummy() else "account"] += 1
        return super().verify(hash, password)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    cheap = profiles.CHEAPEST
    counting = CountingHasher(
        time_cost=cheap.time_cost,
        memory_cost=cheap.memory_cost,
        parallelism=cheap.parallelism,
        hash_len=cheap.hash_len,
        salt_len=cheap.salt_len,
        type=cheap.type,
    )
    staff._dummy()  # made before counting starts
    monkeypatch.setattr(staff, "_hasher", counting)
    return counting


# -- 1. sessions ---------------------------------------------------------------------


def test_the_cookie_holds_only_a_random_token_kept_hashed_and_marked_for_the_browser(
    site: Site, tmp_path: Path
) -> None:
    client = _client(site)
    response = _attempt(client, EDITOR, PASSWORDS["editor"])
    assert response.status_code == 303
    header = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith("mailer_staff=")
    )
    token = header.split(";")[0].split("=", 1)[1]
    assert len(token) >= 40 and "editor" not in token and "." not in token
    for attribute in ("HttpOnly", "SameSite=Lax", "Secure", "Path=/staff"):
        assert attribute in header
    with Session(site.engine) as session:
        row = session.exec(select(StaffSession)).one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    # An http site: the same cookie without Secure (else the browser would never return it).
    (tmp_path / "plain").mkdir()
    plain = build_site(site.engine, tmp_path / "plain", "http://127.0.0.1:8000")
    http = TestClient(plain.app, base_url="http://127.0.0.1:8000", follow_redirects=False)
    answer = _attempt(http, EDITOR, PASSWORDS["editor"])
    assert "Secure" not in ";".join(answer.headers.get_list("set-cookie"))


def test_a_copied_cookie_stops_working_once_its_session_ends(site: Site) -> None:
    admin = _client(site)
    login(admin, "admin")
    copied = _cookie(admin)
    assert _opens_console(site, copied)
    token = csrf_of(admin.get("/staff").text)
    assert admin.post("/staff/logout", data={"csrf": token}).status_code == 303
    assert not _opens_console(site, copied)

    # An admin's "end all sessions" ends everyone's, theirs too.
    editor = _client(site)
    login(editor, "editor")
    admin = _client(site)
    login(admin, "admin")
    ended = [_cookie(editor), _cookie(admin)]
    page = admin.get("/staff/account")
    assert "Everyone's sessions" in page.text and EDITOR in page.text
    admin.post("/staff/sessions/end-all", data={"csrf": csrf_of(page.text)})
    assert not any(_opens_console(site, c) for c in ended)

    # Changing one's password in the console ends the other sessions, not this one.
    here, there = _client(site), _client(site, "198.51.100.7")
    login(here, "editor")
    login(there, "editor")
    page = here.get("/staff/account")
    changed = here.post(
        "/staff/account/password",
        data={
            "csrf": csrf_of(page.text),
            "current": PASSWORDS["editor"],
            "new": "a-brand-new-password",
            "repeat": "a-brand-new-password",
        },
    )
    assert changed.status_code == 303
    assert _opens_console(site, _cookie(here))
    assert not _opens_console(site, _cookie(there))
    with Session(site.engine) as session:
        staff.set_password(session, EDITOR, PASSWORDS["editor"])
        session.commit()


def test_a_session_ends_after_its_idle_time_and_its_lifetime_however_active(site: Site) -> None:
    web = site.config.settings.web
    with clock.frozen(AT) as frozen:
        idle = _client(site)
        login(idle, "editor")
        frozen.advance(timedelta(hours=web.session_hours) - timedelta(minutes=1))
        assert idle.get("/staff").status_code == 200
        frozen.advance(timedelta(hours=web.session_hours))
        assert idle.get("/staff").status_code == 303

        busy = _client(site)
        login(busy, "editor")
        started = clock.now()
        step = timedelta(hours=web.session_hours / 2)
        while clock.now() + step < started + timedelta(days=web.session_days):
            frozen.advance(step)
            assert busy.get("/staff").status_code == 200
        frozen.advance(step)
        assert busy.get("/staff").status_code == 303
    with Session(site.engine) as session:
        why = Counter(r.ended_why for r in session.exec(select(StaffSession)))
    assert why == {sessions.Why.IDLE: 1, sessions.Why.EXPIRED: 1}


# -- 2. logins -----------------------------------------------------------------------


def test_guesses_in_parallel_are_each_counted_and_checked_only_under_the_limit(
    site: Site, hasher: CountingHasher
) -> None:
    limit = site.config.settings.staff.lockout_after
    guesses = 40
    ready = threading.Barrier(guesses)
    answers: list[httpx.Response] = []

    def guess() -> None:
        client = _client(site, "192.0.2.66")
        form = client.get("/staff/login")
        ready.wait(timeout=60)
        answers.append(
            client.post(
                "/staff/login",
                data={
                    "csrf": csrf_of(form.text),
                    "email": EDITOR,
                    "password": "not-the-password",
                    "next": "/staff",
                },
            )
        )

    with clock.frozen(AT):  # no wait ever runs out: only counting decides
        threads = [threading.Thread(target=guess) for _ in range(guesses)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(answers) == guesses
        assert {a.status_code for a in answers} == {401}
        assert len({_refusal(a) for a in answers}) == 1
        # Only `limit` were checked; the rest came from an address that must wait, and
        # were refused at once (its own history: nothing learnt, no argon2 to be had).
        assert hasher.checked == {"account": limit}
        with Session(site.engine) as session:
            account = session.exec(
                select(StaffAccount).where(col(StaffAccount.email) == EDITOR)
            ).one()
            throttle = session.exec(select(LoginThrottle)).one()
        assert account.failed_logins == limit and throttle.failures == limit
        # Now even the right password waits (and is not checked) from that address.
        right = _attempt(_client(site, "192.0.2.66"), EDITOR, PASSWORDS["editor"])
        assert right.status_code == 401 and hasher.checked["account"] == limit


def test_an_outsiders_guesses_slow_the_outsider_not_the_owner(site: Site) -> None:
    settings = site.config.settings.staff
    owner, outsider = "10.1.1.1", "192.0.2.66"
    with clock.frozen(AT) as frozen:
        first = _client(site, owner)
        login(first, "editor")  # the owner has logged in from their address before
        first.post("/staff/logout", data={"csrf": csrf_of(first.get("/staff").text)})
        for _ in range(30):
            _attempt(_client(site, outsider), EDITOR, "guess")
        # The owner, from their own address, gets in at once with the right password.
        assert _attempt(_client(site, owner), EDITOR, PASSWORDS["editor"]).status_code == 303
        # A new address has to wait for the account; the outsider waits for everything,
        # even another account's right password.
        new = _client(site, "10.1.1.2")
        assert _attempt(new, EDITOR, PASSWORDS["editor"]).status_code == 401
        assert (
            _attempt(
                _client(site, outsider), "approver@lepnetwork.example", PASSWORDS["approver"]
            ).status_code
            == 401
        )
        # Waits double: after the limit, 1 s, then 2 s, ...
        theirs = col(LoginThrottle.ip_hash) == sessions.client_hash(
            site.app.state.ctx.key, outsider
        )
        with Session(site.engine) as session:
            throttle = session.exec(select(LoginThrottle).where(theirs)).one()
        assert throttle.failures == settings.lockout_after
        assert throttle.blocked_until == AT + staff.wait_after(settings.lockout_after, settings)
        frozen.advance(timedelta(seconds=1))
        _attempt(_client(site, outsider), EDITOR, "guess")
        with Session(site.engine) as session:
            throttle = session.exec(select(LoginThrottle).where(theirs)).one()
        assert throttle.blocked_until == clock.now() + timedelta(seconds=2)
        frozen.advance(timedelta(minutes=settings.lockout_minutes))
        assert _attempt(new, EDITOR, PASSWORDS["editor"]).status_code == 303


def test_a_wrong_an_unknown_a_disabled_and_a_waiting_login_look_alike(
    site: Site, hasher: CountingHasher
) -> None:
    with Session(site.engine) as session:
        staff.set_disabled(session, "approver@lepnetwork.example", True)
        session.commit()
    cases = {
        "wrong": (EDITOR, "wrong-password"),
        "unknown": ("nobody@lepnetwork.example", "wrong-password"),
        "disabled": ("approver@lepnetwork.example", PASSWORDS["approver"]),
    }
    pages: dict[str, tuple[int, str]] = {}
    with clock.frozen(AT):
        for name, (email, password) in cases.items():
            before = sum(hasher.checked.values())
            response = _attempt(_client(site, f"10.9.9.{len(pages)}"), email, password)
            assert sum(hasher.checked.values()) == before + 1, name
            pages[name] = (response.status_code, _refusal(response))
        for _ in range(site.config.settings.staff.lockout_after):
            _attempt(_client(site, "10.8.8.8"), "admin@lepnetwork.example", "guess")
        before = sum(hasher.checked.values())
        waiting = _attempt(_client(site, "10.7.7.7"), "admin@lepnetwork.example", "guess")
        assert sum(hasher.checked.values()) == before + 1
        pages["waiting"] = (waiting.status_code, _refusal(waiting))
    assert len(set(pages.values())) == 1, pages
    assert "locked" not in next(iter(pages.values()))[1]


# -- 3. limits and bad ids -------------------------------------------------------------


def test_bodies_beyond_their_limit_are_refused_and_bad_ids_get_clean_pages(site: Site) -> None:
    client = _client(site)
    limit = site.config.settings.web.form_limit_kb * 1024
    big = client.post(
        "/signup",
        content=b"name=" + b"x" * limit,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413 and "Nothing was changed" in big.text
    for path in ("/archive/99999999999999999999999", "/archive/abc", "/archive/-1", "/nowhere"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html"), path
    login(client, "admin")
    token = csrf_of(client.get("/staff").text)
    assert client.get("/staff/issues/99999999999999999999").status_code == 404
    assert client.get("/staff/contacts/0").status_code == 404
    with Session(site.engine) as session:
        contact = people(session, 1)[0]
        issue = approved(session)
        contact_id, issue_id = contact.id, issue.id
    for slot in ("abc", "99999999999999999999", "-5"):
        answer = client.post(
            f"/staff/issues/{issue_id}/approve", data={"csrf": token, "slot_id": slot}
        )
        assert answer.status_code in (303, 400, 404), slot
    saved = client.post(
        f"/staff/contacts/{contact_id}",
        data={"csrf": token, "name": "X", "role": "other", "organisation_id": "abc"},
    )
    assert saved.status_code == 400 and "organisation_id" in saved.text
    huge = client.post(
        f"/staff/contacts/{contact_id}",
        data={"csrf": token, "name": "X", "role": "other", "organisation_id": "9" * 30},
    )
    assert huge.status_code in (400, 422) and "organisation" in huge.text
    with Session(site.engine) as session:
        assert session.get(Contact, contact_id).name != "X"  # type: ignore[union-attr]


def test_the_import_reads_nothing_before_a_login_and_never_shows_its_temporary_path(
    site: Site,
) -> None:
    client = _client(site)
    upload = {"file": ("contacts.csv", b"email,name\nx@example.org,X\n", "text/csv")}
    anonymous = client.post("/staff/contacts/import", files=upload, data={"csrf": "x"})
    assert anonymous.status_code == 303
    login(client, "admin")
    token = csrf_of(client.get("/staff/contacts/import").text)
    refused = client.post("/staff/contacts/import", files=upload, data={"csrf": token})
    assert refused.status_code == 422
    assert "contacts.csv:1: missing column(s)" in refused.text
    assert tempfile.gettempdir() not in refused.text
    hostile = {"file": ("../../..", b"email\n", "text/csv")}
    assert (
        client.post("/staff/contacts/import", files=hostile, data={"csrf": token}).status_code
        == 422
    )


# -- 6. headers ----------------------------------------------------------------------


def test_every_page_carries_a_policy_and_personal_pages_are_never_cached(site: Site) -> None:
    client = _client(site)
    public = ["/", "/signup", "/privacy", "/archive", "/staff/login", "/nowhere"]
    for path in public:
        response = client.get(path)
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["cache-control"] == "no-store"
        assert "<script" not in response.text and " style=" not in response.text, path
    login(client, "admin")
    with Session(site.engine, expire_on_commit=False) as session:
        contact = people(session, 1)[0]
        issue = approved(session)
    token = site.app.state.ctx.signer.recipient(contact.id, issue.id)
    console = [
        "/staff",
        f"/staff/issues/{issue.id}",
        f"/staff/contacts/{contact.id}",
        "/staff/account",
        "/staff/contacts/export.csv",
        f"/p/{token}",
        f"/u/{token}",
    ]
    for path in console:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "no-store", path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
        assert " style=" not in response.text, path
    editor = client.get(f"/staff/issues/{issue.id}").text
    assert editor.count("<iframe sandbox") == 2
    framed = client.get(f"/staff/issues/{issue.id}/preview.html")
    assert (
        framed.headers["content-security-policy"] == guard.EMAIL_POLICY + "; frame-ancestors 'self'"
    )
    assert "script" not in guard.EMAIL_POLICY.replace("default-src 'none'", "")
    online = client.get(f"/v/{token}")
    assert online.headers["content-security-policy"].endswith("frame-ancestors 'none'")


def test_redirects_never_echo_the_host_header(site: Site) -> None:
    client = _client(site)
    for path, target in (
        ("/staff/", "/staff"),
        ("/signup/", "/signup"),
        ("/staff//", "/staff"),
    ):
        response = client.get(path, headers={"host": "evil.example"})
        assert response.status_code == 308, path
        assert response.headers["location"] == target, path


def test_a_body_without_a_declared_length_is_cut_off_at_its_limit(site: Site) -> None:
    limit = site.config.settings.web.form_limit_kb * 1024
    chunk = b"x" * 8192
    offered = limit // len(chunk) + 50
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": read < offered}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/signup",
        "raw_path": b"/signup",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"lepnetwork.example"),
            (b"content-type", b"application/x-www-form-urlencoded"),
        ],
        "client": ("192.0.2.1", 50000),
        "server": ("lepnetwork.example", 443),
    }
    asyncio.run(site.app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert read <= limit // len(chunk) + 2  # it stopped reading at the limit


def test_an_unlock_clears_the_wait_and_housekeeping_forgets_old_sessions(site: Site) -> None:
    with clock.frozen(AT) as frozen:
        for _ in range(site.config.settings.staff.lockout_after):
            _attempt(_client(site, "10.5.5.5"), EDITOR, "guess")
        assert _attempt(_client(site, "10.5.5.6"), EDITOR, PASSWORDS["editor"]).status_code == 401
        with Session(site.engine) as session:
            staff.unlock(session, EDITOR)
            session.commit()
        assert _attempt(_client(site, "10.5.5.6"), EDITOR, PASSWORDS["editor"]).status_code == 303
        frozen.advance(sessions.REMEMBER + timedelta(days=1))
        with Session(site.engine) as session:
            assert sessions.forget(session) == 3  # the session, the two addresses' counts
            assert session.exec(select(StaffSession)).all() == []
            assert session.exec(select(LoginThrottle)).all() == []


def test_a_success_takes_back_only_its_own_count(site: Site) -> None:
    """A colleague behind the same address as an admin cannot wipe their failed guesses
    at the admin by logging in to their own account in between."""
    office = "10.20.0.1"
    limit = site.config.settings.staff.lockout_after
    with clock.frozen(AT):
        admin = _client(site, office)
        login(admin, "admin")  # the admin's address: the account's count is not used
        for _ in range(limit - 1):
            _attempt(_client(site, office), "admin@lepnetwork.example", "guess")
        assert _attempt(_client(site, office), EDITOR, PASSWORDS["editor"]).status_code == 303
        _attempt(_client(site, office), "admin@lepnetwork.example", "guess")
        refused = _attempt(_client(site, office), "admin@lepnetwork.example", PASSWORDS["admin"])
        assert refused.status_code == 401  # the office address now waits


def test_odd_input_gets_a_clean_page_and_a_failure_keeps_its_headers(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(site)
    assert _attempt(client, "a\x00b@lepnetwork.example", "x").status_code == 401
    login(client, "admin")
    for path in ("/staff/contacts?q=%00", "/staff/audit?actor=%00"):
        assert client.get(path).status_code in (200, 400), path  # 400 on PostgreSQL
    back = _client(site).get("/staff/contacts?q=jo")
    assert back.headers["location"] == "/staff/login?next=/staff/contacts%3Fq%3Djo"

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a fault")

    monkeypatch.setattr("mailer.issues.listing", broken)
    failing = TestClient(
        site.app,
        base_url="https://lepnetwork.example",
        raise_server_exceptions=False,
        follow_redirects=False,
    )
    login(failing, "admin")
    answer = failing.get("/staff/issues")
    assert answer.status_code == 500 and "Something went wrong" in answer.text
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"


def test_trusted_proxies_are_kept_as_uvicorn_reads_them() -> None:
    from mailer.settings import WebSettings

    web = WebSettings.model_validate({"trusted_proxies": ["127.0.0.1", "10.0.0.1/8", "::1"]})
    assert web.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "::1")
    with pytest.raises(ValueError, match="not an IP address or network"):
        WebSettings.model_validate({"trusted_proxies": ["proxy.example"]})
