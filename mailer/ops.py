"""What an operator's tools read: status, readiness and Prometheus metrics of an installation."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import clock, db, leadership, outbox
from mailer.models import (
    BounceEvent,
    BounceKind,
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    Issue,
    Slot,
    SlotStatus,
)
from mailer.settings import Settings


@dataclass(frozen=True)
class NextSlot:
    publication: str
    number: str
    send_at: datetime
    issue: str  # the issue's status, or "none"

    @property
    def approved(self) -> bool:
        return self.issue in ("approved", "scheduled")


@dataclass(frozen=True)
class Status:
    """One look at an installation, as `mailer status` and /readyz report it."""

    leader: str  # the holder of the lead, or "" when nobody leads
    term: int
    leader_until: datetime | None
    last_tick_at: datetime | None
    tick_age_seconds: float | None
    open_deliveries: int  # queued, claimed or deferred
    deferred_due: int  # deferred whose retry time has come
    in_doubt: int
    next_slot: NextSlot | None
    last_error: str
    last_error_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """The fields, with whether the next slot's issue is approved (times are left to
        the command line's one JSON rule, ``cli.output.jsonable``)."""
        data = asdict(self)
        if self.next_slot is not None:
            data["next_slot"]["approved"] = self.next_slot.approved
        return data


def status(session: Session) -> Status:
    """The lead, the last tick, the outbox and the next slot, now."""
    now = clock.now()
    lead = leadership.current(session)
    live = lead is not None and lead.live(now)
    counts = dict(
        session.execute(
            sa.select(col(Delivery.status), sa.func.count())
            .where(col(Delivery.status).in_(list(outbox.OPEN)))
            .group_by(col(Delivery.status))
        ).all()
    )
    due = session.execute(
        sa.select(sa.func.count()).where(
            col(Delivery.status) == DeliveryStatus.DEFERRED,
            col(Delivery.next_attempt_at) <= now,
        )
    ).scalar_one()
    doubt = session.execute(
        sa.select(sa.func.count()).where(col(Delivery.in_doubt).is_(True))
    ).scalar_one()
    slot = session.exec(
        select(Slot)
        .where(col(Slot.status) == SlotStatus.PLANNED, col(Slot.send_at) > now)
        .order_by(col(Slot.send_at))
        .limit(1)
    ).first()
    next_slot = None
    if slot is not None:
        issue = session.exec(
            select(Issue).where(
                col(Issue.publication) == slot.publication, col(Issue.number) == slot.number
            )
        ).first()
        next_slot = NextSlot(
            slot.publication.value,
            slot.number,
            slot.send_at,
            issue.status.value if issue else "none",
        )
    tick = lead.last_tick_at if lead else None
    return Status(
        leader=lead.holder if lead and live else "",
        term=lead.term if lead else 0,
        leader_until=lead.expires_at if lead and live else None,
        last_tick_at=tick,
        tick_age_seconds=(now - tick).total_seconds() if tick else None,
        open_deliveries=sum(int(n) for n in counts.values()),
        deferred_due=int(due),
        in_doubt=int(doubt),
        next_slot=next_slot,
        last_error=lead.last_error if lead else "",
        last_error_at=lead.last_error_at if lead else None,
    )


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, str]  # name: "ok" or what is wrong


def readiness(engine: Engine, settings: Settings, *, daemon_state: str | None) -> Readiness:
    """Ready when the database answers, its schema is current, and a daemon keeps the
    calendar (this one leading, or following a leader whose tick is fresh)."""
    checks: dict[str, str] = {}
    try:
        state = db.schema_state(engine)
    except sa.exc.DBAPIError as exc:
        checks["database"] = f"unreachable: {str(exc).splitlines()[0][:200]}"
        return Readiness(False, checks)
    checks["database"] = "ok"
    checks["schema"] = "ok" if state is db.SchemaState.CURRENT else f"{state.value}: migrate"
    if daemon_state is not None:
        try:
            with Session(engine) as session:
                seen = status(session)
        except sa.exc.DBAPIError as exc:
            checks["daemon"] = f"status unreadable: {str(exc).splitlines()[0][:200]}"
            return Readiness(False, checks)
        stale = settings.ops.tick_stale_seconds
        if daemon_state not in ("leading", "following"):
            checks["daemon"] = daemon_state
        elif not seen.leader:
            checks["daemon"] = f"{daemon_state}, but no daemon leads"
        elif seen.tick_age_seconds is None or seen.tick_age_seconds > stale:
            age = "never" if seen.tick_age_seconds is None else f"{seen.tick_age_seconds:.0f} s ago"
            checks["daemon"] = f"{daemon_state}; the leader's last tick was {age}"
        else:
            checks["daemon"] = "ok"
    return Readiness(all(v == "ok" for v in checks.values()), checks)


class _Installation(Collector):
    """Gauges read from the database at each scrape (nothing kept in the process)."""

    def __init__(self, engine: Engine, leading: bool | None) -> None:
        self.engine = engine
        self.leading = leading

    def collect(self) -> Any:
        with Session(self.engine) as session:
            seen = status(session)
            deliveries = GaugeMetricFamily(
                "mailer_deliveries", "Deliveries by status.", labels=["status"]
            )
            by_status = dict(
                session.execute(
                    sa.select(col(Delivery.status), sa.func.count()).group_by(col(Delivery.status))
                ).all()
            )
            for state in DeliveryStatus:  # every status, 0 included: series never vanish
                deliveries.add_metric([state.value], int(by_status.get(state, 0)))
            yield deliveries
            yield GaugeMetricFamily(
                "mailer_deliveries_in_doubt",
                "Deliveries handed over without a reply.",
                value=seen.in_doubt,
            )
            yield GaugeMetricFamily(
                "mailer_deferred_due",
                "Deferred deliveries whose retry time has come.",
                value=seen.deferred_due,
            )
            bounced = GaugeMetricFamily(
                "mailer_bounce_events", "Bounce and complaint reports by kind.", labels=["kind"]
            )
            by_kind = dict(
                session.execute(
                    sa.select(col(BounceEvent.kind), sa.func.count()).group_by(
                        col(BounceEvent.kind)
                    )
                ).all()
            )
            for kind in BounceKind:
                bounced.add_metric([kind.value], int(by_kind.get(kind, 0)))
            yield bounced
            people = GaugeMetricFamily("mailer_contacts", "Contacts by status.", labels=["status"])
            by_contact = dict(
                session.execute(
                    sa.select(col(Contact.status), sa.func.count()).group_by(col(Contact.status))
                ).all()
            )
            for standing in ContactStatus:
                people.add_metric([standing.value], int(by_contact.get(standing, 0)))
            yield people
        if seen.tick_age_seconds is not None:
            yield GaugeMetricFamily(
                "mailer_last_tick_age_seconds",
                "Seconds since the leader's last tick.",
                value=seen.tick_age_seconds,
            )
        yield GaugeMetricFamily(
            "mailer_leader_present",
            "1 when some daemon holds the lead.",
            value=int(bool(seen.leader)),
        )
        if self.leading is not None:
            yield GaugeMetricFamily(
                "mailer_leader", "1 when this process leads.", value=int(self.leading)
            )
        if seen.next_slot is not None:
            yield GaugeMetricFamily(
                "mailer_next_slot_timestamp_seconds",
                "When the next slot is due (Unix time).",
                value=seen.next_slot.send_at.timestamp(),
            )


def metrics(engine: Engine, *, leading: bool | None = None) -> bytes:
    """The installation's gauges in Prometheus text format (``leading``: whether this
    process leads, when it runs a daemon)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Installation(engine, leading))
    return generate_latest(registry)
