"""What was read, without tracking anyone: counted redirects for an issue's content links.

At rendering (once per issue) every content link of the HTML part (an item's headline and
the links in its text, the sponsor's, an event's) becomes ``{base_url}/r/ORG/N``: ``N``
numbers the link in the issue, ``ORG`` is a slot filled per copy, like the reader's
name, with a signed token naming the issue and the *organisation* the copy was sent to,
made once per organisation (:meth:`mailer.tokens.TokenSigner.organisation`). No contact id,
address or anything else about the person is in it, and nothing is stored in the reader's
browser. Reader links (unsubscribe, preferences, view online, privacy, contribute, mailto)
stay direct, and so does every link of the plain-text part. A link whose visible text is
itself an address (``www.gov.uk``) stays direct too, so what a reader sees is where it goes.

The targets are recorded when the issue is approved (:func:`record`): a redirect goes only
to a link of the issue its token names (no open redirect), looked up in one query, and
keeps working after the retention period has reduced the deliveries to counts.

A follow adds one to the clicks of (issue, link, organisation, day); the view-online page
counts as link 0. "Unique" cannot mean people without tracking them: it is the number of
(organisation, day) pairs with at least one click, so an organisation's readers clicking
a link ten times on one day count as one.

Errors::

    LinkNotFound   the redirect's token is forged or altered, or names no link of its issue
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from mailer import clock
from mailer.models import (
    ClickCount,
    Contact,
    Delivery,
    Issue,
    IssueLink,
    IssueStatus,
    ReachCount,
    ReachMeasure,
)
from mailer.tokens import BadToken, TokenSigner

VIEW_ONLINE = 0  # the link number that counts view-online opens
NO_ORGANISATION = 0  # copies sent to no one: the public archive
# The organisation a copy went to: its delivery's own (kept when the outbox was filled),
# else, for a delivery older than that, its contact's.
SENT_TO = sa.func.coalesce(col(Delivery.organisation_id), col(Contact.organisation_id))
_ANCHOR = re.compile(r'(<a\b[^>]*?\bhref=")([^"]*)("[^>]*>)(.*?)(</a>)', re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_LOOKS_LIKE_ADDRESS = re.compile(
    r"^\s*(?:https?://|www\.)\S*\s*$|^\s*[\w-]+(?:\.[\w-]+)+(?:/\S*)?\s*$", re.I
)


class LinkNotFound(LookupError):
    """No link of ours at this address: the token is forged or altered, or the issue has
    no such link."""


@dataclass(frozen=True)
class TrackedLink:
    """One content link of an issue: where it goes and the text it shows."""

    url: str
    label: str


def _label(inner: str) -> str:
    text = " ".join(html.unescape(_TAG.sub(" ", inner)).split())
    if not text:  # an image link: its alt text
        found = re.search(r'\balt="([^"]*)"', inner)
        text = html.unescape(found.group(1)) if found else ""
    return text[:300]


def _images_only(inner: str) -> bool:
    return "<img" in inner.lower() and not _TAG.sub("", inner).strip()


def track(
    page: str, *, root: str, slot: str, keep: Sequence[str]
) -> tuple[str, tuple[TrackedLink, ...]]:
    """Rewrite the content links of an issue's HTML into redirects; return the HTML and the
    links in order (``N`` of ``/r/ORG/N`` is the position, from 1).

    ``keep`` are the reader's own links (they stay direct); so do mailto links and links
    whose visible text is an address.
    """
    kept = set(keep)
    links: list[TrackedLink] = []
    positions: dict[str, int] = {}
    prior: dict[str, str] = {}  # the first anchor's inner HTML of each link

    def rewrite(match: re.Match[str]) -> str:
        opening, href, rest, inner, closing = match.groups()
        url = html.unescape(href)
        if (
            url in kept
            or not url.lower().startswith(("https://", "http://"))
            or len(url) > 1000
            or _LOOKS_LIKE_ADDRESS.match(_TAG.sub("", html.unescape(inner)))
        ):
            return match.group(0)
        if url not in positions:
            links.append(TrackedLink(url, _label(inner)))
            positions[url] = len(links)
            prior[url] = inner
        elif _images_only(prior[url]) and _TAG.sub("", inner).strip():
            links[positions[url] - 1] = TrackedLink(url, _label(inner))  # text over an alt
            prior[url] = inner
        target = f"{root}/r/{slot}/{positions[url]}"
        return f"{opening}{html.escape(target, quote=True)}{rest}{inner}{closing}"

    return _ANCHOR.sub(rewrite, page), tuple(links)


def direct(page: str, slot: str, links: Sequence[TrackedLink]) -> str:
    """The HTML with each redirect back to its direct link (previews, test sends: nothing
    to count)."""
    pattern = re.compile(rf"https?://[^\"'\s<>]*?/r/{re.escape(slot)}/(\d+)")

    def back(match: re.Match[str]) -> str:
        position = int(match.group(1))
        if 1 <= position <= len(links):
            return html.escape(links[position - 1].url, quote=True)
        return match.group(0)

    return pattern.sub(back, page)


def record(session: Session, issue_id: int, links: Sequence[TrackedLink]) -> None:
    """Keep an approved issue's links (its redirects' only targets). The caller commits."""
    session.execute(sa.delete(IssueLink).where(col(IssueLink.issue_id) == issue_id))
    for position, link in enumerate(links, start=1):
        session.add(IssueLink(issue_id=issue_id, position=position, url=link.url, label=link.label))


def forget(session: Session, issue_id: int) -> None:
    """Drop an issue's links (it is a draft again). The caller commits."""
    session.execute(sa.delete(IssueLink).where(col(IssueLink.issue_id) == issue_id))


def links_of(session: Session, issue_id: int) -> tuple[TrackedLink, ...]:
    """The links recorded at approval, in order."""
    rows = session.exec(
        select(IssueLink)
        .where(col(IssueLink.issue_id) == issue_id)
        .order_by(col(IssueLink.position))
    ).all()
    return tuple(TrackedLink(row.url, row.label) for row in rows)


# The reach counts that stand for deliveries (one each, whatever became of them), kept
# after retention or erasure: who an issue went to.
IN_OUTBOX = (
    ReachMeasure.QUEUED,
    ReachMeasure.CLAIMED,
    ReachMeasure.SENT,
    ReachMeasure.DEFERRED,
    ReachMeasure.FAILED,
    ReachMeasure.SUPPRESSED,
)


def _group_sizes(session: Session, issue_id: int) -> Counter[int]:
    """How many recipients an issue has in each organisation: its deliveries, and those
    already reduced to counts (retention, erasure)."""
    sizes: Counter[int] = Counter()
    for organisation_id, n in session.execute(
        sa.select(SENT_TO, sa.func.count())
        .select_from(Delivery)
        .join(Contact, col(Contact.id) == col(Delivery.contact_id))
        .where(col(Delivery.issue_id) == issue_id)
        .group_by(SENT_TO)
    ):
        sizes[int(organisation_id)] += int(n)
    for organisation_id, n in session.execute(
        sa.select(col(ReachCount.organisation_id), sa.func.sum(col(ReachCount.count)))
        .where(
            col(ReachCount.issue_id) == issue_id,
            col(ReachCount.measure).in_(IN_OUTBOX),
        )
        .group_by(col(ReachCount.organisation_id))
    ):
        sizes[int(organisation_id)] += int(n or 0)
    return sizes


def counted_as(session: Session, issue_id: int, organisation_id: int, min_group: int) -> int:
    """The organisation a reader's clicks and views count for: their own, or no one's
    (:data:`NO_ORGANISATION`, shown as "other") where the issue had fewer than
    ``min_group`` recipients there, so no stored count can point at one person."""
    if _group_sizes(session, issue_id).get(organisation_id, 0) >= min_group:
        return organisation_id
    return NO_ORGANISATION


def organisation_tokens(
    session: Session, issue_id: int, signer: TokenSigner, min_group: int
) -> dict[int, str]:
    """For a send: each recipient's redirect token, by contact id, made once per
    organisation; an organisation with fewer than ``min_group`` recipients of the issue
    gets no one's token (:func:`counted_as`). Two queries for the whole outbox."""
    rows = session.execute(
        sa.select(col(Delivery.contact_id), SENT_TO)
        .join(Contact, col(Contact.id) == col(Delivery.contact_id))
        .where(col(Delivery.issue_id) == issue_id)
    ).all()
    sizes = _group_sizes(session, issue_id)
    made: dict[int, str] = {}
    tokens: dict[int, str] = {}
    for contact_id, organisation_id in rows:
        shown = organisation_id if sizes[organisation_id] >= min_group else NO_ORGANISATION
        if shown not in made:
            made[shown] = signer.organisation(issue_id, shown)
        tokens[contact_id] = made[shown]
    return tokens


def view(
    session: Session,
    issue_id: int,
    contact_id: int,
    organisation_id: int,
    *,
    zone: ZoneInfo,
    min_group: int,
) -> int:
    """Count a view-online open (link 0) for the organisation the reader's copy went to
    (``organisation_id``, theirs now, if the issue has no delivery to them), folded as
    :func:`counted_as` folds it; the page's own links then count for that. Commits."""
    sent_to = session.execute(
        sa.select(SENT_TO)
        .select_from(Delivery)
        .join(Contact, col(Contact.id) == col(Delivery.contact_id))
        .where(col(Delivery.issue_id) == issue_id, col(Delivery.contact_id) == contact_id)
    ).scalar_one_or_none()
    shown = counted_as(
        session, issue_id, int(sent_to) if sent_to is not None else organisation_id, min_group
    )
    count(session, issue_id, VIEW_ONLINE, shown, today(zone))
    return shown


def today(zone: ZoneInfo) -> date:
    """The day a click is counted on: the calendar's."""
    return clock.now().astimezone(zone).date()


def count(session: Session, issue_id: int, link: int, organisation_id: int, day: date) -> None:
    """Add one click (or, for link 0, one view-online open) to the day's count for the
    organisation, in one statement (parallel clicks all count). Commits."""
    table = ClickCount.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(table)
        .values(
            issue_id=issue_id,
            link=link,
            organisation_id=organisation_id,
            day=day,
            clicks=1,
        )
        .on_conflict_do_update(
            index_elements=["issue_id", "link", "organisation_id", "day"],
            set_={"clicks": table.c.clicks + 1},
        )
    )
    session.commit()


def follow(
    session: Session,
    signer: TokenSigner,
    token: str,
    position: int,
    *,
    zone: ZoneInfo,
    counting: bool = True,
) -> str:
    """Where a redirect goes: the link ``position`` of the issue the token names, counted
    for the token's organisation unless ``counting`` is off. Commits.

    :raises LinkNotFound: the token is forged or altered, or the issue has no such link.
    """
    try:
        ref = signer.read_organisation(token)
    except BadToken as exc:
        raise LinkNotFound(str(exc)) from None
    if position < 1:
        raise LinkNotFound("this issue has no such link")
    url = session.execute(
        sa.select(col(IssueLink.url))
        .join(Issue, col(Issue.id) == col(IssueLink.issue_id))
        .where(
            col(IssueLink.issue_id) == ref.issue_id,
            col(IssueLink.position) == position,
            col(Issue.status).in_([IssueStatus.SENDING, IssueStatus.SENT]),  # gone out
        )
    ).scalar_one_or_none()
    if url is None:
        raise LinkNotFound("this issue has no such link")
    if counting:
        count(session, ref.issue_id, position, ref.organisation_id, today(zone))
    return str(url)


def clicks_of(session: Session, issue_id: int) -> Mapping[tuple[int, int], tuple[int, int]]:
    """Per (link, organisation): (clicks, unique: days with a click)."""
    rows = session.execute(
        sa.select(
            col(ClickCount.link),
            col(ClickCount.organisation_id),
            sa.func.sum(col(ClickCount.clicks)),
            sa.func.count(),
        )
        .where(col(ClickCount.issue_id) == issue_id)
        .group_by(col(ClickCount.link), col(ClickCount.organisation_id))
    ).all()
    return {(link, org): (int(n), int(days)) for link, org, n, days in rows}
