"""Reports: an approved issue's content links, click counts, reach counts per organisation.

Revision ID: c4f9a2d7e3b1
Revises: b8e2d4f6a1c9
Create Date: 2027-01-10 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4f9a2d7e3b1"
down_revision: str | None = "b8e2d4f6a1c9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MEASURES = (
    "queued",
    "claimed",
    "sent",
    "deferred",
    "failed",
    "suppressed",
    "in_doubt",
    "bounced",
    "bounced_later",
    "complained",
    "unsubscribed",
)


def upgrade() -> None:
    op.create_table(
        "issue_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("label", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_issue_links_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_links")),
        sa.UniqueConstraint("issue_id", "position", name=op.f("uq_issue_links_issue_id")),
    )
    with op.batch_alter_table("issue_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issue_links_issue_id"), ["issue_id"], unique=False)

    op.create_table(
        "click_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("link", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_click_counts_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_click_counts")),
        sa.UniqueConstraint(
            "issue_id", "link", "organisation_id", "day", name=op.f("uq_click_counts_issue_id")
        ),
    )
    with op.batch_alter_table("click_counts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_click_counts_issue_id"), ["issue_id"], unique=False)

    op.create_table(
        "reach_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column(
            "measure",
            sa.Enum(
                *MEASURES,
                name="reach_measure",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_reach_counts_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reach_counts")),
        sa.UniqueConstraint(
            "issue_id", "organisation_id", "measure", name=op.f("uq_reach_counts_issue_id")
        ),
    )
    with op.batch_alter_table("reach_counts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reach_counts_issue_id"), ["issue_id"], unique=False)


def downgrade() -> None:
    for table in ("reach_counts", "click_counts", "issue_links"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_issue_id"))
        op.drop_table(table)
