"""Audiences: who a publication goes to, streamed, behind the internal/external firewall.

The firewall: an internal publication (the bulletin) reaches contacts of LEP
organisations only, whatever the list files or subscriptions say. One predicate,
:func:`may_receive`, decides, and every door asks it: the resolver (its query built
from the same ``Publication.organisation_kinds``, and checked again on every row), the
claim before SMTP, preferences, sign-up confirmation, view online, test sends, the
importer, the console's contact form and the preferences page. Membership of a LEP is
granted, never self-declared (see :mod:`mailer.contacts`): staff put a contact there,
or a confirmed address is at one of that LEP's own mail domains.

Errors::

    FirewallError   a contact outside the LEPs was about to receive an internal publication
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

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


class FirewallError(Exception):
    """An internal publication was about to reach a contact outside the LEPs."""


class Recipient(NamedTuple):
    """One member of an audience: only what sending needs, no ORM object (a plain tuple,
    the cheapest thing to make a hundred thousand of)."""

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


def may_receive(organisation_kind: OrganisationKind, publication: Publication) -> bool:
    """The firewall: whether a contact of an organisation of this kind may receive
    ``publication`` at all (status, subscription and suppression are checked apart)."""
    return organisation_kind in publication.organisation_kinds


@cache
def receivable(organisation_kind: OrganisationKind) -> frozenset[Publication]:
    """The publications a contact of an organisation of this kind may receive (and so be
    offered, subscribed to, or imported into)."""
    return frozenset(p for p in Publication if may_receive(organisation_kind, p))


def check_recipient(publication: Publication, organisation_kind: OrganisationKind) -> None:
    """Refuse a publication the organisation's contacts may not receive.

    :raises FirewallError: ``publication`` is internal and the organisation is not a LEP.
    """
    if not may_receive(organisation_kind, publication):
        raise FirewallError(
            f"the {publication.value} is internal: a contact of a "
            f"{organisation_kind.value} organisation must never receive it"
        )


def members(
    publication: Publication, rule: AudienceRule
) -> sa.Select[int | None, str, str, int, OrganisationKind, Role]:
    """Active, subscribed, unsuppressed contacts of the allowed organisation kinds."""
    kinds = sorted(rule.kinds_for(publication))
    firewall = sorted(publication.organisation_kinds)
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
    if len(firewall) < len(OrganisationKind):
        # The firewall, stated on its own so no audience rule can ever widen it.
        query = query.where(col(Organisation.kind).in_(firewall))
    if rule.roles:
        query = query.where(col(Contact.role).in_(sorted(rule.roles)))
    return query


def resolve(
    session: Session, publication: Publication, rule: AudienceRule, *, chunk: int = 2000
) -> Iterator[Recipient]:
    """Stream the audience of ``publication`` in contact order, ``chunk`` rows at a time:
    one query read as plain tuples through the Core (no ORM loading on the way).

    :raises FirewallError: a row broke the firewall (the query makes this impossible;
        the check is the second lock on the door).
    """
    query = members(publication, rule).order_by(col(Contact.id))
    rows = session.connection().execute(query, execution_options={"yield_per": chunk})
    make = Recipient._make
    for row in rows:
        check_recipient(publication, row[4])
        yield make(row)


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
