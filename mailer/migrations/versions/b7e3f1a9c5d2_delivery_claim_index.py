"""An index the outbox's claim reads in id order: one issue's queued rows, a batch at a time.

Revision ID: b7e3f1a9c5d2
Revises: c4f9a2d7e3b1
Create Date: 2026-12-01 19:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "b7e3f1a9c5d2"
down_revision: str | None = "c4f9a2d7e3b1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_deliveries_claim", "deliveries", ["issue_id", "status", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_deliveries_claim", table_name="deliveries")
