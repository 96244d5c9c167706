"""Shared set-up for web tests: the app on a real database, mail kept by the capture."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import organisations, settings, staff
from mailer.models import CapturedMessage, StaffAccount, StaffRole
from mailer.transports import CaptureTransport
from mailer.web.app import create_app
from tests.conftest import LISTS
from tests.outbox_fixtures import config_for

PASSWORDS = {r.value: f"{r.value}-password-1" for r in StaffRole}


@dataclass
class Site:
    app: FastAPI
    config: settings.Config
    engine: Engine
    mail: Path

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="https://lepnetwork.example", follow_redirects=False)

    def captured(self) -> list[EmailMessage]:
        with Session(self.engine) as session:
            rows = session.exec(select(CapturedMessage).order_by(col(CapturedMessage.id))).all()
        found = []
        for row in rows:
            message = BytesParser(policy=policy.default).parsebytes(Path(row.path).read_bytes())
            assert isinstance(message, EmailMessage)
            found.append(message)
        return found


def build_site(
    engine: Engine, tmp_path: Path, base_url: str = "https://lepnetwork.example"
) -> Site:
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    web = config.settings.web.model_copy(update={"base_url": base_url})
    config = settings.Config(
        path=config.path,
        settings=config.settings.model_copy(update={"web": web}),
        secrets=config.secrets,
        database_url=config.database_url,
        lists_dir=config.lists_dir,
        var_dir=config.var_dir,
        templates_dir=config.templates_dir,
    )
    mail = tmp_path / "mail"
    with Session(engine) as session:
        organisations.load_lists(session, LISTS)
        for role in StaffRole:
            email = f"{role.value}@lepnetwork.example"
            if session.exec(select(StaffAccount).where(col(StaffAccount.email) == email)).first():
                staff.set_password(session, email, PASSWORDS[role.value])
            else:
                staff.add(session, email, role, PASSWORDS[role.value])
        session.commit()
    app = create_app(config, engine, transport=lambda: CaptureTransport(mail, engine))
    return Site(app, config, engine, mail)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: TestClient, role: str) -> None:
    form = client.get("/staff/login")
    response = client.post(
        "/staff/login",
        data={
            "csrf": csrf_of(form.text),
            "email": f"{role}@lepnetwork.example",
            "password": PASSWORDS[role],
            "next": "/staff",
        },
    )
    assert response.status_code == 303, response.text


def link_in(message: EmailMessage, path: str) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = re.search(rf"https?://\S+{re.escape(path)}\S+", body.get_content())
    assert match, f"no {path} link in the message"
    return match.group(0)
