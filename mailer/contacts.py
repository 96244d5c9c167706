"""Contacts: addresses normalised and hashed, field parsing, membership, listing, CSV export.

Membership of an organisation changes only through :func:`move` (staff: the importer,
the console, ``mailer contacts link``; or a confirmed address at a LEP's own domain):
what readers type is kept as a stated organisation, never as membership.

Every CSV cell written for a spreadsheet (export, import reports) that begins with
``= + - @``, a tab or a carriage return gets a leading ``'`` so no spreadsheet runs it
as a formula; the importer takes exactly that one ``'`` off again.

Errors::

    ContactFieldError   a value for a contact field cannot be understood
"""

from __future__ import annotations

import csv
import functools
import hashlib
import itertools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import TextIO

import email_validator
import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from email_validator import rfc_constants as email_constants
from email_validator import syntax as email_syntax
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from mailer import audiences, audit, clock
from mailer.db import get_by_id, like_pattern
from mailer.models import (
    Contact,
    ContactStatus,
    LawfulBasis,
    Organisation,
    OrganisationKind,
    Publication,
    Role,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from mailer.organisations import Directory, OrganisationError

EXPORT_COLUMNS = (
    "email",
    "name",
    "organisation",
    "role",
    "status",
    "lawful_basis",
    "consented_at",
    "source",
    "publications",
    "unsubscribed",
)
# Subscriptions the reader ended: exported as `unsubscribed`, never revived by an import.
ENDED_STATUSES = (
    SubscriptionStatus.UNSUBSCRIBED,
    SubscriptionStatus.BOUNCED,
    SubscriptionStatus.COMPLAINED,
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ContactFieldError(ValueError):
    """A field value is not valid; the message says what was expected, ``field`` which
    field it was ("" when none in particular)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def normalise_email(raw: str) -> str:
    """The canonical form of an address: syntax checked (no DNS), lower case, and all ASCII
    (an international domain in its xn-- form), as every header we send must be 7-bit.

    :raises ContactFieldError: the address is not a valid email address, or needs
        SMTPUTF8 (letters beyond ASCII before the @), which we cannot send to.
    """
    text = raw.strip()
    if not text:
        raise ContactFieldError("email is empty")
    plain = _plain_address(text)
    if plain is not None:
        return plain.lower()
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ContactFieldError(f"invalid address {text!r}: {exc}") from None
    assert checked.ascii_email is not None
    return checked.ascii_email.lower()


# One @, nothing quoted, bracketed, escaped or displayed: the common address.
_PLAIN = re.compile(r"[^\s\"<>()\[\]\\,;:@]+@[^\s\"<>()\[\]\\,;:@]+")


@lru_cache(maxsize=4096)
def _checked_domain(domain: str, test_environment: bool, globally_deliverable: bool) -> str | None:
    """email-validator's own check of a domain, remembered: an import of a hundred
    thousand addresses has a few hundred domains, and the check (IDNA) is most of the cost
    of validating an address. The domain's ASCII form, or None when it is refused."""
    try:
        info = email_syntax.validate_email_domain_name(
            domain, test_environment=test_environment, globally_deliverable=globally_deliverable
        )
    except EmailNotValidError:
        return None
    return info["ascii_domain"]


def _plain_address(text: str) -> str | None:
    """The address :func:`validate_email` would give for a plain ASCII address, by the
    library's own checks of its local part and (remembered) domain; None whenever it is
    not that simple, or either check refuses it: then the full validator decides (and
    says why)."""
    if not text.isascii() or len(text) > email_constants.EMAIL_MAX_LENGTH:
        return None
    if _PLAIN.fullmatch(text) is None:
        return None
    local, _, domain = text.partition("@")
    ascii_domain = _checked_domain(
        domain, email_validator.TEST_ENVIRONMENT, email_validator.GLOBALLY_DELIVERABLE
    )
    if ascii_domain is None:
        return None
    try:
        checked = email_syntax.validate_email_local_part(
            local, allow_smtputf8=False, allow_empty_local=False, quoted_local_part=False
        )
    except EmailNotValidError:
        return None
    address = f"{checked['ascii_local_part']}@{ascii_domain}"
    return address if len(address) <= email_constants.EMAIL_MAX_LENGTH else None


def to_spreadsheet_cell(value: str) -> str:
    """``value`` made safe for a spreadsheet: a ``'`` before a leading = + - @ tab or CR."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def from_spreadsheet_cell(value: str) -> str:
    """A cell as :func:`to_spreadsheet_cell` wrote it, with its one protective ``'`` removed."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def email_hash(email: str) -> str:
    """The SHA-256 of a normalised address: what a suppression keeps after erasure."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()


def suppression(session: Session, digest: str) -> Suppression | None:
    """The suppression list's entry for an address's hash, if any."""
    return session.exec(select(Suppression).where(col(Suppression.email_hash) == digest)).first()


def suppress(session: Session, digest: str, reason: SuppressionReason) -> None:
    """Put an address's hash on the suppression list; an entry already there keeps its
    reason (also when another process adds it at the same moment)."""
    if suppression(session, digest) is not None:
        return
    try:
        with session.begin_nested():
            session.add(Suppression(email_hash=digest, reason=reason))
    except IntegrityError:
        pass


def clean_name(raw: str) -> str:
    """A display name: whitespace collapsed, no control characters.

    :raises ContactFieldError: the name is empty, too long or holds control characters.
    """
    if not raw.isprintable() and any(  # printable: no control character (the fast path)
        unicodedata.category(ch) == "Cc" and ch not in " \t" for ch in raw
    ):
        raise ContactFieldError("name contains a line break or control character")
    name = " ".join(raw.split())
    if not name:
        raise ContactFieldError("name is empty")
    if len(name) > 200:
        raise ContactFieldError("name is longer than 200 characters")
    if name[0] in "=+-@":
        raise ContactFieldError(f"name starts with {name[0]!r} (looks like a spreadsheet formula)")
    return name


@functools.lru_cache(maxsize=256)  # a file repeats a few roles and bases many times
def _word_key(text: str) -> str:
    return " ".join(re.split(r"[\s/_\-]+", text.casefold().strip())).strip()


_ROLE_ALIASES: dict[str, Role] = {
    "chair": Role.CHAIR,
    "chairman": Role.CHAIR,
    "chairwoman": Role.CHAIR,
    "chairperson": Role.CHAIR,
    "chief executive": Role.CHIEF_EXECUTIVE,
    "chief executive director": Role.CHIEF_EXECUTIVE,
    "chief executive officer": Role.CHIEF_EXECUTIVE,
    "ceo": Role.CHIEF_EXECUTIVE,
    "director": Role.CHIEF_EXECUTIVE,
    "managing director": Role.CHIEF_EXECUTIVE,
    "officer": Role.OFFICER,
    "lep officer": Role.OFFICER,
    "communications lead": Role.COMMUNICATIONS_LEAD,
    "comms lead": Role.COMMUNICATIONS_LEAD,
    "communications": Role.COMMUNICATIONS_LEAD,
    "board member": Role.BOARD_MEMBER,
    "board": Role.BOARD_MEMBER,
    "stakeholder": Role.STAKEHOLDER,
}

ROLE_LABELS: dict[Role, str] = {
    Role.CHAIR: "Chair",
    Role.CHIEF_EXECUTIVE: "Chief executive/director",
    Role.OFFICER: "Officer",
    Role.COMMUNICATIONS_LEAD: "Communications lead",
    Role.BOARD_MEMBER: "Board member",
    Role.STAKEHOLDER: "Stakeholder",
}


def parse_role(raw: str) -> Role:
    """A role from its name or a common alias ("CEO", "Chief Executive/Director", "comms lead").

    :raises ContactFieldError: the role is unknown.
    """
    role = _ROLE_ALIASES.get(_word_key(raw))
    if role is None:
        expected = ", ".join(r.value for r in Role)
        raise ContactFieldError(f"unknown role {raw.strip()!r} (expected one of: {expected})")
    return role


def parse_lawful_basis(raw: str) -> LawfulBasis | None:
    """``consent`` or ``legitimate_interest`` (also "legitimate interest", "LI"); None if blank.

    :raises ContactFieldError: the value is something else.
    """
    key = _word_key(raw)
    if not key:
        return None
    if key == "consent":
        return LawfulBasis.CONSENT
    if key in ("legitimate interest", "legitimate interests", "li"):
        return LawfulBasis.LEGITIMATE_INTEREST
    raise ContactFieldError(
        f"unknown lawful_basis {raw.strip()!r} (expected consent or legitimate_interest)"
    )


def parse_publications(raw: str) -> frozenset[Publication] | None:
    """Publications named in a cell ("bulletin;newsletter", "none"); None if blank.

    :raises ContactFieldError: a name is not a publication.
    """
    if not raw or raw.isspace():
        return None
    words = [w for w in re.split(r"[\s;,|+]+", raw.casefold()) if w]
    if not words:
        return None
    if words == ["none"]:
        return frozenset()
    chosen = set()
    for word in words:
        try:
            chosen.add(Publication(word))
        except ValueError:
            raise ContactFieldError(
                f"unknown publication {word!r} (expected bulletin, newsletter or none)"
            ) from None
    return frozenset(chosen)


def move(
    session: Session,
    contact: Contact,
    organisation: Organisation,
    *,
    actor: str,
    subscribe: bool = True,
) -> bool:
    """Make ``contact`` a contact of ``organisation``: the one way membership changes.

    Only staff (or a confirmed address at a LEP's own domain) may call this. Active
    subscriptions to publications the new organisation may not receive end at once (the
    firewall, :func:`mailer.audiences.may_receive`); with ``subscribe``, a contact that
    may now receive a publication it has never had gets it, as an imported contact would
    (one it ended stays ended). A change clears the stated organisation. Audited by
    ``actor``; the caller commits. Returns whether the organisation changed.
    """
    assert contact.id is not None and organisation.id is not None
    now = clock.now()
    changed = contact.organisation_id != organisation.id
    before = session.get(Organisation, contact.organisation_id) if changed else organisation
    contact.organisation_id = organisation.id
    if changed:
        contact.stated_organisation = None
    contact.updated_at = now
    allowed = audiences.receivable(organisation.kind)
    held = {
        s.publication: s
        for s in session.exec(
            select(Subscription).where(col(Subscription.contact_id) == contact.id)
        )
    }
    ended, added = [], []
    for publication, subscription in held.items():
        if publication not in allowed and subscription.status in (
            SubscriptionStatus.ACTIVE,
            SubscriptionStatus.PENDING,
        ):
            session.delete(subscription)
            ended.append(publication.value)
    if changed and subscribe:
        for publication in sorted(allowed - set(held)):
            session.add(Subscription(contact_id=contact.id, publication=publication))
            added.append(publication.value)
    session.flush()
    if changed or ended:
        detail = f"{before.name if before else '?'} -> {organisation.name}"
        if ended:
            detail += f"; ended {', '.join(ended)} (not for {organisation.kind.value})"
        if added:
            detail += f"; subscribed to {', '.join(added)}"
        audit.record(session, actor, "contact:organisation", f"contact {contact.id}", detail)
    return changed


def live_contact(session: Session, contact_id: int) -> Contact:
    """The contact with this id, unless it was erased.

    :raises ContactFieldError: there is no such contact.
    """
    contact = get_by_id(session, Contact, contact_id)
    if contact is None or contact.status is ContactStatus.ERASED:
        raise ContactFieldError(f"there is no contact {contact_id}")
    return contact


def edit(
    session: Session,
    contact_id: int,
    *,
    name: str,
    role: Role,
    organisation_id: int,
    actor: str,
    email: str | None = None,
) -> Contact:
    """Change a contact's name, role, organisation and (with ``email``) address (staff).
    Audited; the caller commits.

    :raises ContactFieldError: there is no such contact or organisation, the name is not
        valid, or the address is not valid, another contact's, or suppressed
        (:func:`change_email`).
    """
    contact = live_contact(session, contact_id)
    organisation = get_by_id(session, Organisation, organisation_id)
    if organisation is None:
        raise ContactFieldError("organisation: choose one from the list", "organisation_id")
    try:
        contact.name = clean_name(name)
    except ContactFieldError as exc:
        raise ContactFieldError(f"name: {exc}", "name") from None
    contact.role = role
    if email is not None:
        change_email(session, contact, email, actor=actor)
    move(session, contact, organisation, actor=actor)
    audit.record(session, actor, "contact:edit", f"contact {contact_id}", f"{role}")
    return contact


def change_email(session: Session, contact: Contact, raw: str, *, actor: str) -> bool:
    """Give ``contact`` a new address, checked as every address is (:func:`normalise_email`)
    and unique. The audit names no address (an erasure must not leave one behind). The
    caller commits. Returns whether the address changed.

    :raises ContactFieldError: the address is not valid, is another contact's, or is
        suppressed (bounced, complained or erased: it is never mailed again).
    """
    try:
        address = normalise_email(raw)
    except ContactFieldError as exc:
        raise ContactFieldError(f"email: {exc}", "email") from None
    if address == contact.email:
        return False
    other = session.exec(select(Contact).where(col(Contact.email) == address)).first()
    if other is not None:
        raise ContactFieldError(
            f"email: {address} is already the address of contact {other.id}", "email"
        )
    digest = email_hash(address)
    if suppression(session, digest) is not None:
        raise ContactFieldError(
            f"email: {address} is suppressed (bounced, complained or erased): it is never "
            "mailed again",
            "email",
        )
    contact.email, contact.email_hash = address, digest
    contact.updated_at = clock.now()
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ContactFieldError(f"email: {address} was just given to another contact") from None
    audit.record(session, actor, "contact:email", f"contact {contact.id}", "address changed")
    return True


# What staff may set a contact's status to; an erasure has its own door (mailer.privacy).
STAFF_STATUSES = (ContactStatus.ACTIVE, ContactStatus.DISABLED, ContactStatus.SUPPRESSED)


def set_status(session: Session, contact_id: int, status: ContactStatus, *, actor: str) -> bool:
    """Set a contact's status (staff): disable (no mail until enabled again), enable a
    disabled contact (its bounce score back to 0), or suppress (the address goes on the
    suppression list: never mailed again, so a suppressed contact stays suppressed).
    Audited; the caller commits. Returns whether the status changed.

    :raises ContactFieldError: no such contact, the contact is suppressed, or ``status``
        is not one staff may set.
    """
    contact = live_contact(session, contact_id)
    if status not in STAFF_STATUSES:
        raise ContactFieldError(
            f"status: {status} is not a status to set (erase a contact on its page)", "status"
        )
    before = contact.status
    if status is before:
        return False
    if before is ContactStatus.SUPPRESSED:
        raise ContactFieldError(
            "status: the contact is suppressed: its address is never mailed again", "status"
        )
    now = clock.now()
    if before is ContactStatus.DISABLED and status is ContactStatus.ACTIVE:
        contact.bounce_score = 0.0
        contact.bounce_scored_on = None
        action, detail = "contact:enable", "bounce score reset"
    else:
        action, detail = "contact:status", f"{before} -> {status}"
    if status is ContactStatus.SUPPRESSED:
        suppress(session, contact.email_hash, SuppressionReason.MANUAL)
    contact.status = status
    contact.updated_at = now
    audit.record(session, actor, action, f"contact {contact_id}", detail)
    return True


def set_subscription(
    session: Session, contact_id: int, publication: Publication, status: SubscriptionStatus
) -> bool:
    """Set one subscription row (no checks: callers apply their rules); returns whether
    anything changed."""
    found = session.exec(
        select(Subscription).where(
            col(Subscription.contact_id) == contact_id,
            col(Subscription.publication) == publication,
        )
    ).first()
    if found is None:
        if status is not SubscriptionStatus.ACTIVE:
            return False
        session.add(Subscription(contact_id=contact_id, publication=publication, status=status))
        return True
    if found.status is status:
        return False
    found.status = status
    found.updated_at = clock.now()
    return True


def _subscribe_by_staff(
    session: Session, contact: Contact, publication: Publication, wanted: bool
) -> bool:
    """Staff turning one publication on or off for a contact; returns whether it changed.

    On: refused by the firewall for a publication the contact's organisation may not
    receive, and for one the reader ended (only they may subscribe again). Off: the
    subscription is removed, as :func:`move` removes one; one the reader ended stays.

    :raises ContactFieldError: the publication is refused.
    """
    assert contact.id is not None
    found = session.exec(
        select(Subscription).where(
            col(Subscription.contact_id) == contact.id,
            col(Subscription.publication) == publication,
        )
    ).first()
    if not wanted:
        if found is None or found.status in ENDED_STATUSES:
            return False
        session.delete(found)
        return True
    organisation = session.get(Organisation, contact.organisation_id)
    kind = organisation.kind if organisation else OrganisationKind.OTHER
    if not audiences.may_receive(kind, publication):
        raise ContactFieldError(
            f"the {publication} is internal: only contacts of LEPs may receive it "
            f"({organisation.name if organisation else '?'} is {kind.value.replace('_', ' ')})",
            "publications",
        )
    if found is not None and found.status in ENDED_STATUSES:
        raise ContactFieldError(
            f"the {publication}: the subscription is {found.status} (since "
            f"{found.updated_at:%d %b %Y}): only the reader can subscribe again, from "
            "their preferences link",
            "publications",
        )
    return set_subscription(session, contact.id, publication, SubscriptionStatus.ACTIVE)


def set_subscriptions(
    session: Session, contact_id: int, wanted: set[Publication], *, actor: str
) -> list[str]:
    """Make ``wanted`` the publications staff subscribe a contact to (the firewall and the
    reader's own unsubscriptions hold: see :func:`_subscribe_by_staff`). Audited; the
    caller commits. Returns what changed ("bulletin on", "newsletter off").

    :raises ContactFieldError: no such contact, or a publication is refused (nothing is
        changed then: the caller rolls back).
    """
    contact = live_contact(session, contact_id)
    changed = [
        f"{publication} {'on' if publication in wanted else 'off'}"
        for publication in sorted(Publication)
        if _subscribe_by_staff(session, contact, publication, publication in wanted)
    ]
    if changed:
        contact.updated_at = clock.now()
        audit.record(
            session, actor, "contact:subscriptions", f"contact {contact_id}", ", ".join(changed)
        )
    return changed


class BulkAction(StrEnum):
    """What staff can do to a selection of contacts at once."""

    ADD_BULLETIN = "add:bulletin"
    ADD_NEWSLETTER = "add:newsletter"
    REMOVE_BULLETIN = "remove:bulletin"
    REMOVE_NEWSLETTER = "remove:newsletter"
    DISABLE = "disable"

    @property
    def label(self) -> str:
        if self is BulkAction.DISABLE:
            return "Disable (no mail until enabled again)"
        verb, publication = self.value.split(":")
        return f"{'Add' if verb == 'add' else 'Remove'} the {publication}"


@dataclass(frozen=True)
class BulkOutcome:
    """What a bulk action did: contacts changed, already so, and refused (with why)."""

    changed: int
    unchanged: int
    refused: tuple[str, ...]

    def summary(self) -> str:
        text = f"{self.changed} changed, {self.unchanged} already so"
        if self.refused:
            text += f", {len(self.refused)} refused"
        return text


def apply_bulk(
    session: Session, contact_ids: list[int], action: BulkAction, *, actor: str
) -> BulkOutcome:
    """Do ``action`` to each contact, each through the same rules as one at a time (the
    firewall refuses the bulletin for a contact outside the LEPs; an ended subscription
    stays ended). A refused contact is left as it was and named. Audited per contact and
    once for the whole; the caller commits.
    """
    changed = unchanged = 0
    refused: list[str] = []
    for contact_id in dict.fromkeys(contact_ids):
        try:
            with session.begin_nested():
                if action is BulkAction.DISABLE:
                    done = set_status(session, contact_id, ContactStatus.DISABLED, actor=actor)
                else:
                    done = _bulk_subscription(session, contact_id, action, actor)
        except ContactFieldError as exc:
            refused.append(f"contact {contact_id}: {exc}")
            continue
        if done:
            changed += 1
        else:
            unchanged += 1
    outcome = BulkOutcome(changed, unchanged, tuple(refused))
    audit.record(
        session,
        actor,
        "contacts:bulk",
        f"{len(contact_ids)} contacts",
        f"{action}: {outcome.summary()}",
    )
    return outcome


def _bulk_subscription(session: Session, contact_id: int, action: BulkAction, actor: str) -> bool:
    verb, name = action.value.split(":")
    publication = Publication(name)
    contact = live_contact(session, contact_id)
    if not _subscribe_by_staff(session, contact, publication, verb == "add"):
        return False
    contact.updated_at = clock.now()
    audit.record(
        session,
        actor,
        "contact:subscriptions",
        f"contact {contact_id}",
        f"{publication} {'on' if verb == 'add' else 'off'} (bulk)",
    )
    return True


def link_stated(
    session: Session, email: str, organisation: str | None, *, actor: str
) -> tuple[Contact, Organisation]:
    """Link a contact to the organisation it stated at sign-up, or to ``organisation``:
    staff confirming who a reader works for. Audited; the caller commits.

    :raises ContactFieldError: no such contact, nothing stated and no organisation named,
        or the organisation is unknown or ambiguous.
    """
    address = normalise_email(email)
    contact = session.exec(select(Contact).where(col(Contact.email) == address)).first()
    if contact is None or contact.status is ContactStatus.ERASED:
        raise ContactFieldError(f"there is no contact {address}")
    wanted = (organisation or contact.stated_organisation or "").strip()
    if not wanted:
        raise ContactFieldError(f"{address} stated no organisation: name the one to link it to")
    try:
        found = Directory.load(session).named(wanted)
    except OrganisationError as exc:
        raise ContactFieldError(str(exc)) from None
    move(session, contact, found, actor=actor)
    contact.stated_organisation = None
    return contact, found


@dataclass(frozen=True)
class ContactRow:
    """One contact as listed or exported, with its organisation, active publications and
    the publications whose subscription was ended (unsubscribed, bounced, complained)."""

    email: str
    name: str
    organisation: str
    organisation_kind: OrganisationKind
    role: Role
    status: ContactStatus
    lawful_basis: LawfulBasis
    consented_at: str
    source: str
    publications: tuple[Publication, ...]
    unsubscribed: tuple[Publication, ...] = ()
    stated_organisation: str | None = None
    contact_id: int = 0


@dataclass(frozen=True)
class ContactFilter:
    """Which contacts a listing shows (every field optional; all given must match)."""

    organisation: str | None = None  # name or short name, exactly (any case)
    role: Role | None = None
    search: str | None = None  # part of the name or the address
    stated: bool = False  # only those with a stated organisation to review
    kind: OrganisationKind | None = None  # the organisation's kind
    status: ContactStatus | None = None
    publication: Publication | None = None  # an active subscription to it


def _rows_query(where: ContactFilter) -> sa.Select[Contact, Organisation]:
    query = (
        sa.select(Contact, Organisation)
        .join(Organisation, col(Organisation.id) == col(Contact.organisation_id))
        .where(col(Contact.status) != ContactStatus.ERASED)
        .order_by(col(Contact.id))
    )
    if where.organisation:
        key = where.organisation.casefold()
        query = query.where(
            sa.or_(
                sa.func.lower(col(Organisation.name)) == key,
                sa.func.lower(col(Organisation.short_name)) == key,
            )
        )
    if where.role is not None:
        query = query.where(col(Contact.role) == where.role)
    if where.kind is not None:
        query = query.where(col(Organisation.kind) == where.kind)
    if where.status is not None:
        query = query.where(col(Contact.status) == where.status)
    if where.publication is not None:
        query = query.where(
            sa.exists().where(
                col(Subscription.contact_id) == col(Contact.id),
                col(Subscription.publication) == where.publication,
                col(Subscription.status) == SubscriptionStatus.ACTIVE,
            )
        )
    if where.stated:
        query = query.where(col(Contact.stated_organisation).is_not(None))
    if where.search:
        pattern = like_pattern(where.search.casefold())
        query = query.where(
            sa.or_(
                sa.func.lower(col(Contact.email)).like(pattern, escape="\\"),
                sa.func.lower(col(Contact.name)).like(pattern, escape="\\"),
            )
        )
    return query


def iter_contacts(
    session: Session,
    *,
    organisation: str | None = None,
    role: Role | None = None,
    search: str | None = None,
    stated: bool = False,
    kind: OrganisationKind | None = None,
    status: ContactStatus | None = None,
    publication: Publication | None = None,
    limit: int | None = None,
    offset: int = 0,
    chunk: int = 1000,
) -> Iterator[ContactRow]:
    """Contacts (not erased) in id order with their active and ended publications, streamed;
    with ``stated``, only those with a stated organisation for staff to review; ``kind``,
    ``status`` and ``publication`` (an active subscription) filter too. ``offset`` and
    ``limit`` give one page."""
    where = ContactFilter(organisation, role, search, stated, kind, status, publication)
    query = _rows_query(where)
    if offset:
        query = query.offset(offset)
    if limit:
        query = query.limit(limit)
    yield from _rows(session, query, chunk=chunk)


def _rows(
    session: Session, query: sa.Select[Contact, Organisation], *, chunk: int
) -> Iterator[ContactRow]:
    contacts = session.execute(query.execution_options(yield_per=chunk))
    for batch in contacts.partitions():
        ids = [contact.id for contact, _ in batch]
        found = sorted(
            session.execute(
                sa.select(
                    col(Subscription.contact_id),
                    col(Subscription.publication),
                    col(Subscription.status),
                ).where(col(Subscription.contact_id).in_(ids))
            )
        )
        publications: dict[int, tuple[Publication, ...]] = {}
        ended: dict[int, tuple[Publication, ...]] = {}
        for contact_id, group in itertools.groupby(found, key=lambda r: r[0]):
            rows = list(group)
            publications[contact_id] = tuple(
                p for _, p, status in rows if status == SubscriptionStatus.ACTIVE
            )
            ended[contact_id] = tuple(p for _, p, status in rows if status in ENDED_STATUSES)
        for contact, org in batch:
            yield ContactRow(
                email=contact.email,
                name=contact.name,
                organisation=org.name,
                organisation_kind=org.kind,
                role=contact.role,
                status=contact.status,
                lawful_basis=contact.lawful_basis,
                consented_at=contact.consented_at.isoformat() if contact.consented_at else "",
                source=contact.consent_source or "",
                publications=publications.get(contact.id or 0, ()),
                unsubscribed=ended.get(contact.id or 0, ()),
                stated_organisation=contact.stated_organisation,
                contact_id=contact.id or 0,
            )


def contact_row(session: Session, contact_id: int) -> ContactRow | None:
    """One contact as :func:`iter_contacts` lists it, found by its id."""
    query = _rows_query(ContactFilter()).where(col(Contact.id) == contact_id)
    found = list(_rows(session, query, chunk=1))  # read to the end: the cursor closes
    return found[0] if found else None


def count_contacts(
    session: Session,
    *,
    organisation: str | None = None,
    role: Role | None = None,
    search: str | None = None,
    stated: bool = False,
    kind: OrganisationKind | None = None,
    status: ContactStatus | None = None,
    publication: Publication | None = None,
) -> int:
    """How many contacts match the same filters as :func:`iter_contacts`."""
    where = ContactFilter(organisation, role, search, stated, kind, status, publication)
    query = _rows_query(where).order_by(None)
    return int(
        session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    )


def listing(
    session: Session, where: ContactFilter, *, offset: int = 0, limit: int | None = None
) -> tuple[list[ContactRow], int]:
    """One page of the contacts ``where`` selects (``limit`` from ``offset``, in id order)
    and how many it selects in all: what the console's pages and ``contacts list`` show."""
    query = _rows_query(where)
    total = int(
        session.execute(
            sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
        ).scalar_one()
    )
    if offset:
        query = query.offset(offset)
    if limit:
        query = query.limit(limit)
    return list(_rows(session, query, chunk=max(1, min(limit or 1000, 1000)))), total


def export_csv(session: Session, out: TextIO) -> int:
    """Write every contact (not erased) as CSV that ``mailer contacts import`` reads back.

    Cells that a spreadsheet would run as a formula are written with a leading ``'``.
    Returns the number of contacts written.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    written = 0
    for row in iter_contacts(session):
        cells = [
            row.email,
            row.name,
            row.organisation,
            row.role.value,
            row.status.value,
            row.lawful_basis.value,
            row.consented_at,
            row.source,
            ";".join(p.value for p in row.publications) or "none",
            ";".join(p.value for p in row.unsubscribed),
        ]
        writer.writerow([to_spreadsheet_cell(cell) for cell in cells])
        written += 1
    return written
