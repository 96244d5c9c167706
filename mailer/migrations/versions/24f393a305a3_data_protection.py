"""Bounce scores and raw reports, the audit log, deliveries reduced to counts.

Revision ID: 24f393a305a3
Revises: 9081f8dd5052
Create Date: 2026-11-24 20:31:02.033098
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "24f393a305a3"
down_revision: str | None = "9081f8dd5052"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("target", sa.String(length=320), nullable=False),
        sa.Column("detail", sa.String(length=2000), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "delivery_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "claimed",
                "sent",
                "deferred",
                "failed",
                "suppressed",
                name="delivery_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_delivery_counts_issue_id_issues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_counts")),
        sa.UniqueConstraint("issue_id", "status", name=op.f("uq_delivery_counts_issue_id")),
    )
    with op.batch_alter_table("bounce_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw", sa.Text(), nullable=True))

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bounce_score", sa.Float(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("bounce_scored_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("last_bounce_at", mailer.models.UTCDateTime(timezone=True), nullable=True)
        )

    # SQLite hands the highest id out again once its row is deleted, and erasure deletes
    # rows that links, VERP tokens and audit entries name by id: AUTOINCREMENT never does.
    # (Left in place by the downgrade: it changes nothing else.)
    if op.get_context().dialect.name == "sqlite":
        for table in ("contacts", "deliveries", "signups"):
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ):
                pass


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("last_bounce_at")
        batch_op.drop_column("bounce_scored_on")
        batch_op.drop_column("bounce_score")

    with op.batch_alter_table("bounce_events", schema=None) as batch_op:
        batch_op.drop_column("raw")

    op.drop_table("delivery_counts")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))
        batch_op.drop_index(batch_op.f("ix_audit_log_actor"))
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))

    op.drop_table("audit_log")
