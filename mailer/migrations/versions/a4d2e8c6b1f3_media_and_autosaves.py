"""The media library's images, and what staff last typed in an issue's editor.

Revision ID: a4d2e8c6b1f3
Revises: f7a3c9e1d5b8
Create Date: 2026-12-10 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision: str = "a4d2e8c6b1f3"
down_revision: str | None = "f7a3c9e1d5b8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("alt", sa.String(length=300), nullable=False),
        sa.Column("original_name", sa.String(length=200), nullable=False),
        sa.Column("uploaded_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
        sa.UniqueConstraint("name", name=op.f("uq_media_name")),
    )
    op.create_table(
        "issue_autosaves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("staff_email", sa.String(length=320), nullable=False),
        sa.Column("form", sa.Text(), nullable=False),
        sa.Column("saved_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_issue_autosaves_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_autosaves")),
        sa.UniqueConstraint("issue_id", "staff_email", name=op.f("uq_issue_autosaves_issue_id")),
    )
    with op.batch_alter_table("issue_autosaves", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issue_autosaves_issue_id"), ["issue_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("issue_autosaves", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issue_autosaves_issue_id"))
    op.drop_table("issue_autosaves")
    op.drop_table("media")
