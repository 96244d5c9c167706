"""The database tables and the enums that name every status (one schema, all stages)."""

from __future__ import annotations

from datetime import UTC, datetime
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
    created_at: datetime = _timestamp()


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    email_hash: str = Field(max_length=64, index=True)
    name: str = Field(max_length=200)
    organisation_id: int = Field(foreign_key="organisations.id", index=True)
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
