"""The daemon: APScheduler jobs that send issues at their slots, remind, retry, take bounces.

One daemon leads (a lease in the database, :mod:`mailer.leadership`); others wait and take
over when it stops, hangs or is cut off. Faults are waited out, never an exit. Jobs live
in memory, one scheduler per lead, derived at every tick from the slots table (which is
what survives restarts); each job only calls domain functions and logs one line per
decision.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, date, timedelta
from functools import partial
from typing import TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from aiosmtpd.controller import Controller
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mailer import (
    bounces,
    calendar,
    clock,
    contributions,
    delivery,
    leadership,
    messages,
    outbox,
    privacy,
    sessions,
    subscriptions,
    tokens,
    uploads,
)
from mailer.calendar import Decision
from mailer.models import Slot
from mailer.notices import Notice, Notices, tell_disabled
from mailer.settings import Config
from mailer.transports import Transport, TransportError, from_config

log = logging.getLogger(__name__)
T = TypeVar("T")
# Faults a daemon waits out: the database or the relay gone for a while.
RECOVERABLE: tuple[type[BaseException], ...] = (
    sa.exc.DBAPIError,
    sa.exc.TimeoutError,
    OSError,
    TransportError,
)
_now = leadership._boot_clock


class Outage:
    """Says once that something is failing, and once that it is back: not every retry."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.since: float | None = None
        self.failures = 0

    def failed(self, exc: BaseException) -> float:
        """Note a failure; returns the seconds to wait before the next try (capped)."""
        self.failures += 1
        if self.since is None:
            self.since = _now()
            log.error("%s is failing: %s (retrying until it is back)", self.what, _brief(exc))
        return float(min(60, 2 ** min(self.failures - 1, 6)))

    def recovered(self) -> None:
        if self.since is not None:
            log.info("%s is back after %.0f s", self.what, _now() - self.since)
        self.since = None
        self.failures = 0


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


_running: Daemon | None = None


def _current() -> Daemon:
    if _running is None:
        raise RuntimeError("no daemon is running in this process")
    return _running


# Jobs are module-level functions so the job store can name them across restarts.
async def slot_job(slot_id: int) -> None:
    await _current().at_slot(slot_id)


async def tick_job() -> None:
    await _current().tick()


async def outbox_job() -> None:
    daemon = _current()
    if daemon.acting():
        await daemon.drain_outbox()


async def bounce_fetch_job() -> None:
    daemon = _current()
    if daemon.acting():
        await daemon.fetch_bounces()


class Daemon:
    """Keeps the calendar: sends at slots, marks misses, reminds, retries."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        *,
        transport: Callable[[], Transport] | None = None,
        tick_seconds: float = 60.0,
    ) -> None:
        self.config = config
        self.engine = engine
        self.new_transport = transport or (lambda: from_config(config, engine))
        self.tick_seconds = tick_seconds
        self.grace = timedelta(hours=config.settings.calendar.grace_hours)
        self.signer = tokens.TokenSigner(tokens.load_key(config.secrets.secret_key, config.var_dir))
        self.notices = Notices(config)
        self._draining: asyncio.Task[None] | None = None
        self._sender: delivery.Sender | None = None
        self.lease: leadership.Lease | None = None
        self.state = "starting"
        self._tick_outage = Outage("the calendar's tick")
        self._stop: asyncio.Event | None = None
        self._again = False
        self._stopping = False
        self._deciding = asyncio.Lock()
        self._alerting = asyncio.Lock()
        self._scheduler: AsyncIOScheduler | None = None
        self._housekept_on: date | None = None
        self.leading = False
        self.bounce_endpoint: Controller | None = None

    # -- the loop --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, poll: float = 5.0) -> None:
        """Follow, lead, and follow again, until ``stop`` is set: a fault is waited out
        (capped back-off, logged once per outage), never an exit."""
        self._stop = stop
        holder = outbox.worker_name()
        seconds = self.config.settings.calendar.leader_lease_seconds
        outage = Outage("the database")
        said = False
        while not stop.is_set():
            try:
                lease = await self._db(lambda s: leadership.claim(s, holder, seconds))
            except Exception as exc:
                await self._pause(stop, outage.failed(exc))
                continue
            outage.recovered()
            if lease is None:
                self.state = "following"
                if not said:
                    log.info("another daemon is in charge of this database: waiting to take over")
                    said = True
                await self._pause(stop, min(poll, seconds / 4))
                continue
            said = False
            started = _now()
            try:
                await self._lead(stop, lease)
            except Exception:
                log.exception("leading failed: competing for the lead again")
            if not stop.is_set() and _now() - started < seconds / 4:
                await self._pause(stop, outage.failed(RuntimeError("the lead ended at once")))
        self.state = "stopped"
        log.info("daemon stopped")

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    def acting(self) -> bool:
        """Whether this daemon may act as the leader now: it holds its lease by its own
        clock (or it was never run as a daemon: called directly, as tests do)."""
        return self.lease is None or self.lease.held()

    async def _heartbeat(self, lease: leadership.Lease, lost: asyncio.Event) -> None:
        """Renew the lead every quarter of the lease; set ``lost`` (and stop acting at
        once) when another daemon has it or it lapsed by this daemon's own clock (a
        pause, a cut-off or hung database). Whatever happens, ``lost`` is set on exit."""
        every = min(15.0, lease.seconds / 4)
        outage = Outage("the database (renewing the lead)")
        try:
            while not lost.is_set():
                try:
                    renewed = await asyncio.wait_for(
                        self._db(lambda s: leadership.renew(s, lease)), timeout=every
                    )
                    if not renewed:
                        log.error("another daemon has taken the lead: no longer leading")
                        return
                    outage.recovered()
                except Exception as exc:
                    outage.failed(exc)
                if not lease.held():
                    log.error("the lead lapsed before it could be renewed: no longer leading")
                    return
                with suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), max(0.2, min(every, lease.until - _now())))
        finally:
            lease.until = 0.0  # nothing in flight may act as the leader any more
            lost.set()

    async def _lead(self, stop: asyncio.Event, lease: leadership.Lease) -> None:
        """Keep the calendar while this daemon holds ``lease``; return when ``stop`` is set
        or the lead is lost (then the caller competes for it again).

        Jobs are kept in memory, one scheduler per lead: they are derived from the slots
        table at every tick, so nothing of a former leader's schedule can fire here, and
        a leader woken from a pause cannot touch this one's."""
        global _running
        self.lease = lease
        self.leading = True
        self.state = "leading"
        self._stopping = False
        log.info("daemon leads (term %s): keeping the calendar", lease.term)
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(lease, lost))
        scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(self.grace.total_seconds()) or 1,
            },
        )
        try:
            self._scheduler = scheduler
            _running = self
            scheduler.start(paused=True)  # the first tick runs alone, then the jobs
            self._start_bounce_intake(scheduler)
            await self.tick()
            await self.drain_outbox()
            if self.config.settings.bounces.receive == "imap":
                await self.fetch_bounces()  # logs its own failures
            for job_id, job in (("tick", tick_job), ("outbox", outbox_job)):
                scheduler.add_job(
                    job, "interval", seconds=self.tick_seconds, id=job_id, replace_existing=True
                )
            scheduler.resume()
            waiting = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
            try:
                await asyncio.wait([*waiting, heartbeat], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waiting:
                    task.cancel()
        finally:
            lost.set()
            lease.until = 0.0  # whatever is still in flight must not act as the leader
            try:
                scheduler.shutdown(wait=False)
            except Exception:
                log.exception("stopping the leader's jobs")
            self._scheduler = None
            if self.bounce_endpoint is not None:
                try:
                    await asyncio.to_thread(self.bounce_endpoint.stop)
                except Exception:
                    log.exception("stopping the bounce endpoint")
                self.bounce_endpoint = None
            self._stopping = True
            if self._sender is not None:
                self._sender.stop()  # messages in flight finish; the rest stay queued
            await self.settle()
            await asyncio.gather(heartbeat, return_exceptions=True)
            if stop.is_set():
                with suppress(Exception):
                    await self._db(lambda s: leadership.release(s, lease))
            _running = None
            self.leading = False
            self.state = "following"

    async def _db(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with Session(self.engine, expire_on_commit=False) as session:
                return work(session)

        return await asyncio.to_thread(run)

    async def tick(self) -> None:
        """Plan the year, decide every due slot, send reminders, schedule upcoming slots.
        A fault is logged once per outage and noted for `mailer status`; the next tick
        tries again."""
        if not self.acting():
            return
        try:
            await self._tick()
            self._tick_outage.recovered()
            error = None
        except RECOVERABLE as exc:
            self._tick_outage.failed(exc)
            error = f"tick: {_brief(exc)}"
        except Exception as exc:  # a bug must not stop the calendar: logged, tried again
            if self._tick_outage.since is None:
                log.exception("the calendar's tick failed; trying again on the next")
            self._tick_outage.failed(exc)
            error = f"tick: {_brief(exc)}"
        lease = self.lease
        if lease is not None:
            with suppress(*RECOVERABLE):
                await self._db(
                    lambda s: leadership.note(s, lease, ticked=error is None, error=error)
                )

    async def _tick(self) -> None:
        now = clock.now()
        settings = self.config.settings
        zone = ZoneInfo(settings.calendar.timezone)

        def plan(session: Session) -> list[Slot]:
            for year in {
                now.astimezone(zone).year,
                (now + timedelta(days=60)).astimezone(zone).year,
            }:
                if calendar.ensure_year(session, year, settings):
                    log.info("planned the %s bulletins from the rhythm", year)
            session.commit()
            return calendar.due_slots(session, now)

        due = await self._db(plan)
        for slot in due:
            assert slot.id is not None
            await self.at_slot(slot.id)
        for missed in await self._db(calendar.alerts_due):
            log.info("slot %s: the missed-slot alert had not gone: sending it again", missed.id)
            await self._alert_missed(
                missed, "it was missed, and this alert could not be sent at the time"
            )
        reminders = await self._db(lambda s: calendar.reminders_due(s, now, settings))
        for reminder in reminders:
            if not await self._notify([self.notices.reminder(reminder)], "reminder"):
                continue  # not marked: tried again on the next tick
            await self._db(
                partial(
                    calendar.mark_reminded, slot_id=reminder.slot_id, kind=reminder.kind, now=now
                )
            )
            log.info(
                "reminded staff: %s %s %s (issue %s)",
                reminder.publication,
                reminder.number,
                "deadline passed" if reminder.kind == "deadline" else "goes out today",
                reminder.issue_status,
            )
        await self._schedule_slots()
        told = await contributions.send_notices(
            self.engine, self.config, self.signer, self.new_transport
        )
        if told:
            log.info("sent %s emails to contributors (receipts, declines, credits)", told)
        purged = await self._db(lambda s: subscriptions.purge_unconfirmed(s, settings.signup))
        if purged:
            log.info("forgot %s sign-ups never confirmed", purged)
        kept_for = timedelta(minutes=settings.contacts_import.keep_upload_minutes)
        gone = await asyncio.to_thread(uploads.purge, self.config.var_dir, kept_for)
        if gone:
            log.info("forgot %s uploaded files past their time", gone)
        if self._housekept_on != now.date():
            await self._db(self._housekeep)
            self._housekept_on = now.date()

    def _housekeep(self, session: Session) -> None:
        """Once a day: the retention periods of delivery details, raw bounce reports, and
        staff sessions and login counts."""
        settings = self.config.settings
        reduced = privacy.retain(session, settings.privacy.retention_days)
        if reduced:
            log.info("retention: %s old deliveries reduced to counts", reduced)
        dropped = bounces.forget_raw(session, settings.bounces)
        if dropped:
            log.info("retention: dropped %s raw bounce reports", dropped)
        forgotten = sessions.forget(session)
        if forgotten:
            log.info("retention: forgot %s old staff sessions and login counts", forgotten)

    # -- bounces ---------------------------------------------------------------------

    def _intake(self, source: str) -> bounces.Intake:
        return bounces.Intake(
            self.engine,
            self.signer,
            self.config.settings.bounces,
            source=source,
            tell=tell_disabled(self.config, self.new_transport),
        )

    def _start_bounce_intake(self, scheduler: AsyncIOScheduler) -> None:
        """The bounce endpoint (receive = "smtp") or the mailbox fetch (receive = "imap")."""
        settings = self.config.settings.bounces
        if settings.receive != "imap":  # a fetch job kept from an earlier configuration
            with suppress(JobLookupError):
                scheduler.remove_job("bounces")
        if settings.receive == "smtp":
            endpoint = bounces.endpoint(
                settings.host,
                settings.port,
                self.config.settings.network.domain,
                self._intake("smtp"),
            )
            try:
                endpoint.start()
            except (OSError, RuntimeError) as exc:
                log.error(
                    "cannot run the bounce endpoint on %s:%s: %s", settings.host, settings.port, exc
                )
                return
            self.bounce_endpoint = endpoint
            log.info("bounce endpoint listening on %s:%s", settings.host, settings.port)
        elif settings.receive == "imap":
            scheduler.add_job(
                bounce_fetch_job,
                "interval",
                minutes=settings.fetch_minutes,
                id="bounces",
                replace_existing=True,
            )

    async def fetch_bounces(self) -> None:
        """Read the bounce mailbox once (the job of receive = "imap")."""
        settings = self.config.settings.bounces
        try:
            done = await asyncio.to_thread(
                bounces.fetch, settings, self.config.secrets.imap_password, self._intake("imap")
            )
        except (OSError, imaplib.IMAP4.error) as exc:
            log.error("could not read the bounce mailbox %s: %s", settings.imap_host, exc)
            return
        except Exception:
            log.exception("could not read the bounce mailbox %s", settings.imap_host)
            return
        if done:
            log.info("bounce mailbox: %s reports recorded", done)

    async def _notify(self, built: list[Notice], what: str) -> bool:
        """Send notices to staff; whether the relay accepted every one."""
        try:
            replies = await self.notices.send(self.new_transport(), built)
        except TransportError as exc:
            log.error("could not send a %s to staff: %s", what, exc)
            return False
        refused = [r for r in replies if not r.ok]
        for reply in refused:
            log.error("the relay refused a %s to staff: %s %s", what, reply.code, reply.message)
        return not refused

    async def at_slot(self, slot_id: int) -> None:
        """A slot's time has come: send its approved issue, or mark it missed and alert.
        Only while this daemon holds the lead by its own clock (a leader that wakes from a
        pause after another took over must not act)."""
        if not self.acting():
            log.warning("slot %s: not leading any more: left to the daemon that leads", slot_id)
            return
        async with self._deciding:  # a slot job and the tick may both reach the same slot
            now = clock.now()
            outcome = await self._db(
                lambda s: calendar.dispatch(s, slot_id, now, self.grace, self.config.lists_dir)
            )
        if outcome.decision is Decision.WAIT:
            return
        slot = await self._db(lambda s: calendar.get(s, slot_id))
        label = f"slot {slot_id} ({slot.publication} {slot.number})"
        fields = {"slot": slot_id, "issue": outcome.issue_id, "decision": outcome.decision.value}
        if outcome.decision is Decision.SENT:
            log.info(
                "%s: sending issue %s: %s", label, outcome.issue_id, outcome.reason, extra=fields
            )
            await self.drain_outbox()
        elif outcome.decision is Decision.MISSED:
            log.warning("%s: missed: %s; alerting staff", label, outcome.reason, extra=fields)
            await self._alert_missed(slot, outcome.reason)
        else:
            log.info("%s: nothing to do: %s", label, outcome.reason, extra=fields)

    async def _alert_missed(self, slot: Slot, reason: str) -> None:
        """Tell staff of a missed slot; marked only once the relay took it, so a failed
        alert is sent again by the next tick (one per slot)."""
        assert slot.id is not None
        slot_id = slot.id
        async with self._alerting:  # the slot's job and the tick may both get here
            current = await self._db(lambda s: calendar.get(s, slot_id))
            if current.missed_alerted_at is not None:
                return
            message = self.notices.missed(slot.publication, slot.number, slot.send_at, reason)
            if await self._notify([message], "missed-slot alert"):
                await self._db(partial(calendar.mark_alerted, slot_id=slot_id, now=clock.now()))

    async def _schedule_slots(self) -> None:
        """One job per upcoming slot, at its send time (moved slots are re-timed)."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        upcoming = await self._db(lambda s: calendar.upcoming_slots(s, clock.now()))
        wanted = {f"slot-{slot.id}": slot for slot in upcoming}
        for job in scheduler.get_jobs():
            if job.id.startswith("slot-") and job.id not in wanted:
                with suppress(JobLookupError):
                    scheduler.remove_job(job.id)
        for job_id, slot in wanted.items():
            existing = scheduler.get_job(job_id)
            if existing is not None and existing.next_run_time == slot.send_at:
                continue
            scheduler.add_job(
                slot_job,
                "date",
                run_date=slot.send_at,
                args=[slot.id],
                id=job_id,
                replace_existing=True,
            )

    async def drain_outbox(self) -> None:
        """Start sending what is due (issues just dispatched, interrupted sends, deferred
        retries) without waiting for it; a send already running is asked to look again."""
        # Not only the leader's: every claim is a lease the sender fences itself by, so a
        # follower (`mailer serve`'s "send now") or a leader waking from a pause is safe.
        if self._draining is not None and not self._draining.done():
            self._again = True
            return
        self._draining = asyncio.create_task(self._drain())

    async def settle(self) -> None:
        """Wait until the send under way (if any) has finished."""
        while self._draining is not None and not self._draining.done():
            await asyncio.gather(self._draining, return_exceptions=True)

    async def _drain(self) -> None:
        while True:
            self._again = False
            try:
                with delivery.single_sender(self.engine, self.config.var_dir):
                    self._sender = delivery.Sender(
                        self.engine,
                        self.config,
                        self.new_transport(),
                        signer=self.signer,
                        dkim=messages.dkim_key(self.config),
                    )
                    tally = await self._sender.run(drain=True)
            except delivery.SenderBusy as exc:
                log.info("outbox: %s; trying again later", exc)
                return
            except Exception:
                log.exception("outbox: the send stopped on an error; trying again later")
                return
            finally:
                self._sender = None
            if tally.done or tally.resent_in_doubt:
                log.info(
                    "outbox: %s sent, %s deferred, %s failed%s",
                    tally.sent,
                    tally.deferred,
                    tally.failed,
                    f", {tally.resent_in_doubt} in doubt resent" if tally.resent_in_doubt else "",
                )
            if not self._again or self._stopping:
                return
