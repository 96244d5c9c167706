"""The audit log: who did what to the lists, issues and accounts, and when."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from mailer import clock
from mailer.models import AuditEntry

SYSTEM = "system"


def record(session: Session, actor: str, action: str, target: str = "", detail: str = "") -> None:
    """Add one entry (written with the caller's transaction)."""
    session.add(
        AuditEntry(
            at=clock.now(),
            actor=actor[:320],
            action=action[:60],
            target=target[:320],
            detail=detail[:2000],
        )
    )


def listing(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int = 100,
) -> Sequence[AuditEntry]:
    """The newest entries first, optionally for one actor, action or target."""
    query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
    if actor:
        query = query.where(col(AuditEntry.actor) == actor)
    if action:
        query = query.where(col(AuditEntry.action) == action)
    if target:
        query = query.where(col(AuditEntry.target) == target)
    return session.exec(query).all()
