"""Audiences: the right contacts, streamed, and the bulletin never outside the LEPs."""

from __future__ import annotations

import types
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, SQLModel

from mailer import audiences, db
from mailer.contacts import email_hash
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
from mailer.publications import AudienceRule

EVERY_KIND = frozenset(OrganisationKind)
OPEN_RULE = AudienceRule(organisation_kinds=EVERY_KIND)


def _org(session: Session, name: str, kind: OrganisationKind) -> Organisation:
    org = Organisation(name=name, kind=kind)
    session.add(org)
    session.flush()
    return org


def _contact(
    session: Session,
    email: str,
    org: Organisation,
    *,
    role: Role = Role.OFFICER,
    status: ContactStatus = ContactStatus.ACTIVE,
    subscribed: dict[Publication, SubscriptionStatus] | None = None,
) -> Contact:
    assert org.id is not None
    contact = Contact(
        email=email,
        email_hash=email_hash(email),
        name=email.split("@")[0].title(),
        organisation_id=org.id,
        role=role,
        status=status,
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
    )
    session.add(contact)
    session.flush()
    assert contact.id is not None
    chosen = (
        {p: SubscriptionStatus.ACTIVE for p in Publication} if subscribed is None else subscribed
    )
    for publication, state in chosen.items():
        session.add(Subscription(contact_id=contact.id, publication=publication, status=state))
    session.flush()
    return contact


def _emails(session: Session, publication: Publication, rule: AudienceRule) -> list[str]:
    return [r.email for r in audiences.resolve(session, publication, rule)]


def test_the_bulletin_reaches_active_subscribed_lep_contacts_only(session: Session) -> None:
    lep = _org(session, "A LEP", OrganisationKind.LEP)
    gov = _org(session, "A Department", OrganisationKind.GOVERNMENT)
    _contact(session, "ann@lep.example", lep)
    _contact(
        session,
        "bo@lep.example",
        lep,
        subscribed={Publication.NEWSLETTER: SubscriptionStatus.ACTIVE},
    )
    _contact(
        session,
        "cy@lep.example",
        lep,
        subscribed={
            Publication.BULLETIN: SubscriptionStatus.UNSUBSCRIBED,
            Publication.NEWSLETTER: SubscriptionStatus.ACTIVE,
        },
    )
    _contact(session, "di@lep.example", lep, status=ContactStatus.DISABLED)
    _contact(session, "ed@lep.example", lep, status=ContactStatus.SUPPRESSED)
    _contact(session, "fi@lep.example", lep, status=ContactStatus.ERASED)
    _contact(
        session,
        "gus@lep.example",
        lep,
        subscribed={Publication.BULLETIN: SubscriptionStatus.BOUNCED},
    )
    _contact(
        session,
        "hal@lep.example",
        lep,
        subscribed={Publication.BULLETIN: SubscriptionStatus.PENDING},
    )
    # An external contact holding a bulletin subscription, as a corrupted list might.
    _contact(session, "gov@gov.example", gov)
    session.commit()
    assert _emails(session, Publication.BULLETIN, OPEN_RULE) == ["ann@lep.example"]
    assert _emails(session, Publication.NEWSLETTER, OPEN_RULE) == [
        "ann@lep.example",
        "bo@lep.example",
        "cy@lep.example",
        "gov@gov.example",
    ]
    assert audiences.count(session, Publication.NEWSLETTER, OPEN_RULE) == 4


def test_a_suppression_entry_removes_an_active_contact(session: Session) -> None:
    lep = _org(session, "A LEP", OrganisationKind.LEP)
    _contact(session, "ann@lep.example", lep)
    _contact(session, "bo@lep.example", lep)
    session.add(
        Suppression(email_hash=email_hash("bo@lep.example"), reason=SuppressionReason.BOUNCE)
    )
    session.commit()
    assert _emails(session, Publication.BULLETIN, OPEN_RULE) == ["ann@lep.example"]


def test_rules_narrow_by_kind_and_role(session: Session) -> None:
    lep = _org(session, "A LEP", OrganisationKind.LEP)
    media = _org(session, "A Paper", OrganisationKind.MEDIA)
    _contact(session, "chair@lep.example", lep, role=Role.CHAIR)
    _contact(session, "officer@lep.example", lep, role=Role.OFFICER)
    _contact(session, "press@paper.example", media, role=Role.STAKEHOLDER)
    session.commit()
    chairs = AudienceRule(organisation_kinds=EVERY_KIND, roles=frozenset({Role.CHAIR}))
    assert _emails(session, Publication.BULLETIN, chairs) == ["chair@lep.example"]
    no_media = AudienceRule(organisation_kinds=EVERY_KIND - {OrganisationKind.MEDIA})
    assert _emails(session, Publication.NEWSLETTER, no_media) == [
        "chair@lep.example",
        "officer@lep.example",
    ]
    breakdown = audiences.breakdown(session, Publication.NEWSLETTER, OPEN_RULE)
    assert {(b.organisation_kind, b.role, b.contacts) for b in breakdown} == {
        (OrganisationKind.LEP, Role.CHAIR, 1),
        (OrganisationKind.LEP, Role.OFFICER, 1),
        (OrganisationKind.MEDIA, Role.STAKEHOLDER, 1),
    }


def test_a_hostile_rule_cannot_widen_the_bulletin(session: Session) -> None:
    # A definition built without validation, naming only non-LEP kinds, still cannot
    # send the bulletin outside the LEPs.
    lep = _org(session, "A LEP", OrganisationKind.LEP)
    gov = _org(session, "A Department", OrganisationKind.GOVERNMENT)
    _contact(session, "ann@lep.example", lep)
    _contact(session, "gov@gov.example", gov)
    session.commit()
    hostile = AudienceRule.model_construct(
        organisation_kinds=frozenset({OrganisationKind.GOVERNMENT}), roles=frozenset()
    )
    assert _emails(session, Publication.BULLETIN, hostile) == []
    # A rule object whose kinds_for was tampered with is still stopped by the query's own clause.
    tampered = types.SimpleNamespace(
        organisation_kinds=EVERY_KIND, roles=frozenset(), kinds_for=lambda _p: EVERY_KIND
    )
    assert _emails(session, Publication.BULLETIN, tampered) == ["ann@lep.example"]  # type: ignore[arg-type]


def test_one_predicate_lets_only_lep_contacts_receive_the_bulletin() -> None:
    for kind in OrganisationKind:
        lep = kind is OrganisationKind.LEP
        assert audiences.may_receive(kind, Publication.BULLETIN) is lep
        assert audiences.may_receive(kind, Publication.NEWSLETTER)
        expected = set(Publication) if lep else {Publication.NEWSLETTER}
        assert audiences.receivable(kind) == expected
    audiences.check_recipient(Publication.BULLETIN, OrganisationKind.LEP)
    audiences.check_recipient(Publication.NEWSLETTER, OrganisationKind.GOVERNMENT)
    with pytest.raises(audiences.FirewallError, match="bulletin is internal"):
        audiences.check_recipient(Publication.BULLETIN, OrganisationKind.SPONSOR)


def test_resolution_is_streamed_as_plain_records(session: Session) -> None:
    lep = _org(session, "A LEP", OrganisationKind.LEP)
    for i in range(30):
        _contact(session, f"c{i:02d}@lep.example", lep)
    session.commit()
    stream = audiences.resolve(session, Publication.BULLETIN, OPEN_RULE, chunk=7)
    assert isinstance(stream, Iterator)
    first = next(stream)
    assert isinstance(first, audiences.Recipient)
    assert not isinstance(first, SQLModel)
    assert len(list(stream)) == 29


# The property: whatever organisations, contacts, statuses, subscriptions and rule, the
# bulletin's audience is exactly the active, subscribed, unsuppressed LEP contacts, and the
# newsletter's is exactly the active, subscribed, unsuppressed contacts of the rule's kinds.

_orgs = st.lists(st.sampled_from(list(OrganisationKind)), min_size=1, max_size=6)
_contacts = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=5),  # which organisation
        st.sampled_from(list(ContactStatus)),
        st.dictionaries(
            st.sampled_from(list(Publication)), st.sampled_from(list(SubscriptionStatus))
        ),
        st.booleans(),  # suppressed by hash
    ),
    max_size=25,
)
_rules = st.frozensets(st.sampled_from(list(OrganisationKind)), min_size=1)


@pytest.fixture(scope="module")
def memory_engine() -> Iterator[sa.Engine]:
    engine = db.create_engine("sqlite://")
    with engine.begin() as connection:
        SQLModel.metadata.create_all(connection)
    yield engine
    engine.dispose()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(org_kinds=_orgs, people=_contacts, rule_kinds=_rules)
def test_property_the_bulletin_never_leaves_the_leps(
    memory_engine: sa.Engine,
    org_kinds: list[OrganisationKind],
    people: list[tuple[int, ContactStatus, dict[Publication, SubscriptionStatus], bool]],
    rule_kinds: frozenset[OrganisationKind],
) -> None:
    # Random organisations, contacts and a rule built without validation: each audience
    # must equal the one computed here by hand from the same facts.
    with memory_engine.connect() as connection:
        transaction = connection.begin()
        session = Session(bind=connection)
        try:
            orgs = [_org(session, f"Org {i}", kind) for i, kind in enumerate(org_kinds)]
            expected = set()
            expected_newsletter = set()
            for n, (which, status, subscribed, suppressed) in enumerate(people):
                org = orgs[which % len(orgs)]
                email = f"p{n}@org{which}.example"
                _contact(session, email, org, status=status, subscribed=subscribed)
                if suppressed:
                    session.add(
                        Suppression(email_hash=email_hash(email), reason=SuppressionReason.MANUAL)
                    )
                if (
                    org.kind is OrganisationKind.LEP
                    and OrganisationKind.LEP in rule_kinds
                    and status is ContactStatus.ACTIVE
                    and subscribed.get(Publication.BULLETIN) is SubscriptionStatus.ACTIVE
                    and not suppressed
                ):
                    expected.add(email)
                if (
                    org.kind in rule_kinds
                    and status is ContactStatus.ACTIVE
                    and subscribed.get(Publication.NEWSLETTER) is SubscriptionStatus.ACTIVE
                    and not suppressed
                ):
                    expected_newsletter.add(email)
            session.flush()
            # The rule is built without validation, as a hostile list file could make it.
            rule = AudienceRule.model_construct(organisation_kinds=rule_kinds, roles=frozenset())
            got = list(audiences.resolve(session, Publication.BULLETIN, rule))
            assert {r.email for r in got} == expected
            assert all(r.organisation_kind is OrganisationKind.LEP for r in got)
            for recipient in got:
                assert audiences.may_receive(recipient.organisation_kind, Publication.BULLETIN)
            newsletter = list(audiences.resolve(session, Publication.NEWSLETTER, rule))
            assert {r.email for r in newsletter} == expected_newsletter
            assert len(newsletter) == len(expected_newsletter)
            assert all(r.organisation_kind in rule_kinds for r in newsletter)
            assert audiences.count(session, Publication.NEWSLETTER, rule) == len(newsletter)
        finally:
            session.close()
            transaction.rollback()
