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

import csv
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TextIO
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from mailer import charts, clicks
from mailer.clicks import SENT_TO
from mailer.contacts import to_spreadsheet_cell
from mailer.models import (
    BounceEvent,
    BounceKind,
    Contact,
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Organisation,
    OrganisationKind,
    Publication,
    ReachCount,
    ReachMeasure,
    Subscription,
    SubscriptionStatus,
)
from mailer.settings import Settings

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
        if measure in clicks.IN_OUTBOX:
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
        sa.select(col(Delivery.issue_id), SENT_TO)
        .join(Contact, col(Contact.id) == col(Delivery.contact_id))
        .where(where)
    )
    for issue_id, organisation_id, status, in_doubt, n in session.execute(
        base.add_columns(col(Delivery.status), col(Delivery.in_doubt), sa.func.count()).group_by(
            col(Delivery.issue_id),
            SENT_TO,
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
            SENT_TO,
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
    # "Other" must itself be a group of at least min_group, or the figures shown beside
    # it (and the reach table's recipients) would give a small organisation's away by
    # subtraction: the smallest groups shown join it until it is.
    while 0 < other.recipients < min_group and shown:
        smallest = min(shown, key=lambda g: (g.recipients, g.key))
        shown.remove(smallest)
        other.recipients += smallest.recipients
        other.clicks += smallest.clicks
        other.unique += smallest.unique
        other.views += smallest.views
        other.unique_views += smallest.unique_views
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


# -- one table: reach and reads per organisation or kind ------------------------------

BY = ("organisation", "kind")
READ_COLUMNS = ("clicks", "unique_clicks", "views", "unique_views")


def table_rows(reach: IssueReach, reads: IssueReads, by: str) -> list[dict[str, object]]:
    """The rows of an issue's report ``by`` organisation or kind: each row's reach, and its
    clicks and view-online opens where it had at least min_group recipients (else None:
    they are in the "other" row); then "other" (if any), then the total.

    :raises ReportError: ``by`` is neither organisation nor kind.
    """
    if by not in BY:
        raise ReportError(f"--by: choose organisation or kind, not {by!r}")
    groups = reach.organisations if by == "organisation" else reach.kinds
    figures = {g.key: g for g in (reads.organisations if by == "organisation" else reads.kinds)}
    rows: list[dict[str, object]] = []
    for group in groups:
        row = group.as_dict()
        shown = figures.get(group.key)
        for name, value in zip(READ_COLUMNS, _read_values(shown), strict=True):
            row[name] = value
        rows.append(row)
    other = figures.get(OTHER)
    if other is not None:
        row = (
            {"key": OTHER, "name": OTHER_LABEL, "kind": ""}
            if by == "organisation"
            else {
                "key": OTHER,
                "name": OTHER_LABEL,
            }
        )
        row.update({name: None for name, _ in COLUMNS})
        row["recipients"] = other.recipients
        row.update({"queued": None, "reached": None})
        row.update(zip(READ_COLUMNS, _read_values(other), strict=True))
        rows.append(row)
    total = reach.total.as_dict()
    total.update(
        zip(
            READ_COLUMNS, (reads.clicks, reads.unique, reads.views, reads.unique_views), strict=True
        )
    )
    rows.append(total)
    return rows


def _read_values(figure: GroupFigure | None) -> tuple[int | None, ...]:
    if figure is None:
        return (None, None, None, None)
    return (figure.clicks, figure.unique, figure.views, figure.unique_views)


def csv_columns(by: str) -> list[str]:
    """The CSV header of :func:`table_rows`."""
    first = ["key", "name", "kind"] if by == "organisation" else ["key", "name"]
    return [*first, *(name for name, _ in COLUMNS), "queued", "reached", *READ_COLUMNS]


def write_csv(rows: Sequence[dict[str, object]], columns: Sequence[str], out: TextIO) -> None:
    """Rows as CSV (an empty cell for None; a cell a spreadsheet would run as a formula is
    written with a leading ')."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        cells = []
        for name in columns:
            value = row.get(name)
            if value is None:
                cells.append("")
            elif isinstance(value, bool):
                cells.append("yes" if value else "no")
            else:
                cells.append(to_spreadsheet_cell(str(value)))
        writer.writerow(cells)


# -- periods: the year at a glance, the board report ----------------------------------


@dataclass
class IssueFigures:
    """One sent issue's figures in a period's tables and charts."""

    issue: Issue
    label: str
    sent_on: date
    reach: Reach
    clicks: int
    unique: int
    views: int

    @property
    def unsubscribe_rate(self) -> float:
        return _rate(self.reach.unsubscribed, self.reach.delivered)

    @property
    def bounce_rate(self) -> float:
        return _rate(self.reach.bounced, self.reach.recipients)

    @property
    def complaint_rate(self) -> float:
        return _rate(self.reach.complained, self.reach.delivered)

    def as_dict(self) -> dict[str, object]:
        return {
            "issue": self.issue.id,
            "publication": self.issue.publication.value,
            "number": self.issue.number,
            "subject": self.issue.subject,
            "sent_on": self.sent_on,
            **{name: getattr(self.reach, name) for name, _ in COLUMNS},
            "unsubscribe_rate": self.unsubscribe_rate,
            "bounce_rate": self.bounce_rate,
            "complaint_rate": self.complaint_rate,
            "clicks": self.clicks,
            "unique_clicks": self.unique,
            "views": self.views,
        }


ISSUE_COLUMNS = (
    "issue",
    "publication",
    "number",
    "subject",
    "sent_on",
    *(name for name, _ in COLUMNS),
    "unsubscribe_rate",
    "bounce_rate",
    "complaint_rate",
    "clicks",
    "unique_clicks",
    "views",
)


def _rate(part: int, whole: int) -> float:
    """A percentage, to two places (0 when there is nothing to divide)."""
    return round(100 * part / whole, 2) if whole else 0.0


def _local_bounds(start: date, end: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """From the start of ``start`` to the end of ``end``, local days, as UTC bounds."""
    return (
        datetime.combine(start, time.min, zone).astimezone(UTC),
        datetime.combine(end + timedelta(days=1), time.min, zone).astimezone(UTC),
    )


def sent_issues(session: Session, start: date, end: date, zone: ZoneInfo) -> list[Issue]:
    """Issues sent (or sending) whose send began in the period, in order."""
    low, high = _local_bounds(start, end, zone)
    began = sa.func.coalesce(col(Issue.send_started_at), col(Issue.slot_at))
    return list(
        session.exec(
            select(Issue)
            .where(
                col(Issue.status).in_([IssueStatus.SENT, IssueStatus.SENDING]),
                began >= low,
                began < high,
            )
            .order_by(began, col(Issue.id))
        )
    )


def issue_figures(
    session: Session, found: Sequence[Issue], zone: ZoneInfo, min_group: int
) -> list[tuple[IssueFigures, IssueReach, IssueReads]]:
    """Each issue's figures, with its reach and reads."""
    made = []
    for issue in found:
        reach = issue_reach(session, issue)
        reads = issue_reads(session, reach, min_group)
        began = issue.send_started_at or issue.slot_at or issue.created_at
        made.append(
            (
                IssueFigures(
                    issue=issue,
                    label=f"{issue.publication.value} {issue.number}",
                    sent_on=began.astimezone(zone).date(),
                    reach=reach.total,
                    clicks=reads.clicks,
                    unique=reads.unique,
                    views=reads.views,
                ),
                reach,
                reads,
            )
        )
    return made


def period_charts(figures: Sequence[IssueFigures]) -> list[charts.Chart]:
    """Audience per publication, the rates and the clicks of the issues of a period."""
    made: list[charts.Chart] = []
    for publication in Publication:
        own = [f for f in figures if f.issue.publication is publication]
        name = publication.value
        made.append(
            charts.Chart(
                slug=f"audience-{name}",
                title=f"{name.capitalize()} audience per issue",
                description=f"Recipients of each {name} sent in the period, in order: "
                + (", ".join(f"{f.label} {f.reach.recipients}" for f in own) or "none sent")
                + ".",
                categories=tuple(f.label for f in own),
                series=(
                    charts.Series("Recipients", tuple(float(f.reach.recipients) for f in own)),
                    charts.Series("Delivered", tuple(float(f.reach.delivered) for f in own)),
                ),
                kind="line",
            )
        )
    labels = tuple(f.label for f in figures)
    made.append(
        charts.Chart(
            slug="rates",
            title="Unsubscribe, bounce and complaint rates per issue",
            description="Per issue: unsubscribes and complaints as a percentage of the copies "
            "delivered, bounces as a percentage of the copies sent out. Highest bounce rate: "
            + (max(figures, key=lambda f: f.bounce_rate).label if figures else "none")
            + ".",
            categories=labels,
            series=(
                charts.Series("Unsubscribed %", tuple(f.unsubscribe_rate for f in figures)),
                charts.Series("Bounced %", tuple(f.bounce_rate for f in figures)),
                charts.Series("Complained %", tuple(f.complaint_rate for f in figures)),
            ),
            kind="bar",
            unit="%",
        )
    )
    made.append(
        charts.Chart(
            slug="clicks",
            title="Clicks per issue",
            description="Per issue: follows of its content links, and unique clicks "
            "(organisation-days with a click; no person is counted). Most clicked: "
            + (max(figures, key=lambda f: f.clicks).label if figures else "none")
            + ".",
            categories=labels,
            series=(
                charts.Series("Clicks", tuple(float(f.clicks) for f in figures)),
                charts.Series(
                    "Unique (organisation-days)", tuple(float(f.unique) for f in figures)
                ),
            ),
            kind="bar",
        )
    )
    return made


@dataclass
class Targets:
    """A year's issues of one publication against its target or cap."""

    publication: Publication
    on_time: int
    late: int
    missed: int
    to_come: int
    target: int
    is_cap: bool

    @property
    def sent(self) -> int:
        return self.on_time + self.late


def targets(session: Session, year: int, settings: Settings) -> list[Targets]:
    """Bulletins sent on time against the target, newsletters against the cap. On time:
    its send began within ``[calendar] grace_hours`` of its slot; an issue sent without a
    slot counts as late."""
    from mailer import calendar  # here: the calendar needs the outbox, which needs this

    views = calendar.year_view(session, year, settings)
    grace = timedelta(hours=settings.calendar.grace_hours)
    found = []
    for publication in Publication:
        on_time = late = missed = to_come = 0
        for view in views:
            if view.publication is not publication or view.status == "skipped":
                continue
            issue = session.get(Issue, view.issue_id) if view.issue_id else None
            if issue is not None and issue.status in (IssueStatus.SENT, IssueStatus.SENDING):
                began = issue.send_started_at or view.send_at
                if began <= view.send_at + grace:
                    on_time += 1
                else:
                    late += 1
            elif view.status == "missed":
                missed += 1
            elif not view.before_setup:
                to_come += 1
        zone = settings.calendar.zone
        unslotted = [
            i
            for i in sent_issues(session, date(year, 1, 1), date(year, 12, 31), zone)
            if i.publication is publication and i.slot_at is None
        ]
        late += len(unslotted)
        if publication is Publication.BULLETIN:
            target, is_cap = settings.publications.bulletin.per_year, False
        else:
            target, is_cap = settings.publications.newsletter.max_per_year, True
        found.append(Targets(publication, on_time, late, missed, to_come, target, is_cap))
    return found


def targets_chart(found: Sequence[Targets], year: int) -> charts.Chart:
    words = "; ".join(
        f"{t.publication.value}s: {t.on_time} on time, {t.late} late, {t.missed} missed, "
        f"{t.to_come} to come, {'cap' if t.is_cap else 'target'} {t.target}"
        for t in found
    )
    return charts.Chart(
        slug="targets",
        title=f"{year}: bulletins on time against the target, newsletters against the cap",
        description=f"{words}.",
        categories=tuple(f"{t.publication.value.capitalize()}s" for t in found),
        series=(
            charts.Series("Sent on time", tuple(float(t.on_time) for t in found)),
            charts.Series("Sent late", tuple(float(t.late) for t in found)),
            charts.Series("Missed", tuple(float(t.missed) for t in found)),
            charts.Series("Still to come", tuple(float(t.to_come) for t in found)),
        ),
        kind="stacked",
        target_label="Target (bulletins) or cap (newsletters)",
        targets=tuple(float(t.target) for t in found),
    )


@dataclass
class YearFigures:
    year: int
    targets: list[Targets]
    issues: list[IssueFigures]
    charts: list[charts.Chart]


def year_figures(session: Session, year: int, settings: Settings) -> YearFigures:
    """The year at a glance: the targets, and each sent issue's audience, rates and clicks.

    :raises CalendarError: the year is outside the calendar's range.
    """
    zone = settings.calendar.zone
    found = targets(session, year, settings)
    figures = [
        f
        for f, _, _ in issue_figures(
            session,
            sent_issues(session, date(year, 1, 1), date(year, 12, 31), zone),
            zone,
            settings.reports.min_group,
        )
    ]
    return YearFigures(year, found, figures, [targets_chart(found, year), *period_charts(figures)])


def issues_csv(figures: Sequence[IssueFigures]) -> str:
    """Every issue's figures as CSV (the tables behind the charts, in one file)."""
    out = io.StringIO()
    write_csv([f.as_dict() for f in figures], ISSUE_COLUMNS, out)
    return out.getvalue()


def board_period(today: date) -> tuple[date, date]:
    """The default board period: the two whole months before this one (the board meets six
    times a year)."""
    first = today.replace(day=1)
    end = first - timedelta(days=1)
    month = end.month - 1 or 12
    year = end.year if end.month > 1 else end.year - 1
    return date(year, month, 1), end


def check_period(start: date, end: date) -> None:
    """:raises ReportError: the period ends before it starts or spans more than a year."""
    if end < start:
        raise ReportError(f"--to: {end} is before --from {start}")
    if (end - start).days > 366:
        raise ReportError("--to: a board report covers at most a year")


@dataclass
class Growth:
    """One publication's list across a period: subscribed at its start and end, new, ended."""

    publication: Publication
    at_start: int
    at_end: int
    joined: int
    left: int

    @property
    def change(self) -> int:
        return self.at_end - self.at_start


def _subscribed_at(session: Session, publication: Publication, moment: datetime) -> int:
    """Subscriptions active at ``moment``: begun by then, and active still or ended after
    (a subscription's last change is when it ended)."""
    return int(
        session.execute(
            sa.select(sa.func.count()).where(
                col(Subscription.publication) == publication,
                col(Subscription.created_at) < moment,
                col(Subscription.status) != SubscriptionStatus.PENDING,
                sa.or_(
                    col(Subscription.status) == SubscriptionStatus.ACTIVE,
                    col(Subscription.updated_at) >= moment,
                ),
            )
        ).scalar_one()
    )


def growth(session: Session, start: date, end: date, zone: ZoneInfo) -> list[Growth]:
    """List growth per publication over the period (erased people are no longer counted)."""
    low, high = _local_bounds(start, end, zone)
    found = []
    for publication in Publication:
        joined = session.execute(
            sa.select(sa.func.count()).where(
                col(Subscription.publication) == publication,
                col(Subscription.created_at) >= low,
                col(Subscription.created_at) < high,
                col(Subscription.status) != SubscriptionStatus.PENDING,
            )
        ).scalar_one()
        left = session.execute(
            sa.select(sa.func.count()).where(
                col(Subscription.publication) == publication,
                col(Subscription.status).not_in(
                    [SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING]
                ),
                col(Subscription.updated_at) >= low,
                col(Subscription.updated_at) < high,
            )
        ).scalar_one()
        found.append(
            Growth(
                publication,
                _subscribed_at(session, publication, low),
                _subscribed_at(session, publication, high),
                int(joined),
                int(left),
            )
        )
    return found


@dataclass
class Board:
    """The board report of a period."""

    start: date
    end: date
    issues: list[IssueFigures]
    leps: list[Reach]  # every LEP, its reach summed over the period's issues
    unreached: list[str]
    links: list[tuple[str, LinkFigure]]  # the most clicked links, with their issue's label
    growth: list[Growth]
    total: Reach
    clicks: int
    views: int
    charts: list[charts.Chart]
    min_group: int

    @property
    def delivered_rate(self) -> float:
        return _rate(self.total.delivered, self.total.recipients)

    @property
    def bounce_rate(self) -> float:
        return _rate(self.total.bounced, self.total.recipients)

    @property
    def complaint_rate(self) -> float:
        return _rate(self.total.complained, self.total.delivered)

    @property
    def unsubscribe_rate(self) -> float:
        return _rate(self.total.unsubscribed, self.total.delivered)


def board(session: Session, start: date, end: date, settings: Settings, top: int = 10) -> Board:
    """The board report: the period's issues, reach per LEP, the top links, list growth,
    deliverability and the charts.

    :raises ReportError: the period ends before it starts or spans more than a year.
    """
    check_period(start, end)
    zone = settings.calendar.zone
    min_group = settings.reports.min_group
    made = issue_figures(session, sent_issues(session, start, end, zone), zone, min_group)
    leps: dict[str, Reach] = {}
    total = Reach("total", "Total")
    links: list[tuple[str, LinkFigure]] = []
    for figures, reach, reads in made:
        for row in reach.organisations:
            if row.kind == OrganisationKind.LEP.value:
                leps.setdefault(row.label, Reach(row.key, row.label, kind=row.kind)).merge(row)
        total.merge(reach.total)
        links.extend((figures.label, link) for link in reads.links if link.clicks)
    if not made:  # every LEP, even when nothing went out
        for organisation in session.exec(
            select(Organisation).where(col(Organisation.kind) == OrganisationKind.LEP)
        ):
            label = organisation.short_name or organisation.name
            leps[label] = Reach(str(organisation.id), label, kind=OrganisationKind.LEP.value)
    issues_ = [f for f, _, _ in made]
    rows = sorted(leps.values(), key=lambda r: r.label.lower())
    return Board(
        start=start,
        end=end,
        issues=issues_,
        leps=rows,
        unreached=[r.label for r in rows if not r.reached] if made else [],
        links=sorted(links, key=lambda pair: -pair[1].clicks)[:top],
        growth=growth(session, start, end, zone),
        total=total,
        clicks=sum(f.clicks for f in issues_),
        views=sum(f.views for f in issues_),
        charts=period_charts(issues_),
        min_group=min_group,
    )
