"""Contributions from LEPs, and the items and events they became.

Revision ID: b8e2d4f6a1c9
Revises: a4d2e8c6b1f3
Create Date: 2026-12-01 19:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision: str = "b8e2d4f6a1c9"
down_revision: str | None = "a4d2e8c6b1f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("lep_news", "best_practice", "event", "funding_policy")
STATUSES = ("received", "accepted", "declined")


def upgrade() -> None:
    op.create_table(
        "contributions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("via_issue_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                *KINDS,
                name="contribution_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("headline", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link", sa.String(length=1000), nullable=True),
        sa.Column("image_name", sa.String(length=80), nullable=True),
        sa.Column("image_alt", sa.String(length=300), nullable=True),
        sa.Column("event_on", sa.Date(), nullable=True),
        sa.Column("event_time", sa.String(length=5), nullable=True),
        sa.Column("event_place", sa.String(length=300), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                *STATUSES,
                name="contribution_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("next_slot_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("deadline_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("decline_reason", sa.String(length=500), nullable=True),
        sa.Column("decided_by", sa.String(length=320), nullable=True),
        sa.Column("decided_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("receipt_sent_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_sent_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("credit_sent_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_contributions_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_contributions_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["via_issue_id"], ["issues.id"], name=op.f("fk_contributions_via_issue_id_issues")
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_contributions_issue_id_issues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contributions")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contributions_contact_id"), ["contact_id"])
        batch_op.create_index(batch_op.f("ix_contributions_status"), ["status"])
        batch_op.create_index(batch_op.f("ix_contributions_created_at"), ["created_at"])
    for table in ("items", "events"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("contribution_id", sa.Integer(), nullable=True))
            batch_op.create_index(batch_op.f(f"ix_{table}_contribution_id"), ["contribution_id"])
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_contribution_id_contributions"),
                "contributions",
                ["contribution_id"],
                ["id"],
                ondelete="SET NULL",
            )


def downgrade() -> None:
    for table in ("events", "items"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"fk_{table}_contribution_id_contributions"), type_="foreignkey"
            )
            batch_op.drop_index(batch_op.f(f"ix_{table}_contribution_id"))
            batch_op.drop_column("contribution_id")
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contributions_created_at"))
        batch_op.drop_index(batch_op.f("ix_contributions_status"))
        batch_op.drop_index(batch_op.f("ix_contributions_contact_id"))
    op.drop_table("contributions")
