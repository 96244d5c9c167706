"""Reports staff look at: reach per organisation and kind, what was read, the year, the board.

Reach (per issue, per organisation, per kind of organisation and in total) is derived from
the deliveries while they are held, and from :class:`~mailer.models.ReachCount` rows once
the retention period or an erasure has reduced them (:func:`reduce`, called by
:mod:`mailer.privacy` before it deletes them): the figures stay the same. Unsubscribes are
counted as they happen, against the issue whose link (or mailto) the reader used
(:func:`count_unsubscribe`). Every figure is a count: no person is named.

What was read comes from :mod:`mailer.clicks`: clicks per link and per organisation, and
view-online opens. An organisation's figures are shown on their own only where it had at
least ``[reports] min_group`` recipients in the issue; smaller ones (and the public
archive) are added to "other", so a figure can never point at one or two readers.

Errors::

    ReportError   a period or choice that cannot be reported (the message names the field)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from mailer import clicks
from mailer.models import (
    BounceEvent,
    BounceKind,
    Contact,
    Delivery,
    DeliveryStatus,
    Issue,
    Organisation,
    OrganisationKind,
    ReachCount,
    ReachMeasure,
)

OTHER = "other"
OTHER_LABEL = "Other (smaller organisations and the archive)"

# The columns of a reach row, in the order reports show them, with their meaning.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("recipients", "copies in the outbox for this issue"),
    ("delivered", "accepted by the relay and not bounced later"),
    ("deferred", "waiting for a retry (a 4xx reply or no reply)"),
    ("failed", "refused at sending (a 5xx reply, or by us: the firewall, an error)"),
    ("suppressed", "not sent: unsubscribed, suppressed or erased since the snapshot"),
    ("in_doubt", "handed over without a reply recorded: sent again, may arrive twice"),
    ("bounced", "a permanent bounce: a 5xx reply or a later DSN"),
    ("unsubscribed", "unsubscribed through this issue's link or mailto"),
    ("complained", "marked it as spam (a complaint report)"),
)


class ReportError(ValueError):
    """A report that cannot be made as asked (the message names the field)."""


@dataclass
class Reach:
    """One row of a reach table: an organisation, a kind, or the total."""

    key: str
    label: str
    kind: str = ""
    recipients: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    suppressed: int = 0
    queued: int = 0
    in_doubt: int = 0
    bounced: int = 0
    bounced_later: int = 0
    unsubscribed: int = 0
    complained: int = 0

    @property
    def delivered(self) -> int:
        return self.sent - self.bounced_later

    @property
    def reached(self) -> bool:
        return self.delivered > 0

    def add(self, measure: ReachMeasure, number: int) -> None:
        if measure is ReachMeasure.CLAIMED:
            self.queued += number  # claimed: in a sender's hands, not yet answered
        else:
            setattr(self, measure.value, getattr(self, measure.value) + number)
        if measure in _IN_OUTBOX:
            self.recipients += number

    def merge(self, other: Reach) -> None:
        for name in (
            "recipients",
            "sent",
            "deferred",
            "failed",
            "suppressed",
            "queued",
            "in_doubt",
            "bounced",
            "bounced_later",
            "unsubscribed",
            "complained",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, object]:
        values: dict[str, object] = {"key": self.key, "name": self.label}
        if self.kind:
            values["kind"] = self.kind
        values.update({name: getattr(self, name) for name, _ in COLUMNS})
        values["queued"] = self.queued
        values["reached"] = self.reached
        return values


_IN_OUTBOX = frozenset(
    {
        ReachMeasure.QUEUED,
        ReachMeasure.CLAIMED,
        ReachMeasure.SENT,
        ReachMeasure.DEFERRED,
        ReachMeasure.FAILED,
        ReachMeasure.SUPPRESSED,
    }
)


def _add(session: Session, counts: Counter[tuple[int, int, ReachMeasure]]) -> None:
    """Add to the reach counts, one statement per (issue, organisation, measure)."""
    if not counts:
        return
    table = ReachCount.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for (issue_id, organisation_id, measure), number in sorted(counts.items()):
        session.execute(
            insert(table)
            .values(
                issue_id=issue_id, organisation_id=organisation_id, measure=measure, count=number
            )
            .on_conflict_do_update(
                index_elements=["issue_id", "organisation_id", "measure"],
                set_={"count": table.c.count + number},
            )
        )


def count_unsubscribe(session: Session, issue_id: int, organisation_id: int) -> None:
    """One reader of the organisation unsubscribed through this issue. The caller commits."""
    _add(session, Counter({(issue_id, organisation_id, ReachMeasure.UNSUBSCRIBED): 1}))


def _measured(
    session: Session, where: sa.ColumnElement[bool]
) -> Counter[tuple[int, int, ReachMeasure]]:
    """Reach measures of the deliveries ``where`` selects, by (issue, organisation)."""
    found: Counter[tuple[int, int, ReachMeasure]] = Counter()
    base = (
        sa.select(col(Delivery.issue_id), col(Contact.organisation_id))
        .join(Contact, col(Contact.id) == col(Delivery.contact_id))
        .where(where)
    )
    for issue_id, organisation_id, status, in_doubt, n in session.execute(
        base.add_columns(col(Delivery.status), col(Delivery.in_doubt), sa.func.count()).group_by(
            col(Delivery.issue_id),
            col(Contact.organisation_id),
            col(Delivery.status),
            col(Delivery.in_doubt),
        )
    ):
        found[(issue_id, organisation_id, ReachMeasure(DeliveryStatus(status).value))] += int(n)
        if in_doubt:
            found[(issue_id, organisation_id, ReachMeasure.IN_DOUBT)] += int(n)
    bounced = (
        base.add_columns(
            col(BounceEvent.kind),
            col(Delivery.status),
            sa.func.count(sa.distinct(col(Delivery.id))),
        )
        .join(BounceEvent, col(BounceEvent.delivery_id) == col(Delivery.id))
        .where(col(BounceEvent.kind).in_([BounceKind.PERMANENT, BounceKind.COMPLAINT]))
        .group_by(
            col(Delivery.issue_id),
            col(Contact.organisation_id),
            col(BounceEvent.kind),
            col(Delivery.status),
        )
    )
    for issue_id, organisation_id, kind, status, n in session.execute(bounced):
        was_sent = DeliveryStatus(status) is DeliveryStatus.SENT
        if BounceKind(kind) is BounceKind.COMPLAINT:
            found[(issue_id, organisation_id, ReachMeasure.COMPLAINED)] += int(n)
            continue
        found[(issue_id, organisation_id, ReachMeasure.BOUNCED)] += int(n)
        if was_sent:
            found[(issue_id, organisation_id, ReachMeasure.BOUNCED_LATER)] += int(n)
    return found


def reduce(session: Session, delivery_ids: Sequence[int]) -> None:
    """Keep what the reach reports need of these deliveries as counts per issue and
    organisation, before they are deleted (retention, erasure). The caller commits."""
    if delivery_ids:
        _add(session, _measured(session, col(Delivery.id).in_(list(delivery_ids))))


def _by_organisation(session: Session, issue_id: int) -> dict[int, Reach]:
    measures = _measured(session, col(Delivery.issue_id) == issue_id)
    for row in session.exec(select(ReachCount).where(col(ReachCount.issue_id) == issue_id)):
        measures[(issue_id, row.organisation_id, row.measure)] += row.count
    rows: dict[int, Reach] = {}
    for (_, organisation_id, measure), number in measures.items():
        rows.setdefault(organisation_id, Reach(str(organisation_id), "")).add(measure, number)
    return rows


@dataclass
class IssueReach:
    """An issue's reach: per organisation (every LEP, and the other organisations it went
    to), per kind of organisation, and in total; LEPs nobody was reached at."""

    issue: Issue
    organisations: list[Reach]
    kinds: list[Reach]
    total: Reach
    unreached: list[str] = field(default_factory=list)

    def recipients_of(self, organisation_id: int) -> int:
        for row in self.organisations:
            if row.key == str(organisation_id):
                return row.recipients
        return 0


def issue_reach(session: Session, issue: Issue) -> IssueReach:
    """Reach of one issue (see :class:`IssueReach`)."""
    assert issue.id is not None
    counted = _by_organisation(session, issue.id)
    organisations = {
        o.id: o
        for o in session.exec(select(Organisation).order_by(col(Organisation.name)))
        if o.id is not None
    }
    rows: list[Reach] = []
    for organisation_id, organisation in organisations.items():
        row = counted.get(organisation_id)
        if row is None and organisation.kind is not OrganisationKind.LEP:
            continue  # an outside organisation it did not go to
        row = row or Reach(str(organisation_id), "")
        row.label = organisation.short_name or organisation.name
        row.kind = organisation.kind.value
        rows.append(row)
    for organisation_id, row in counted.items():
        if organisation_id not in organisations:  # an organisation deleted since
            row.label, row.kind = f"organisation {organisation_id}", OrganisationKind.OTHER.value
            rows.append(row)
    rows.sort(key=lambda r: (r.kind != OrganisationKind.LEP.value, r.kind, r.label.lower()))
    kinds: dict[str, Reach] = {}
    total = Reach("total", "Total")
    for row in rows:
        kinds.setdefault(row.kind, Reach(row.kind, kind_label(row.kind), kind=row.kind)).merge(row)
        total.merge(row)
    unreached = [r.label for r in rows if r.kind == OrganisationKind.LEP.value and not r.reached]
    return IssueReach(
        issue=issue,
        organisations=rows,
        kinds=[kinds[k.value] for k in OrganisationKind if k.value in kinds],
        total=total,
        unreached=unreached,
    )


def kind_label(kind: str) -> str:
    """'business_representative' -> 'Business representative'."""
    if kind == OrganisationKind.LEP.value:
        return "LEPs"
    return kind.replace("_", " ").capitalize()


# -- what was read -------------------------------------------------------------------


@dataclass
class LinkFigure:
    position: int
    url: str
    label: str
    clicks: int = 0
    unique: int = 0  # (organisation, day) pairs with a click


@dataclass
class GroupFigure:
    key: str
    label: str
    recipients: int = 0
    clicks: int = 0
    unique: int = 0
    views: int = 0
    unique_views: int = 0


@dataclass
class IssueReads:
    """What was read of an issue: per link, per organisation (folded under min_group)."""

    links: list[LinkFigure]
    organisations: list[GroupFigure]
    kinds: list[GroupFigure]
    clicks: int
    unique: int
    views: int
    unique_views: int
    min_group: int


def _fold(
    groups: Iterable[tuple[str, str, int]],
    figures: dict[str, tuple[int, int, int, int]],
    min_group: int,
) -> list[GroupFigure]:
    shown: list[GroupFigure] = []
    other = GroupFigure(OTHER, OTHER_LABEL)
    seen: set[str] = set()
    for key, label, recipients in groups:
        seen.add(key)
        clicks_, unique, views, unique_views = figures.get(key, (0, 0, 0, 0))
        target = GroupFigure(key, label, recipients) if recipients >= min_group else other
        if target is other:
            other.recipients += recipients
        target.clicks += clicks_
        target.unique += unique
        target.views += views
        target.unique_views += unique_views
        if target is not other:
            shown.append(target)
    for key, (clicks_, unique, views, unique_views) in figures.items():
        if key not in seen:  # the archive, or copies to no known organisation
            other.clicks += clicks_
            other.unique += unique
            other.views += views
            other.unique_views += unique_views
    if other.recipients or other.clicks or other.views:
        shown.append(other)
    return shown


def issue_reads(session: Session, reach: IssueReach, min_group: int) -> IssueReads:
    """Clicks and view-online opens of an issue, per link and per organisation and kind;
    organisations (and kinds) with fewer than ``min_group`` recipients folded into other."""
    assert reach.issue.id is not None
    counted = clicks.clicks_of(session, reach.issue.id)
    links = [
        LinkFigure(position, link.url, link.label)
        for position, link in enumerate(clicks.links_of(session, reach.issue.id), start=1)
    ]
    by_position = {link.position: link for link in links}
    per_org: dict[str, list[int]] = {}
    for (position, organisation_id), (n, unique) in counted.items():
        figures = per_org.setdefault(str(organisation_id), [0, 0, 0, 0])
        if position == clicks.VIEW_ONLINE:
            figures[2] += n
            figures[3] += unique
            continue
        figures[0] += n
        figures[1] += unique
        if position in by_position:
            by_position[position].clicks += n
            by_position[position].unique += unique
    org_figures = {k: (v[0], v[1], v[2], v[3]) for k, v in per_org.items()}
    kind_of = {row.key: row.kind for row in reach.organisations}
    kind_figures: dict[str, list[int]] = {}
    for key, values in org_figures.items():
        kind = kind_of.get(key, "")
        figures = kind_figures.setdefault(kind, [0, 0, 0, 0])
        for i, value in enumerate(values):
            figures[i] += value
    totals = [sum(v[i] for v in org_figures.values()) for i in range(4)]
    return IssueReads(
        links=sorted(links, key=lambda link: (-link.clicks, link.position)),
        organisations=_fold(
            ((r.key, r.label, r.recipients) for r in reach.organisations if r.recipients),
            org_figures,
            min_group,
        ),
        kinds=_fold(
            ((r.key, r.label, r.recipients) for r in reach.kinds if r.recipients),
            {k: (v[0], v[1], v[2], v[3]) for k, v in kind_figures.items()},
            min_group,
        ),
        clicks=totals[0],
        unique=totals[1],
        views=totals[2],
        unique_views=totals[3],
        min_group=min_group,
    )
