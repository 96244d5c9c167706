"""`mailer contributions …` as real processes on the demo database: the queue in JSON, accept
into the proposed bulletin's draft (the issue file keeps the link back), decline with the
reason emailed, clear errors; then the contributor's data export holds their
contributions and erasure removes them, leaving the published words in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from mailer import contributions, db, settings
from mailer.contributions import Contributor, Fields
from mailer.models import CapturedMessage, Contact, Contribution, Item, Organisation
from tests.helpers import cli


def _sent_in(project: Path, headlines: list[str]) -> str:
    """Contributions from the demo's first LEP contact, as the form stores them; its address."""
    config = settings.load(project / "config.toml")
    engine = db.create_engine(config.database_url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            contact, organisation = session.exec(
                select(Contact, Organisation)
                .join(Organisation, col(Organisation.id) == col(Contact.organisation_id))
                .where(col(Organisation.kind) == "lep")
                .order_by(col(Contact.id))
            ).first() or (None, None)
            assert contact is not None and organisation is not None
            who = Contributor(contact, organisation, None)
            for headline in headlines:
                checked = contributions.check(
                    Fields(kind="lep_news", headline=headline, text=f"About {headline}."),
                    config.settings.contributions,
                    has_image=False,
                    today=contact.created_at.date(),
                )
                contributions.submit(
                    session,
                    who,
                    checked,
                    image=None,
                    settings=config.settings,
                    media_folder=project / "var" / "media",
                )
            session.commit()
            return contact.email
    finally:
        engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the commands, not the database
def test_staff_work_the_queue_from_the_command_line(project: Path) -> None:
    assert cli(project, "init", "--demo").returncode == 0
    email = _sent_in(project, ["Growth Hub opens", "Old news", "Spare story"])
    listed = cli(project, "contributions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    queue = json.loads(listed.stdout)["contributions"]
    assert [c["headline"] for c in queue] == ["Spare story", "Old news", "Growth Hub opens"]
    first = queue[-1]
    assert first["status"] == "received" and first["in_time"] is True and first["proposed_for"]

    accepted = cli(project, "contributions", "accept", str(first["id"]), "--json")
    assert accepted.returncode == 0, accepted.stderr
    issue_id = json.loads(accepted.stdout)["issue_id"]
    exported = cli(project, "issue", "export", str(issue_id))
    assert "### Growth Hub opens" in exported.stdout
    assert f"Contribution: {first['id']}" in exported.stdout

    second = queue[1]["id"]
    unconfirmed = cli(project, "contributions", "decline", str(second), "--reason", "Covered")
    assert unconfirmed.returncode == 2 and "add --yes" in unconfirmed.stderr
    empty = cli(project, "contributions", "decline", str(second), "--reason", " ", "--yes")
    assert empty.returncode == 2 and "Reason: must not be empty" in empty.stderr
    declined = cli(
        project, "contributions", "decline", str(second), "--reason", "Covered in 2027/01",
        "--yes", "--json",
    )  # fmt: skip
    assert declined.returncode == 0, declined.stderr
    assert json.loads(declined.stdout)["emailed"] is True
    missing = cli(project, "contributions", "show", "999")
    assert missing.returncode == 2 and "there is no contribution 999" in missing.stderr
    shown = cli(project, "contributions", "show", str(second), "--json")
    assert json.loads(shown.stdout)["contribution"]["decline_reason"] == "Covered in 2027/01"

    export = json.loads(cli(project, "subject", "export", email).stdout)
    assert {c["headline"] for c in export["contributions"]} == {
        "Growth Hub opens",
        "Old news",
        "Spare story",
    }
    erased = cli(project, "subject", "erase", email, "--yes")
    assert erased.returncode == 0, erased.stderr
    config = settings.load(project / "config.toml")
    engine = db.create_engine(config.database_url)
    try:
        with Session(engine) as session:
            assert session.exec(select(Contribution)).all() == []
            item = session.exec(select(Item).where(col(Item.title) == "Growth Hub opens")).one()
            assert item.contribution_id is None  # the words stay, linked to nobody
            assert not session.exec(
                select(CapturedMessage).where(col(CapturedMessage.recipients).contains(email))
            ).all()  # the receipts and the decline went with the rest
    finally:
        engine.dispose()
    assert "Contribution:" not in cli(project, "issue", "export", str(issue_id)).stdout
