"""Audiences: who a publication goes to, streamed, behind the internal/external firewall.

The firewall: an internal publication (the bulletin) reaches contacts of LEP
organisations only, whatever the list files or subscriptions say. The resolver
builds it into its query and checks every row it yields; the sender calls
:func:`check_recipient` again for each message before it is handed to SMTP.

Errors::

    FirewallError   a contact outside the LEPs was about to receive an internal publication
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col

from mailer.models import (
    Contact,
    ContactStatus,
    Organisation,
    OrganisationKind,
    Publication,
    Role,
    Subscription,
    SubscriptionStatus,
    Suppression,
)
from mailer.publications import AudienceRule

log = logging.getLogger(__name__)


class FirewallError(Exception):
    """An internal publication was about to reach a contact outside the LEPs."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """One member of an audience: only what sending needs, no ORM object."""

    contact_id: int
    email: str
    name: str
    organisation_id: int
    organisation_kind: OrganisationKind
    role: Role


@dataclass(frozen=True)
class AudienceCount:
    organisation_kind: OrganisationKind
    role: Role
    contacts: int


def check_recipient(publication: Publication, organisation_kind: OrganisationKind) -> None:
    """Refuse an internal publication for a contact of a non-LEP organisation.

    :raises FirewallError: ``publication`` is internal and the organisation is not a LEP.
    """
    if publication.internal and organisation_kind is not OrganisationKind.LEP:
        raise FirewallError(
            f"the {publication.value} is internal: a contact of a "
            f"{organisation_kind.value} organisation must never receive it"
        )


def check_contact(session: Session, publication: Publication, contact_id: int) -> None:
    """The per-message firewall check, read fresh from the database.

    :raises FirewallError: the contact's organisation is not a LEP and ``publication`` is
        internal, or the contact no longer exists.
    """
    kind = session.execute(
        sa.select(col(Organisation.kind))
        .join(Contact, col(Contact.organisation_id) == col(Organisation.id))
        .where(col(Contact.id) == contact_id)
    ).scalar_one_or_none()
    if kind is None:
        raise FirewallError(f"contact {contact_id} does not exist")
    try:
        check_recipient(publication, kind)
    except FirewallError:
        log.error("firewall: refused %s for contact %s (%s)", publication, contact_id, kind)
        raise


def members(
    publication: Publication, rule: AudienceRule
) -> sa.Select[int | None, str, str, int, OrganisationKind, Role]:
    """Active, subscribed, unsuppressed contacts of the allowed organisation kinds."""
    kinds = sorted(rule.kinds_for(publication))
    query = (
        sa.select(
            col(Contact.id),
            col(Contact.email),
            col(Contact.name),
            col(Contact.organisation_id),
            col(Organisation.kind),
            col(Contact.role),
        )
        .join(Organisation, col(Organisation.id) == col(Contact.organisation_id))
        .join(
            Subscription,
            sa.and_(
                col(Subscription.contact_id) == col(Contact.id),
                col(Subscription.publication) == publication,
            ),
        )
        .where(
            col(Contact.status) == ContactStatus.ACTIVE,
            col(Subscription.status) == SubscriptionStatus.ACTIVE,
            col(Organisation.kind).in_(kinds),
            ~sa.exists().where(col(Suppression.email_hash) == col(Contact.email_hash)),
        )
    )
    if publication.internal:
        # The firewall, stated on its own so no rule above can ever widen it.
        query = query.where(col(Organisation.kind) == OrganisationKind.LEP)
    if rule.roles:
        query = query.where(col(Contact.role).in_(sorted(rule.roles)))
    return query


def resolve(
    session: Session, publication: Publication, rule: AudienceRule, *, chunk: int = 2000
) -> Iterator[Recipient]:
    """Stream the audience of ``publication`` in contact order, ``chunk`` rows at a time.

    :raises FirewallError: a row broke the firewall (the query makes this impossible;
        the check is the second lock on the door).
    """
    query = members(publication, rule).order_by(col(Contact.id))
    result = session.execute(query.execution_options(yield_per=chunk))
    for contact_id, email, name, organisation_id, kind, role in result:
        check_recipient(publication, kind)
        yield Recipient(contact_id, email, name, organisation_id, kind, role)


def count(session: Session, publication: Publication, rule: AudienceRule) -> int:
    """The number of recipients :func:`resolve` would yield."""
    subquery = members(publication, rule).subquery()
    return int(session.execute(sa.select(sa.func.count()).select_from(subquery)).scalar_one())


def breakdown(
    session: Session, publication: Publication, rule: AudienceRule
) -> list[AudienceCount]:
    """Audience size by organisation kind and role."""
    subquery = members(publication, rule).subquery()
    query = (
        sa.select(subquery.c.kind, subquery.c.role, sa.func.count())
        .group_by(subquery.c.kind, subquery.c.role)
        .order_by(subquery.c.kind, subquery.c.role)
    )
    return [
        AudienceCount(OrganisationKind(kind), Role(role), int(n))
        for kind, role, n in session.execute(query)
    ]
