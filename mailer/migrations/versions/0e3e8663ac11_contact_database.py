"""The contact database: organisations, contacts, subscriptions, suppressions.

Revision ID: 0e3e8663ac11
Revises:
Create Date: 2026-11-24 17:23:33.337080
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "0e3e8663ac11"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("short_name", sa.String(length=60), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "lep",
                "government",
                "business_representative",
                "skills",
                "transport",
                "sponsor",
                "media",
                "other",
                name="organisation_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("board_group", sa.String(length=100), nullable=True),
        sa.Column("website", sa.String(length=300), nullable=True),
        sa.Column("created_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
        sa.UniqueConstraint("short_name", name=op.f("uq_organisations_short_name")),
    )
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organisations_kind"), ["kind"], unique=False)

    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "reason",
            sa.Enum(
                "bounce",
                "complaint",
                "erasure",
                "manual",
                name="suppression_reason",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("email_hash", name=op.f("uq_suppressions_email_hash")),
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "chair",
                "chief_executive",
                "officer",
                "communications_lead",
                "board_member",
                "stakeholder",
                name="contact_role",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "disabled",
                "suppressed",
                "erased",
                name="contact_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "lawful_basis",
            sa.Enum(
                "consent",
                "legitimate_interest",
                name="lawful_basis",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("consent_source", sa.String(length=200), nullable=True),
        sa.Column("consented_at", mailer.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("consent_wording_version", sa.String(length=60), nullable=True),
        sa.Column("consent_confirmed_at", mailer.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_contacts_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("email", name=op.f("uq_contacts_email")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contacts_email_hash"), ["email_hash"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_contacts_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_contacts_status"), ["status"], unique=False)

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column(
            "publication",
            sa.Enum(
                "bulletin",
                "newsletter",
                name="publication",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "active",
                "unsubscribed",
                "bounced",
                "complained",
                name="subscription_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_subscriptions_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("contact_id", "publication", name=op.f("uq_subscriptions_contact_id")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subscriptions_publication"), ["publication"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriptions_publication"))

    op.drop_table("subscriptions")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_status"))
        batch_op.drop_index(batch_op.f("ix_contacts_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_contacts_email_hash"))

    op.drop_table("contacts")
    op.drop_table("suppressions")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organisations_kind"))

    op.drop_table("organisations")
