"""Staff accounts for the console, and sign-ups waiting for confirmation.

Revision ID: 9081f8dd5052
Revises: d38156ef6c20
Create Date: 2026-11-24 19:45:53.813717
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "9081f8dd5052"
down_revision: str | None = "d38156ef6c20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("organisation", sa.String(length=200), nullable=False),
        sa.Column("ip_hash", sa.String(length=64), nullable=False),
        sa.Column("wording_version", sa.String(length=60), nullable=False),
        sa.Column("confirmation_sent", sa.Boolean(), nullable=False),
        sa.Column("confirmed_at", mailer.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signups")),
    )
    with op.batch_alter_table("signups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signups_email_hash"), ["email_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_signups_ip_hash"), ["ip_hash"], unique=False)

    op.create_table(
        "staff_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "editor",
                "approver",
                "admin",
                name="staff_role",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", mailer.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", mailer.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_accounts")),
        sa.UniqueConstraint("email", name=op.f("uq_staff_accounts_email")),
    )


def downgrade() -> None:
    op.drop_table("staff_accounts")
    with op.batch_alter_table("signups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signups_ip_hash"))
        batch_op.drop_index(batch_op.f("ix_signups_email_hash"))

    op.drop_table("signups")
