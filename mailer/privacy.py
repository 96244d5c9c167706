"""Data-protection duties: subject access export, erasure, and retention of delivery details.

Erasure removes the personal data and keeps only a hashed suppression entry, so a later
import or sign-up of the same address stays suppressed; deliveries become anonymous
counts per issue. Retention reduces old delivery details to the same counts.

Errors::

    SubjectNotFound   nothing is held about the address
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from email import policy as email_policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailer import audit, clock, contributions, reports
from mailer.contacts import (
    ContactFieldError,
    email_hash,
    normalise_email,
    suppress,
    suppression,
)
from mailer.db import flush_wal, rowcount
from mailer.models import (
    AuditEntry,
    BounceEvent,
    CapturedMessage,
    Contact,
    Delivery,
    DeliveryCount,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Organisation,
    Signup,
    Subscription,
    SuppressionReason,
)

log = logging.getLogger(__name__)


class SubjectNotFound(LookupError):
    """Nothing is held about this address."""


def _address(email: str) -> str:
    try:
        return normalise_email(email)
    except ContactFieldError:
        return email.strip().lower()


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def export_subject(session: Session, email: str) -> dict[str, Any]:
    """Everything held about an address, as plain data for JSON.

    :raises SubjectNotFound: nothing is held (no contact, sign-up, suppression or event).
    """
    address = _address(email)
    digest = email_hash(address)
    contact = session.exec(select(Contact).where(col(Contact.email) == address)).first()
    signups = session.exec(select(Signup).where(col(Signup.email_hash) == digest)).all()
    suppressed = suppression(session, digest)
    events = session.exec(
        select(BounceEvent)
        .where(
            sa.or_(
                col(BounceEvent.email_hash) == digest,
                col(BounceEvent.contact_id) == (contact.id if contact else -1),
            )
        )
        .order_by(col(BounceEvent.id))
    ).all()
    if contact is None and not signups and suppressed is None and not events:
        raise SubjectNotFound(f"nothing is held about {address}")
    data: dict[str, Any] = {
        "email": address,
        "exported_at": clock.now().isoformat(),
        "contact_id": contact.id if contact else None,
    }
    if contact is not None:
        organisation = session.get(Organisation, contact.organisation_id)
        data["profile"] = {
            "name": contact.name,
            "organisation": organisation.name if organisation else None,
            "role": contact.role.value,
            "status": contact.status.value,
            "created_at": _iso(contact.created_at),
            "updated_at": _iso(contact.updated_at),
        }
        data["lawful_basis"] = {
            "basis": contact.lawful_basis.value,
            "consent_source": contact.consent_source,
            "consented_at": _iso(contact.consented_at),
            "consent_wording_version": contact.consent_wording_version,
            "consent_confirmed_at": _iso(contact.consent_confirmed_at),
        }
        data["subscriptions"] = [
            {
                "publication": s.publication.value,
                "status": s.status.value,
                "since": _iso(s.created_at),
                "changed": _iso(s.updated_at),
            }
            for s in session.exec(
                select(Subscription).where(col(Subscription.contact_id) == contact.id)
            )
        ]
        data["deliveries"] = [
            {
                "issue": f"{issue.publication.value} {issue.number}",
                "subject": issue.subject,
                "status": delivery.status.value,
                "attempts": delivery.attempts,
                "sent_at": _iso(delivery.sent_at),
                "last_reply": delivery.last_reply,
            }
            for delivery, issue in session.execute(
                sa.select(Delivery, Issue)
                .join(Issue, col(Issue.id) == col(Delivery.issue_id))
                .where(col(Delivery.contact_id) == contact.id)
                .order_by(col(Delivery.id))
            )
        ]
        data["contributions"] = [
            {
                "kind": c.kind.value,
                "headline": c.headline,
                "text": c.body,
                "link": c.link,
                "image": c.image_name,
                "image_alt": c.image_alt,
                "event_on": _iso(c.event_on),
                "event_time": c.event_time,
                "event_place": c.event_place,
                "status": c.status.value,
                "decline_reason": c.decline_reason,
                "sent_at": _iso(c.created_at),
                "decided_at": _iso(c.decided_at),
            }
            for c in contributions.of_contact(session, contact.id or 0)
        ]
        data["bounce_score"] = contact.bounce_score
        data["last_bounce_at"] = _iso(contact.last_bounce_at)
        data["history"] = [
            {"at": _iso(e.at), "by": e.actor, "action": e.action, "detail": e.detail}
            for e in audit.listing(session, target=f"contact {contact.id}", limit=10_000)
        ]
    data["bounces"] = [
        {
            "kind": e.kind.value,
            "at": _iso(e.created_at),
            "code": e.code,
            "diagnostic": e.diagnostic,
            "source": e.source,
            "report": e.raw,
        }
        for e in events
        if e.kind.value != "complaint"
    ]
    data["complaints"] = [
        {"at": _iso(e.created_at), "detail": e.diagnostic, "source": e.source, "report": e.raw}
        for e in events
        if e.kind.value == "complaint"
    ]
    data["signups"] = [
        {
            "name": s.name,
            "organisation": s.organisation,
            "at": _iso(s.created_at),
            "wording_version": s.wording_version,
            "confirmed_at": _iso(s.confirmed_at),
        }
        for s in signups
    ]
    data["captured_copies"] = [
        {"subject": c.subject, "at": _iso(c.captured_at), "file": c.path}
        for c in session.exec(
            select(CapturedMessage)
            .where(col(CapturedMessage.recipients).contains(address))
            .order_by(col(CapturedMessage.id))
        )
    ]
    data["suppressed"] = (
        {"reason": suppressed.reason.value, "since": _iso(suppressed.created_at)}
        if suppressed
        else None
    )
    return data


def _count(session: Session, deliveries: Iterable[tuple[int, DeliveryStatus]]) -> None:
    """Add deliveries to the per-issue counts."""
    tally = Counter(deliveries)
    for (issue_id, status), number in tally.items():
        row = session.exec(
            select(DeliveryCount).where(
                col(DeliveryCount.issue_id) == issue_id, col(DeliveryCount.status) == status
            )
        ).first()
        if row is None:
            session.add(DeliveryCount(issue_id=issue_id, status=status, count=number))
        else:
            row.count += number


def _forget_captured(session: Session, address: str) -> list[Path]:
    """Delete the index rows of captured messages to or about the address; return their files.

    Readers' copies go out from VERP senders and name their reader in the recipients;
    anything else (staff notices, test sends) is few and is looked through for the address.
    """
    found: list[Path] = []
    for captured in session.exec(
        select(CapturedMessage).where(
            sa.or_(
                col(CapturedMessage.recipients).contains(address),
                sa.not_(col(CapturedMessage.envelope_from).startswith("bounces+")),
            )
        )
    ):
        path = Path(captured.path)
        recipients = (r.strip().lower() for r in captured.recipients.split(","))
        if address not in recipients and not _mentions(path, address):
            continue
        session.delete(captured)
        found.append(path)
    return found


def erase_subject(
    session: Session, email: str, *, actor: str, media_folder: Path | None = None
) -> dict[str, int]:
    """Erase everything personal about an address; keep a hashed suppression. Commits.

    Their contributions go too (items and events made from them stay in issues, linked
    to no one); an image only they sent and no item uses goes from the media library in
    ``media_folder``.

    Returns what was removed or reduced, by kind.

    :raises SubjectNotFound: nothing is held about the address.
    """
    address = _address(email)
    digest = email_hash(address)
    contact = session.exec(select(Contact).where(col(Contact.email) == address)).first()
    removed: Counter[str] = Counter()
    images: list[str] = []
    if contact is not None and contact.id is not None:
        removed["contributions"], images = contributions.forget_contact(session, contact.id)
        rows = session.execute(
            sa.select(col(Delivery.issue_id), col(Delivery.status)).where(
                col(Delivery.contact_id) == contact.id,
                col(Delivery.status).not_in([DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED]),
            )
        ).all()
        _count(session, [(issue_id, status) for issue_id, status in rows])
        theirs = sa.select(col(Delivery.id)).where(col(Delivery.contact_id) == contact.id)
        reports.reduce(
            session,
            list(
                session.execute(
                    theirs.where(
                        col(Delivery.status).not_in([DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED])
                    )
                ).scalars()
            ),
        )
        removed["bounce_events"] = rowcount(
            session.execute(
                sa.delete(BounceEvent).where(
                    sa.or_(
                        col(BounceEvent.contact_id) == contact.id,
                        col(BounceEvent.delivery_id).in_(theirs),
                    )
                )
            )
        )
        removed["deliveries"] = rowcount(
            session.execute(sa.delete(Delivery).where(col(Delivery.contact_id) == contact.id))
        )
        removed["subscriptions"] = rowcount(
            session.execute(
                sa.delete(Subscription).where(col(Subscription.contact_id) == contact.id)
            )
        )
        session.delete(contact)
        removed["contacts"] = 1
    removed["bounce_events"] += rowcount(
        session.execute(sa.delete(BounceEvent).where(col(BounceEvent.email_hash) == digest))
    )
    removed["signups"] = rowcount(
        session.execute(sa.delete(Signup).where(col(Signup.email_hash) == digest))
    )
    captured = _forget_captured(session, address)
    removed["captured_messages"] = len(captured)
    if not any(removed.values()) and suppression(session, digest) is None:
        session.rollback()
        raise SubjectNotFound(f"nothing is held about {address}")
    suppress(session, digest, SuppressionReason.ERASURE)  # a bounce's reason is kept
    _scrub_audit(session, address)
    who = f"contact {contact.id}" if contact else "(no contact)"
    audit.record(
        session,
        actor,
        "subject:erase",
        target=who,
        detail=", ".join(f"{k} {v}" for k, v in sorted(removed.items()) if v),
    )
    session.commit()
    for path in captured:
        path.unlink(missing_ok=True)
    if media_folder is not None:
        for name in images:
            (media_folder / name).unlink(missing_ok=True)
    if not flush_wal(session):
        log.warning(
            "erased %s, but a reader kept old pages in the SQLite write-ahead log: they go at "
            "its next checkpoint",
            who,
        )
    return {kind: number for kind, number in removed.items() if number}


def _mentions(path: Path, address: str) -> bool:
    """Whether a kept message names the address, in a header or (decoded) in a text part."""
    try:
        message = BytesParser(policy=email_policy.default).parsebytes(path.read_bytes())
    except OSError:
        return False  # the file is gone already
    texts = [f"{name}: {value}" for name, value in message.items()]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            try:
                texts.append(part.get_content())
            except (LookupError, ValueError):  # an unknown charset: the raw payload, then
                texts.append(str(part.get_payload()))
    return any(address in text.lower() for text in texts)


def _scrub_audit(session: Session, address: str) -> None:
    """The audit log keeps who did what to "contact N"; the address itself goes.

    It can appear as a target (a sign-up) or inside a detail (a bounce's diagnostic).
    """
    pattern = re.compile(re.escape(address), re.IGNORECASE)
    needle = f"%{address}%"
    for entry in session.exec(
        select(AuditEntry).where(
            sa.or_(
                sa.func.lower(col(AuditEntry.target)).like(needle),
                sa.func.lower(col(AuditEntry.detail)).like(needle),
            )
        )
    ):
        entry.target = pattern.sub("(erased)", entry.target)
        entry.detail = pattern.sub("(erased)", entry.detail)


RETAIN_BATCH = 5000


def retain(session: Session, days: float, *, batch: int = RETAIN_BATCH) -> int:
    """Reduce delivery details older than ``days`` (of finished sends) to counts.

    Works in batches of ``batch`` deliveries, each committed: a short write lock at a time,
    and well under any database's limit on bound parameters. Returns how many were reduced.
    """
    cutoff = clock.now() - timedelta(days=days)
    old = (
        sa.select(col(Delivery.id), col(Delivery.issue_id), col(Delivery.status))
        .join(Issue, col(Issue.id) == col(Delivery.issue_id))
        .where(
            col(Issue.status).in_([IssueStatus.SENT, IssueStatus.CANCELLED, IssueStatus.MISSED]),
            col(Delivery.updated_at) < cutoff,
            col(Delivery.status).not_in([DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED]),
        )
        .order_by(col(Delivery.id))
        .limit(batch)
    )
    reduced = 0
    while rows := session.execute(old).all():
        _count(session, [(issue_id, status) for _, issue_id, status in rows])
        ids = [delivery_id for delivery_id, _, _ in rows]
        reports.reduce(session, ids)  # reach per organisation, before the rows go
        session.execute(
            sa.update(BounceEvent)
            .where(col(BounceEvent.delivery_id).in_(ids))
            .values(delivery_id=None)
        )
        session.execute(sa.delete(Delivery).where(col(Delivery.id).in_(ids)))
        session.commit()
        reduced += len(ids)
    if reduced:
        audit.record(session, audit.SYSTEM, "retention", detail=f"{reduced} deliveries to counts")
        session.commit()
    return reduced


def counted(session: Session, issue_id: int) -> dict[DeliveryStatus, int]:
    """Deliveries of an issue already reduced to counts."""
    return {
        row.status: row.count
        for row in session.exec(
            select(DeliveryCount).where(col(DeliveryCount.issue_id) == issue_id)
        )
    }
