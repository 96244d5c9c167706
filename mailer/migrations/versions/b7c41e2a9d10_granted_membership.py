"""LEP mail domains and stated organisations: membership of a LEP is granted, not declared.

Contacts that a public sign-up filed under the LEP its reader typed (the fingerprint of
the old confirmation: web sign-up, consent, stakeholder, in a LEP) move to the public
sign-up group, keeping that LEP's name as their stated organisation for staff to review
and link; their internal subscriptions end. Each move is in the audit log.

Revision ID: b7c41e2a9d10
Revises: 24f393a305a3
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mailer import clock
from mailer.models import UTCDateTime

revision: str = "b7c41e2a9d10"
down_revision: str | None = "24f393a305a3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PUBLIC_ORGANISATION = "Newsletter subscribers (public sign-up)"


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("domains", sa.String(length=500), nullable=True))
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stated_organisation", sa.String(length=200), nullable=True))
    _ungrant_self_declared()


def _ungrant_self_declared() -> None:
    connection = op.get_bind()
    organisations = sa.table(
        "organisations",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("kind", sa.String),
        sa.column("created_at", UTCDateTime()),
    )
    contacts = sa.table(
        "contacts",
        sa.column("id", sa.Integer),
        sa.column("organisation_id", sa.Integer),
        sa.column("stated_organisation", sa.String),
        sa.column("consent_source", sa.String),
        sa.column("lawful_basis", sa.String),
        sa.column("role", sa.String),
    )
    subscriptions = sa.table(
        "subscriptions",
        sa.column("contact_id", sa.Integer),
        sa.column("publication", sa.String),
        sa.column("status", sa.String),
    )
    audit_log = sa.table(
        "audit_log",
        sa.column("at", UTCDateTime()),
        sa.column("actor", sa.String),
        sa.column("action", sa.String),
        sa.column("target", sa.String),
        sa.column("detail", sa.String),
    )
    declared = connection.execute(
        sa.select(contacts.c.id, organisations.c.name)
        .join(organisations, organisations.c.id == contacts.c.organisation_id)
        .where(
            organisations.c.kind == "lep",
            contacts.c.consent_source == "web sign-up",
            contacts.c.lawful_basis == "consent",
            contacts.c.role == "stakeholder",
        )
    ).all()
    if not declared:
        return
    now = clock.now()
    group = connection.execute(
        sa.select(organisations.c.id).where(organisations.c.name == PUBLIC_ORGANISATION)
    ).scalar()
    if group is None:
        connection.execute(
            organisations.insert().values(name=PUBLIC_ORGANISATION, kind="other", created_at=now)
        )
        group = connection.execute(
            sa.select(organisations.c.id).where(organisations.c.name == PUBLIC_ORGANISATION)
        ).scalar_one()
    for contact_id, lep in declared:
        connection.execute(
            contacts.update()
            .where(contacts.c.id == contact_id)
            .values(organisation_id=group, stated_organisation=lep[:200])
        )
        connection.execute(
            subscriptions.delete().where(
                subscriptions.c.contact_id == contact_id,
                subscriptions.c.publication == "bulletin",
                subscriptions.c.status.in_(["active", "pending"]),
            )
        )
        connection.execute(
            audit_log.insert().values(
                at=now,
                actor="migration b7c41e2a9d10",
                action="contact:ungrant",
                target=f"contact {contact_id}",
                detail=f"a sign-up had declared {lep}: moved to the public group; link it "
                "if staff confirm it",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("stated_organisation")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("domains")
