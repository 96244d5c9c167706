"""What readers change themselves: newsletter sign-up (double opt-in), unsubscribe, preferences.

A sign-up is kept apart until it is confirmed by the emailed link; only then does it
become a contact with consent on record (time, source, wording version, confirmation
time). Nothing a page says reveals whether an address is already subscribed.

Errors::

    SignupError     a field of the sign-up form is invalid (the message names it)
    RateLimited     too many sign-ups from one network address
    LinkError       a confirmation, unsubscribe or preferences link is not valid
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from sqlmodel import Session, col, select

from mailer import audiences, audit, clock, contacts, reports
from mailer.contacts import (
    ContactFieldError,
    clean_name,
    email_hash,
    normalise_email,
    suppression,
)
from mailer.db import rowcount
from mailer.markup import single_line
from mailer.models import (
    Contact,
    ContactStatus,
    Issue,
    LawfulBasis,
    Organisation,
    Publication,
    Role,
    Signup,
    Subscription,
    SubscriptionStatus,
)
from mailer.organisations import lep_for_address, public_group
from mailer.settings import SignupSettings
from mailer.tokens import BadToken, TokenSigner

SOURCE = "web sign-up"
READER = "reader (own link)"
VERIFIED = "reader (confirmed address at the LEP's domain)"


class SignupError(ValueError):
    """A sign-up field is invalid."""


class RateLimited(Exception):
    """Too many sign-ups from one network address."""


class LinkError(Exception):
    """A link is forged, altered, expired or names nobody."""


def _ip_hash(ip: str) -> str:
    return hashlib.sha256(f"mailer-ip:{ip}".encode()).hexdigest()


def _confirm_signer(key: bytes) -> TimestampSigner:
    return TimestampSigner(key, salt="mailer.signup.v1", digest_method=hashlib.sha256)


def confirmation_token(key: bytes, signup_id: int) -> str:
    """The signed, expiring token in a confirmation link."""
    return _confirm_signer(key).sign(str(signup_id).encode()).decode("ascii")


@dataclass(frozen=True)
class SignupRequest:
    """A sign-up accepted for confirmation: send the email when ``signup`` is set."""

    signup: Signup | None


def request_signup(
    session: Session,
    *,
    name: str,
    email: str,
    organisation: str,
    ip: str,
    settings: SignupSettings,
) -> SignupRequest:
    """Record a sign-up. Returns the sign-up to email a confirmation for, or None when no
    email should go (already subscribed, suppressed, or enough emails today): the page
    says the same in every case. Commits.

    :raises SignupError: a field is invalid.
    :raises RateLimited: this network address signed up too often in the last hour.
    """
    try:
        address = normalise_email(email)
    except ContactFieldError as exc:
        raise SignupError(f"email: {str(exc).removeprefix('invalid address ')}") from None
    try:
        clean = clean_name(name)
    except ContactFieldError as exc:
        raise SignupError(f"name: {exc}") from None
    try:
        org = single_line(organisation, "organisation", max_length=200, required=False)
    except ValueError as exc:
        raise SignupError(str(exc)) from None
    now = clock.now()
    who = _ip_hash(ip)
    recent = session.execute(
        sa.select(sa.func.count()).where(
            col(Signup.ip_hash) == who, col(Signup.created_at) > now - timedelta(hours=1)
        )
    ).scalar_one()
    if recent >= settings.per_ip_per_hour:
        raise RateLimited("too many sign-ups from your network: please try again in an hour")
    digest = email_hash(address)
    if suppression(session, digest) is not None:
        # Erased, bounced or complained: nothing about the address is kept again.
        return SignupRequest(None)
    signup = Signup(
        email=address,
        email_hash=digest,
        name=clean,
        organisation=org,
        ip_hash=who,
        wording_version=settings.wording_version,
        created_at=now,
    )
    session.add(signup)
    emails_today = session.execute(
        sa.select(sa.func.count()).where(
            col(Signup.email_hash) == digest,
            col(Signup.confirmation_sent).is_(True),
            col(Signup.created_at) > now - timedelta(days=1),
        )
    ).scalar_one()
    already = session.execute(
        sa.select(col(Subscription.id))
        .join(Contact, col(Contact.id) == col(Subscription.contact_id))
        .where(
            col(Contact.email) == address,
            col(Contact.status) == ContactStatus.ACTIVE,
            col(Subscription.publication) == Publication.NEWSLETTER,
            col(Subscription.status) == SubscriptionStatus.ACTIVE,
        )
    ).first()
    send = emails_today < settings.per_address_per_day and already is None
    signup.confirmation_sent = send
    session.commit()
    return SignupRequest(signup if send else None)


def confirm(session: Session, key: bytes, token: str, settings: SignupSettings) -> Contact:
    """Turn a confirmed sign-up into a subscribed contact with its consent record. Commits.

    The organisation a reader typed is never membership: a new contact joins the public
    sign-up group with it as its stated organisation, unless the confirmed address is at
    one of a LEP's own mail domains (the confirmation proves the mailbox), which makes it
    that LEP's contact; the domain decides only for a new contact (one staff placed, or
    moved, stays where staff put it). A link used once changes nothing again: replaying
    it neither revives a subscription ended since nor undoes what staff did.

    :raises LinkError: the link is forged, altered, expired, or its sign-up is gone.
    """
    try:
        raw = _confirm_signer(key).unsign(
            token.encode("ascii"), max_age=int(settings.confirm_hours * 3600)
        )
        signup_id = int(raw)
    except SignatureExpired:
        raise LinkError("this confirmation link has expired: please sign up again") from None
    except (BadSignature, UnicodeError, ValueError):
        raise LinkError("this confirmation link is not valid") from None
    signup = session.get(Signup, signup_id)
    if signup is None:
        raise LinkError("this confirmation link is no longer valid: please sign up again")
    now = clock.now()
    contact = session.exec(select(Contact).where(col(Contact.email) == signup.email)).first()
    if suppression(session, signup.email_hash) is not None:
        raise LinkError("this address cannot be subscribed")
    if signup.confirmed_at is not None:
        if contact is None:
            raise LinkError("this confirmation link is no longer valid: please sign up again")
        session.commit()
        return contact  # confirmed before: harmless to repeat, and changes nothing
    if contact is None:
        group = public_group(session)
        assert group.id is not None
        contact = Contact(
            email=signup.email,
            email_hash=signup.email_hash,
            name=signup.name,
            organisation_id=group.id,
            stated_organisation=signup.organisation or None,
            role=Role.STAKEHOLDER,
            lawful_basis=LawfulBasis.CONSENT,
        )
        session.add(contact)
        session.flush()
        lep = lep_for_address(session, signup.email)
        if lep is not None:
            contacts.move(session, contact, lep, actor=VERIFIED, subscribe=False)
    if contact.status is ContactStatus.DISABLED:
        # Clicking the link proves the mailbox works again.
        contact.status = ContactStatus.ACTIVE
    contact.consent_source = SOURCE
    contact.consented_at = signup.created_at
    contact.consent_wording_version = signup.wording_version
    contact.consent_confirmed_at = now
    contact.updated_at = now
    session.flush()
    assert contact.id is not None
    if contacts.set_subscription(
        session, contact.id, Publication.NEWSLETTER, SubscriptionStatus.ACTIVE
    ):
        audit.record(
            session, READER, "subscribe", f"contact {contact.id}", "newsletter, sign-up confirmed"
        )
    signup.confirmed_at = now
    session.commit()
    return contact


@dataclass(frozen=True)
class Reader:
    """Who a reader's link names, and what they may change."""

    contact: Contact
    issue: Issue | None
    offered: frozenset[Publication]
    subscribed: frozenset[Publication]


def reader(session: Session, signer: TokenSigner, token: str) -> Reader:
    """The contact (and issue) a reader's link names.

    :raises LinkError: the token is forged or altered, or names nobody (a test message).
    """
    try:
        ref = signer.read_recipient(token)
    except BadToken as exc:
        raise LinkError(str(exc)) from None
    contact = session.get(Contact, ref.contact_id)
    if contact is None or contact.status is ContactStatus.ERASED:
        raise LinkError(
            "this link does not belong to a reader (it came from a test or preview message)"
        )
    organisation = session.get(Organisation, contact.organisation_id)
    active = frozenset(
        Publication(p)
        for p in session.exec(
            select(Subscription.publication).where(
                col(Subscription.contact_id) == contact.id,
                col(Subscription.status) == SubscriptionStatus.ACTIVE,
            )
        ).all()
    )
    return Reader(
        contact=contact,
        issue=session.get(Issue, ref.issue_id),
        offered=audiences.receivable(organisation.kind) if organisation else frozenset(),
        subscribed=active,
    )


def unsubscribe(
    session: Session, signer: TokenSigner, token: str, *, channel: str = "link"
) -> tuple[Reader, Publication]:
    """Unsubscribe the reader from the publication of the issue their link came in (the
    one-click link, or the token in a mail to the List-Unsubscribe address: ``channel``).

    Harmless to repeat. Commits.

    :raises LinkError: the token is not valid.
    """
    who = reader(session, signer, token)
    publication = who.issue.publication if who.issue else Publication.NEWSLETTER
    assert who.contact.id is not None
    if contacts.set_subscription(
        session, who.contact.id, publication, SubscriptionStatus.UNSUBSCRIBED
    ):
        detail = publication if channel == "link" else f"{publication} (by {channel})"
        audit.record(session, READER, "unsubscribe", f"contact {who.contact.id}", detail)
        if who.issue is not None and who.issue.id is not None:
            reports.count_unsubscribe(session, who.issue.id, who.contact.organisation_id)
    session.commit()
    return who, publication


def update_preferences(
    session: Session,
    signer: TokenSigner,
    token: str,
    *,
    wanted: set[Publication],
    name: str,
) -> Reader:
    """Set which publications a reader gets, among those offered to them (the firewall:
    the bulletin only for LEP contacts), and their name. Commits.

    :raises LinkError: the token is not valid.
    :raises SignupError: the name is invalid.
    """
    who = reader(session, signer, token)
    try:
        who.contact.name = clean_name(name)
    except ContactFieldError as exc:
        raise SignupError(f"name: {exc}") from None
    now = clock.now()
    assert who.contact.id is not None
    changed: list[str] = []
    for publication in sorted(who.offered):
        active = publication in wanted
        status = SubscriptionStatus.ACTIVE if active else SubscriptionStatus.UNSUBSCRIBED
        if contacts.set_subscription(session, who.contact.id, publication, status):
            changed.append(f"{publication} {'on' if active else 'off'}")
            issue = who.issue
            if not active and issue is not None and issue.id and issue.publication == publication:
                reports.count_unsubscribe(session, issue.id, who.contact.organisation_id)
    if changed:
        audit.record(
            session, READER, "preferences", f"contact {who.contact.id}", ", ".join(changed)
        )
    who.contact.updated_at = now
    session.commit()
    return reader(session, signer, token)


def purge_unconfirmed(session: Session, settings: SignupSettings) -> int:
    """Delete sign-ups never confirmed once their link has expired (they hold personal
    data without consent). Commits."""
    cutoff = clock.now() - timedelta(hours=settings.confirm_hours) - timedelta(days=1)
    result = session.execute(
        sa.delete(Signup).where(col(Signup.confirmed_at).is_(None), col(Signup.created_at) < cutoff)
    )
    session.commit()
    return rowcount(result)
