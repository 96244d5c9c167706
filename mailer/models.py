"""The database tables and the enums that name every status (one schema, all stages)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

from mailer import clock

# Stable constraint names, so Alembic migrations can refer to them on every backend.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class OrganisationKind(StrEnum):
    LEP = "lep"
    GOVERNMENT = "government"
    BUSINESS_REPRESENTATIVE = "business_representative"
    SKILLS = "skills"
    TRANSPORT = "transport"
    SPONSOR = "sponsor"
    MEDIA = "media"
    OTHER = "other"


class Role(StrEnum):
    CHAIR = "chair"
    CHIEF_EXECUTIVE = "chief_executive"
    OFFICER = "officer"
    COMMUNICATIONS_LEAD = "communications_lead"
    BOARD_MEMBER = "board_member"
    STAKEHOLDER = "stakeholder"


class ContactStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    SUPPRESSED = "suppressed"
    ERASED = "erased"


class LawfulBasis(StrEnum):
    CONSENT = "consent"
    LEGITIMATE_INTEREST = "legitimate_interest"


class Publication(StrEnum):
    BULLETIN = "bulletin"
    NEWSLETTER = "newsletter"

    @property
    def internal(self) -> bool:
        """An internal publication goes to LEP contacts only (fixed here, not in config)."""
        return self is Publication.BULLETIN

    @property
    def organisation_kinds(self) -> frozenset[OrganisationKind]:
        """The organisation kinds whose contacts may ever receive it: LEPs only for an
        internal publication (the firewall's rule; asked through
        :func:`mailer.audiences.may_receive`)."""
        return _RECEIVING_KINDS[self.internal]


# Made once: the firewall asks for them on every row of an audience.
_RECEIVING_KINDS = {True: frozenset({OrganisationKind.LEP}), False: frozenset(OrganisationKind)}


class SubscriptionStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class SuppressionReason(StrEnum):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    ERASURE = "erasure"
    MANUAL = "manual"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use mailer.clock.now() or an aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def enum_type(enum: type[StrEnum], name: str) -> sa.Enum:
    """A portable enum column: VARCHAR plus a CHECK constraint listing the values."""
    return sa.Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def _timestamp(**kwargs: Any) -> Any:
    return Field(
        default_factory=clock.now,
        sa_type=UTCDateTime,
        nullable=False,
        **kwargs,
    )


class Organisation(SQLModel, table=True):
    __tablename__ = "organisations"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    short_name: str | None = Field(default=None, max_length=60, unique=True)
    kind: OrganisationKind = Field(
        sa_type=enum_type(OrganisationKind, "organisation_kind"),
        nullable=False,
        index=True,
    )
    board_group: str | None = Field(default=None, max_length=100)
    website: str | None = Field(default=None, max_length=300)
    # A LEP's own mail domains ("d2n2lep.org;d2n2.org.uk"): a confirmed sign-up from one
    # of them is a contact of that LEP (lists/leps.csv, column `domains`).
    domains: str | None = Field(default=None, max_length=500)
    created_at: datetime = _timestamp()


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"
    # SQLite would hand an erased contact's id to the next one; old links name ids.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    email_hash: str = Field(max_length=64, index=True)
    name: str = Field(max_length=200)
    organisation_id: int = Field(foreign_key="organisations.id", index=True)
    # What a reader typed as their organisation at sign-up: never membership, only a
    # note for staff to review and link (`mailer contacts link`, the console).
    stated_organisation: str | None = Field(default=None, max_length=200)
    role: Role = Field(
        sa_type=enum_type(Role, "contact_role"),
        nullable=False,
    )
    status: ContactStatus = Field(
        default=ContactStatus.ACTIVE,
        sa_type=enum_type(ContactStatus, "contact_status"),
        nullable=False,
        index=True,
    )
    lawful_basis: LawfulBasis = Field(
        sa_type=enum_type(LawfulBasis, "lawful_basis"),
        nullable=False,
    )
    consent_source: str | None = Field(default=None, max_length=200)
    consented_at: datetime | None = Field(
        default=None,
        sa_type=UTCDateTime,
        nullable=True,
    )
    consent_wording_version: str | None = Field(default=None, max_length=60)
    consent_confirmed_at: datetime | None = Field(
        default=None,
        sa_type=UTCDateTime,
        nullable=True,
    )
    bounce_score: float = Field(default=0.0)
    bounce_scored_on: date | None = Field(default=None)
    last_bounce_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"
    __table_args__ = (sa.UniqueConstraint("contact_id", "publication"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contacts.id", ondelete="CASCADE")
    publication: Publication = Field(
        sa_type=enum_type(Publication, "publication"),
        nullable=False,
        index=True,
    )
    status: SubscriptionStatus = Field(
        default=SubscriptionStatus.ACTIVE,
        sa_type=enum_type(SubscriptionStatus, "subscription_status"),
        nullable=False,
    )
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class Suppression(SQLModel, table=True):
    """An address never to be mailed again, kept as a hash so it survives erasure."""

    __tablename__ = "suppressions"

    id: int | None = Field(default=None, primary_key=True)
    email_hash: str = Field(max_length=64, unique=True)
    reason: SuppressionReason = Field(
        sa_type=enum_type(SuppressionReason, "suppression_reason"),
        nullable=False,
    )
    created_at: datetime = _timestamp()


class IssueStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    MISSED = "missed"
    CANCELLED = "cancelled"


class EventAudience(StrEnum):
    INTERNAL = "internal"
    EXTERNAL = "external"
    BOTH = "both"


class Issue(SQLModel, table=True):
    """One issue of a publication: its content while a draft, its rendering once approved."""

    __tablename__ = "issues"
    __table_args__ = (sa.UniqueConstraint("publication", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    publication: Publication = Field(
        sa_type=enum_type(Publication, "publication"),
        nullable=False,
        index=True,
    )
    number: str = Field(max_length=20)
    subject: str = Field(max_length=200)
    preheader: str = Field(default="", max_length=300)
    slot_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    status: IssueStatus = Field(
        default=IssueStatus.DRAFT,
        sa_type=enum_type(IssueStatus, "issue_status"),
        nullable=False,
        index=True,
    )
    sponsor_name: str | None = Field(default=None, max_length=200)
    sponsor_link: str | None = Field(default=None, max_length=500)
    sponsor_blurb: str | None = Field(default=None, max_length=1000)
    sponsor_logo: str | None = Field(default=None, max_length=500)
    sponsor_logo_alt: str | None = Field(default=None, max_length=300)
    last_edited_by: str | None = Field(default=None, max_length=320)
    approved_by: str | None = Field(default=None, max_length=320)
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    rendered_html: str | None = Field(default=None, sa_type=sa.Text)
    rendered_text: str | None = Field(default=None, sa_type=sa.Text)
    render_nonce: str | None = Field(default=None, max_length=40)
    send_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    send_finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class Section(SQLModel, table=True):
    __tablename__ = "sections"
    __table_args__ = (sa.UniqueConstraint("issue_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issues.id", ondelete="CASCADE", index=True)
    position: int
    heading: str = Field(max_length=200)


class Item(SQLModel, table=True):
    __tablename__ = "items"
    __table_args__ = (sa.UniqueConstraint("section_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    section_id: int = Field(foreign_key="sections.id", ondelete="CASCADE", index=True)
    position: int
    title: str = Field(max_length=300)
    body: str = Field(default="", sa_type=sa.Text)
    link: str | None = Field(default=None, max_length=1000)
    image_url: str | None = Field(default=None, max_length=1000)
    image_alt: str | None = Field(default=None, max_length=300)
    image_width: int | None = None
    image_height: int | None = None
    # The contribution this item came from, if a LEP sent it in (kept through edits).
    contribution_id: int | None = Field(
        default=None, foreign_key="contributions.id", ondelete="SET NULL", index=True
    )


class Event(SQLModel, table=True):
    """One entry in the events diary."""

    __tablename__ = "events"

    id: int | None = Field(default=None, primary_key=True)
    starts_on: date = Field(index=True)
    title: str = Field(max_length=300)
    location: str = Field(default="", max_length=300)
    link: str | None = Field(default=None, max_length=1000)
    audience: EventAudience = Field(
        default=EventAudience.BOTH,
        sa_type=enum_type(EventAudience, "event_audience"),
        nullable=False,
    )
    contribution_id: int | None = Field(
        default=None, foreign_key="contributions.id", ondelete="SET NULL", index=True
    )
    created_at: datetime = _timestamp()


class CapturedMessage(SQLModel, table=True):
    """A message the capture transport kept instead of sending: the index of var/mail."""

    __tablename__ = "captured_messages"

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=300, index=True)
    envelope_from: str = Field(max_length=320)
    recipients: str = Field(sa_type=sa.Text)
    subject: str = Field(default="", max_length=1000)
    path: str = Field(max_length=1000)
    size: int
    captured_at: datetime = _timestamp()


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class BounceKind(StrEnum):
    PERMANENT = "permanent"
    TEMPORARY = "temporary"
    COMPLAINT = "complaint"


class Delivery(SQLModel, table=True):
    """One issue to one contact: claimed before SMTP, its reply recorded after."""

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.UniqueConstraint("issue_id", "contact_id"),
        sa.Index("ix_deliveries_outbox", "issue_id", "status", "next_attempt_at"),
        # The claim reads one issue's queued rows in id order, a batch at a time.
        sa.Index("ix_deliveries_claim", "issue_id", "status", "id"),
        {"sqlite_autoincrement": True},  # VERP tokens name ids: never hand one out again
    )

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issues.id")
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    # The contact's organisation when the outbox was filled: reports count a copy where
    # it went, whatever the contact's organisation is later (None: filled before this).
    organisation_id: int | None = None
    status: DeliveryStatus = Field(
        default=DeliveryStatus.QUEUED,
        sa_type=enum_type(DeliveryStatus, "delivery_status"),
        nullable=False,
    )
    attempts: int = Field(default=0)
    in_doubt: bool = Field(default=False)
    claimed_by: str | None = Field(default=None, max_length=100)
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # The claim is a lease: its sender renews it; once past, another sender may take it.
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_code: int | None = None
    last_reply: str | None = Field(default=None, max_length=1000)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class BounceEvent(SQLModel, table=True):
    """A bounce or complaint, recorded first and acted on by the policy (Mailman's model)."""

    __tablename__ = "bounce_events"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int | None = Field(default=None, foreign_key="contacts.id", index=True)
    delivery_id: int | None = Field(default=None, foreign_key="deliveries.id", index=True)
    email_hash: str = Field(max_length=64, index=True)
    kind: BounceKind = Field(
        sa_type=enum_type(BounceKind, "bounce_kind"),
        nullable=False,
    )
    source: str = Field(max_length=20)
    code: int | None = None
    diagnostic: str = Field(default="", max_length=1000)
    raw: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = _timestamp()


class SlotStatus(StrEnum):
    PLANNED = "planned"
    SKIPPED = "skipped"
    MISSED = "missed"
    DISPATCHED = "dispatched"


class Slot(SQLModel, table=True):
    """A planned send time in the editorial calendar; its issue has the same number."""

    __tablename__ = "slots"
    __table_args__ = (sa.UniqueConstraint("publication", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    publication: Publication = Field(
        sa_type=enum_type(Publication, "publication"),
        nullable=False,
        index=True,
    )
    number: str = Field(max_length=20)
    send_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    deadline_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    status: SlotStatus = Field(
        default=SlotStatus.PLANNED,
        sa_type=enum_type(SlotStatus, "slot_status"),
        nullable=False,
    )
    origin: str = Field(default="rule", max_length=20)
    note: str = Field(default="", max_length=300)
    deadline_reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    morning_reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    missed_alerted_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class Leadership(SQLModel, table=True):
    """Which daemon keeps the calendar: a lease its holder renews, with a term that grows
    at every change of holder; also what an operator asks (last tick, last error)."""

    __tablename__ = "leadership"

    name: str = Field(max_length=40, primary_key=True)
    holder: str = Field(default="", max_length=120)
    term: int = Field(default=0)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    renewed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_tick_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_error: str = Field(default="", max_length=500)
    last_error_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class StaffRole(StrEnum):
    EDITOR = "editor"
    APPROVER = "approver"
    ADMIN = "admin"


class StaffAccount(SQLModel, table=True):
    """A member of staff who may use the console."""

    __tablename__ = "staff_accounts"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    role: StaffRole = Field(
        sa_type=enum_type(StaffRole, "staff_role"),
        nullable=False,
    )
    password_hash: str = Field(max_length=200)
    # Login attempts from addresses it never logged in from, and when the next may come.
    failed_logins: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_failed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    created_at: datetime = _timestamp()


class StaffSession(SQLModel, table=True):
    """A staff login: the browser's cookie holds only a random token, kept here as its hash;
    ended rows stay for a while as the addresses an account logged in from."""

    __tablename__ = "staff_sessions"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    staff_id: int = Field(foreign_key="staff_accounts.id", index=True)
    csrf: str = Field(max_length=64)
    created_at: datetime = _timestamp()
    last_seen_at: datetime = _timestamp()
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    ended_why: str | None = Field(default=None, max_length=40)
    ip_hash: str = Field(max_length=64)
    user_agent: str = Field(default="", max_length=300)


class LoginThrottle(SQLModel, table=True):
    """Failed staff logins from one client address (a keyed hash of it), whatever the account."""

    __tablename__ = "login_throttles"

    ip_hash: str = Field(max_length=64, primary_key=True)
    failures: int = Field(default=0)
    last_failed_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    blocked_until: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class Signup(SQLModel, table=True):
    """A sign-up waiting for its confirmation (double opt-in); kept briefly."""

    __tablename__ = "signups"
    __table_args__ = {"sqlite_autoincrement": True}  # confirmation links name ids

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320)
    email_hash: str = Field(max_length=64, index=True)
    name: str = Field(max_length=200)
    organisation: str = Field(default="", max_length=200)
    ip_hash: str = Field(max_length=64, index=True)
    wording_version: str = Field(max_length=60)
    confirmation_sent: bool = Field(default=False)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    created_at: datetime = _timestamp()


class AuditEntry(SQLModel, table=True):
    """Who did what, when: staff actions and every change to the lists."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _timestamp(index=True)
    actor: str = Field(max_length=320, index=True)
    action: str = Field(max_length=60, index=True)
    target: str = Field(default="", max_length=320)
    detail: str = Field(default="", max_length=2000)


class DeliveryCount(SQLModel, table=True):
    """Deliveries reduced to counts (after the retention period, or an erasure)."""

    __tablename__ = "delivery_counts"
    __table_args__ = (sa.UniqueConstraint("issue_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issues.id")
    status: DeliveryStatus = Field(
        sa_type=enum_type(DeliveryStatus, "delivery_status"),
        nullable=False,
    )
    count: int = Field(default=0)


class MediaImage(SQLModel, table=True):
    """An image of the media library, stored under var/media/ by the hash of its bytes."""

    __tablename__ = "media"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True)  # sha256 of the stored bytes + extension
    content_type: str = Field(max_length=40)
    width: int
    height: int
    size: int
    alt: str = Field(max_length=300)
    original_name: str = Field(default="", max_length=200)
    uploaded_by: str = Field(max_length=320)
    created_at: datetime = _timestamp()


class IssueAutosave(SQLModel, table=True):
    """What a member of staff last typed in an issue's editor, kept until saved or discarded
    (the form's fields as JSON: it may not yet be a valid issue)."""

    __tablename__ = "issue_autosaves"
    __table_args__ = (sa.UniqueConstraint("issue_id", "staff_email"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issues.id", ondelete="CASCADE", index=True)
    staff_email: str = Field(max_length=320)
    form: str = Field(sa_type=sa.Text)
    saved_at: datetime = _timestamp()


class ContributionKind(StrEnum):
    """What a LEP sends in for the bulletin."""

    LEP_NEWS = "lep_news"
    BEST_PRACTICE = "best_practice"
    EVENT = "event"
    FUNDING_POLICY = "funding_policy"

    @property
    def label(self) -> str:
        return {
            "lep_news": "LEP news",
            "best_practice": "Best practice",
            "event": "Workshop or event",
            "funding_policy": "Funding or policy update",
        }[self.value]


class ContributionStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class Contribution(SQLModel, table=True):
    """News, an event or best practice a LEP contact sent in through their bulletin's
    signed link, waiting for staff to accept it into an issue (or the diary) or decline it."""

    __tablename__ = "contributions"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    organisation_id: int = Field(foreign_key="organisations.id")
    via_issue_id: int | None = Field(default=None, foreign_key="issues.id")
    kind: ContributionKind = Field(
        sa_type=enum_type(ContributionKind, "contribution_kind"), nullable=False
    )
    headline: str = Field(max_length=300)
    body: str = Field(default="", sa_type=sa.Text)
    link: str | None = Field(default=None, max_length=1000)
    image_name: str | None = Field(default=None, max_length=80)  # in the media library
    image_alt: str | None = Field(default=None, max_length=300)
    event_on: date | None = None
    event_time: str | None = Field(default=None, max_length=5)
    event_place: str | None = Field(default=None, max_length=300)
    status: ContributionStatus = Field(
        default=ContributionStatus.RECEIVED,
        sa_type=enum_type(ContributionStatus, "contribution_status"),
        nullable=False,
        index=True,
    )
    # The next bulletin when it arrived (its send time and content deadline), kept: it was
    # in time or late whatever happens to that slot later. None: no bulletin was planned.
    next_slot_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    deadline_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # The issue it was accepted into (an event goes to the diary: events.contribution_id).
    issue_id: int | None = Field(default=None, foreign_key="issues.id")
    decline_reason: str | None = Field(default=None, max_length=500)
    decided_by: str | None = Field(default=None, max_length=320)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # When each email to the contributor went (claimed just before it is sent).
    receipt_sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    decision_sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    credit_sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    created_at: datetime = _timestamp(index=True)


class IssueLink(SQLModel, table=True):
    """A content link of an approved issue (an item's, the sponsor's, an event's), recorded
    when its rendering is frozen: the only targets its ``/r/`` redirects may go to."""

    __tablename__ = "issue_links"
    __table_args__ = (sa.UniqueConstraint("issue_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issues.id", ondelete="CASCADE", index=True)
    position: int  # 1, 2 … in the order the links first appear in the HTML part
    url: str = Field(max_length=1000)
    label: str = Field(default="", max_length=300)  # the link's visible text


class ClickCount(SQLModel, table=True):
    """Clicks of one link of an issue from copies sent to one organisation, on one day
    (calendar time zone). No person, address or browser is stored: link 0 counts the
    issue's view-online opens; organisation 0 counts copies not sent to anyone (the archive)."""

    __tablename__ = "click_counts"
    __table_args__ = (sa.UniqueConstraint("issue_id", "link", "organisation_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issues.id", ondelete="CASCADE", index=True)
    link: int
    organisation_id: int
    day: date
    clicks: int = Field(default=0)


class ReachMeasure(StrEnum):
    """What a reach count counts (per issue and organisation)."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    IN_DOUBT = "in_doubt"
    BOUNCED = "bounced"  # a permanent bounce: a 5xx reply, or a later DSN
    BOUNCED_LATER = "bounced_later"  # of those, a DSN after the relay had accepted it
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"  # through a link or the mailto of this issue's copy


class ReachCount(SQLModel, table=True):
    """Per issue and organisation, what is no longer derived from deliveries: unsubscribes
    (counted as they happen) and deliveries reduced to counts (retention, erasure)."""

    __tablename__ = "reach_counts"
    __table_args__ = (sa.UniqueConstraint("issue_id", "organisation_id", "measure"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issues.id", ondelete="CASCADE", index=True)
    organisation_id: int
    measure: ReachMeasure = Field(
        sa_type=enum_type(ReachMeasure, "reach_measure"),
        nullable=False,
    )
    count: int = Field(default=0)
