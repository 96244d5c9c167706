"""Sending: claim a batch from the outbox, personalise each message, hand it over, record.

One :class:`Sender` per process. Database work runs on one background thread, in order;
messages go out concurrently through the transport (its pool decides how many at once).
A relay that cannot be reached releases the claimed rows unsent and pauses the sender
with a growing back-off, logged once per outage rather than once per message.

Fencing: the sender's claims are a lease (``claim_timeout_seconds``) that a heartbeat
renews. By its own clock (one that also runs through a suspend), measured from the moment
each renewal was asked for and less a safety margin, the sender knows until when its
lease certainly holds; a message is handed to the relay only before then (the transport
asks again before MAIL FROM, before DATA and before the message itself). Once it has
lapsed (the process was paused, the database was slow), nothing more is handed over
until a renewal has told it which rows it still holds; rows taken over by another sender
meanwhile are dropped unsent. Each message is noted in the sender's journal
(:mod:`mailer.journal`) just before it is handed over and once it is accepted, so after
a crash only the messages that were on their way are in doubt.

Errors::

    SenderBusy   another sender holds this SQLite database (one sender per SQLite file)
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar

import uvloop
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mailer import clicks, clock, issues, journal, outbox, publications
from mailer.messages import DkimKey, MessageTemplate, Personal, dkim_sign, issue_key, message_id
from mailer.outbox import Claimed, Outcome, Result
from mailer.rendering import Renderer
from mailer.settings import Config
from mailer.tokens import TokenSigner
from mailer.transports import Transport, TransportError, Withheld

log = logging.getLogger(__name__)
T = TypeVar("T")
LOCK_FILE = "sender.lock"
MAX_PAUSE = 60.0
REFUSALS_BEFORE_STOP = 25
HEARTBEAT = 15.0  # longest time between renewals of this sender's lease
OUTAGE_LIMIT = 180.0  # seconds `mailer send` waits for an unreachable relay


def _lease_clock() -> float:
    """Seconds on a clock that never goes back and, unlike ``time.monotonic`` on Linux,
    also runs while the machine is suspended: the lease runs out in the database then too."""
    return time.clock_gettime(_BOOTTIME)


_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def lease_margin(lease_seconds: float) -> float:
    """How long before its lease runs out a sender stops handing messages over: room for
    a clock that differs between hosts and for the time a renewal takes."""
    return max(2.0, lease_seconds / 5)


class SenderBusy(Exception):
    """Another sender is already working on this SQLite database."""


@contextmanager
def single_sender(engine: Engine, var_dir: Path) -> Iterator[None]:
    """On SQLite, make sure only one sender runs (PostgreSQL senders share the outbox).

    :raises SenderBusy: another ``mailer send`` or ``mailer worker`` holds the lock.
    """
    if engine.dialect.name != "sqlite":
        yield
        return
    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / LOCK_FILE
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise SenderBusy(
                f"a sender is already running on this SQLite database ({holder}); on SQLite "
                "one sender runs at a time. Use PostgreSQL to run several `mailer worker`s."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Tally:
    """What this sender has done so far (for progress bars and logs)."""

    to_send: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    released: int = 0
    resent_in_doubt: int = 0
    taken_over: int = 0  # claims another sender took while this one was held up
    db_seconds: float = 0.0  # on the database thread, the issue's rendering apart
    db_cpu_seconds: float = 0.0  # of which the thread ran (not waiting for the GIL or I/O)
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.sent + self.deferred + self.failed

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True)
class _Prepared:
    template: MessageTemplate
    key: str
    # Issue 19 (reports): each recipient's organisation redirect token, by contact id
    # (empty when the issue counts no clicks). See mailer.clicks.
    organisations: dict[int, str]
    no_organisation: str


@dataclass(frozen=True, slots=True)
class _Job:
    claimed: Claimed
    sender: str
    data: bytes


class Sender:
    """Drains the outbox through one transport."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        transport: Transport,
        *,
        signer: TokenSigner,
        dkim: DkimKey | None = None,
        worker: str | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.transport = transport
        self.signer = signer
        self.dkim = dkim
        self.worker = worker or outbox.worker_name()
        self.domain = config.settings.network.domain
        self.settings = config.settings.delivery
        self.renderer = Renderer.for_config(config)
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailer-db")
        self._prepared: dict[int, _Prepared] = {}
        self._stopping = False
        self._paused_until = 0.0
        self._pause = 0.0
        self._outage_logged = False
        self._outage_since = 0.0
        self._results: list[Result] = []
        self._lease = timedelta(seconds=self.settings.claim_timeout_seconds)
        self._margin = lease_margin(self.settings.claim_timeout_seconds)
        self._lease_until = 0.0  # on _lease_clock: hand-overs are safe before this
        self._recording = True
        self._owned: set[int] = set()  # claimed, not yet sent, not taken over
        self._renewal_failing = False
        self._journals = config.var_dir / journal.FOLDER
        self._journal: journal.Journal  # opened by run()
        self._refusals = 0
        self._refusal = ""
        self._on_progress: Callable[[Tally], None] | None = None
        self.tally = Tally()

    # -- database work, one call at a time on the database thread ---------------------

    async def _in_db(self, work: Callable[[Session], T], *, counted: bool = True) -> T:
        """Run ``work`` on the database thread; its time counts in ``db_seconds`` unless
        it is not database work (the issue's rendering, once per issue)."""

        def run() -> T:
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                with Session(self.engine, expire_on_commit=False) as session:
                    return work(session)
            finally:
                if counted:
                    self.tally.db_seconds += time.perf_counter() - started
                    self.tally.db_cpu_seconds += time.thread_time() - cpu

        return await asyncio.get_running_loop().run_in_executor(self._db, run)

    def _prepare(self, session: Session, issue_id: int) -> _Prepared:
        issue = issues.get(session, issue_id)
        definition = publications.load(self.config.lists_dir, issue.publication)
        rendered = issues.rendering(session, issue, self.renderer, definition)
        template = MessageTemplate.build(
            rendered,
            definition,
            self.config.settings.network,
            subject=issue.subject,
            number=issue.number,
            base_url=self.config.settings.web.base_url,
        )
        organisations = (
            clicks.organisation_tokens(
                session, issue_id, self.signer, self.config.settings.reports.min_group
            )
            if rendered.tracked
            else {}
        )
        return _Prepared(
            template,
            issue_key(issue.publication.value, issue.number),
            organisations,
            self.signer.organisation(issue_id, clicks.NO_ORGANISATION),
        )

    # -- the loop ----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; messages in flight finish, the rest are released unsent."""
        if not self._stopping:
            log.info("stopping: finishing messages in flight, releasing the rest")
        self._stopping = True

    async def run(
        self,
        *,
        issue_id: int | None = None,
        drain: bool = True,
        poll: float = 2.0,
        on_progress: Callable[[Tally], None] | None = None,
    ) -> Tally:
        """Send until nothing is left to try now (``drain``), or until :meth:`stop`.

        With ``issue_id`` only that issue's deliveries are sent; otherwise those of every
        issue that is sending. Deferred deliveries are tried again once they are due.
        """
        self._on_progress = on_progress
        self.tally.resent_in_doubt = (await self._in_db(self._recover)).in_doubt
        holding = await self._in_db(outbox.holders)
        journal.sweep(self._journals, lambda w: w not in holding and outbox.stopped(w))
        self._journal = journal.Journal(self._journals, self.worker)
        if issue_id is not None:
            self.tally.to_send = await self._in_db(lambda s: _open_count(s, issue_id))
        concurrency = max(1, getattr(self.transport, "concurrency", 4))
        queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=self.settings.batch_size * 2)
        deliverers = [asyncio.create_task(self._deliverer(queue)) for _ in range(concurrency)]
        recorder = asyncio.create_task(self._recorder())
        try:
            await self._produce(queue, issue_id, drain, poll)
        finally:
            self._stopping = True
            while not queue.empty():
                queue.get_nowait()
                queue.task_done()
            for _ in deliverers:
                queue.put_nowait(None)
            await asyncio.gather(*deliverers, return_exceptions=True)
            self._recording = False
            await asyncio.gather(recorder, return_exceptions=True)
            try:
                if await self._flush():
                    # Every result is written: what is still claimed was never sent.
                    await self._in_db(lambda s: outbox.release(s, self.worker))
                    self._journal.close(keep=False)
                    await self._in_db(lambda s: _finish(s, issue_id))
                else:
                    self._journal.close(keep=True)
                    log.error(
                        "results could not be recorded: their deliveries stay claimed and "
                        "will be sent again, in doubt, by the next sender"
                    )
            finally:
                await self.transport.close()
                self._db.shutdown(wait=True)
        return self.tally

    async def _produce(
        self, queue: asyncio.Queue[_Job | None], issue_id: int | None, drain: bool, poll: float
    ) -> None:
        batch = self.settings.batch_size
        while not self._stopping:
            wait = self._paused_until - time.monotonic()
            if wait > 0:
                if drain and time.monotonic() - self._outage_since > OUTAGE_LIMIT:
                    log.error(
                        "the relay has not answered for %.0f s: stopping; what is left stays "
                        "queued for `mailer worker` or the daemon",
                        OUTAGE_LIMIT,
                    )
                    return
                await asyncio.sleep(min(wait, 0.5))
                continue
            asked = _lease_clock()
            claimed = await self._in_db(
                lambda s: outbox.claim(
                    s, self.worker, batch=batch, issue_id=issue_id, lease=self._lease
                )
            )
            # A row taken back from this sender while it was held up, and claimed again
            # by it now, already has a job waiting: one job per row.
            claimed = [row for row in claimed if row.delivery_id not in self._owned]
            if claimed:
                if not self._owned:  # else the older claims' (earlier) expiry stands
                    self._lease_until = asked + self._lease.total_seconds() - self._margin
                self._owned.update(row.delivery_id for row in claimed)
                date = format_datetime(clock.now()).encode("ascii")
                for row in claimed:
                    if self._stopping:
                        break
                    try:
                        job = await self._job(row, date)
                    except Exception as exc:  # one bad row must not stop the send
                        log.exception("delivery %s: the message cannot be made", row.delivery_id)
                        self._owned.discard(row.delivery_id)
                        self._results.append(
                            Result(
                                row.delivery_id, Outcome.ERROR, 0, f"cannot make the message: {exc}"
                            )
                        )
                        continue
                    await queue.put(job)
                continue
            # Nothing claimable: let messages in flight finish and be recorded, then
            # either stop (all done) or wait for other senders, deferrals and claims.
            await queue.join()
            await self._flush()
            await self._in_db(lambda s: _finish(s, issue_id))
            if drain and not await self._in_db(lambda s: outbox.has_work(s, issue_id)):
                return
            await asyncio.sleep(0.2 if drain else poll)
            await self._in_db(self._recover)

    def _recover(self, session: Session) -> outbox.Recovered:
        return outbox.recover(session, journal.reader(self._journals))

    def _drop(self, lost: set[int]) -> None:
        lost &= self._owned
        if not lost:
            return
        self._owned -= lost
        self.tally.taken_over += len(lost)
        log.warning(
            "%s deliveries were taken over by another sender while this one was held up "
            "(paused, or its database slow, for longer than its %s s lease): dropped unsent",
            len(lost),
            self.settings.claim_timeout_seconds,
        )

    def _holds(self, delivery_id: int) -> bool:
        """Whether this sender may hand the delivery over now: it holds the row, and its
        lease certainly has not run out."""
        return delivery_id in self._owned and _lease_clock() < self._lease_until

    async def _renew(self) -> None:
        """The heartbeat: extend the lease, and learn which rows are still ours."""
        before = set(self._owned)
        asked = _lease_clock()
        try:
            held = await self._in_db(lambda s: outbox.renew(s, self.worker, lease=self._lease))
        except Exception as exc:
            if not self._renewal_failing:  # once per outage
                log.warning(
                    "could not renew the lease on this sender's claims (%s): nothing more is "
                    "handed over until it is renewed",
                    exc,
                )
            self._renewal_failing = True
            return
        if self._renewal_failing:
            log.warning("the lease is renewed: sending resumes")
        self._renewal_failing = False
        self._lease_until = asked + self._lease.total_seconds() - self._margin
        self._drop(before - held)

    async def _job(self, row: Claimed, date: bytes) -> _Job:
        prepared = self._prepared.get(row.issue_id)
        if prepared is None:
            prepared = await self._in_db(lambda s: self._prepare(s, row.issue_id), counted=False)
            self._prepared[row.issue_id] = prepared
        personal = Personal(
            name=row.name,
            email=row.email,
            token=self.signer.recipient(row.contact_id, row.issue_id),
            message_id=message_id(self.domain, prepared.key, row.contact_id),
            organisation=prepared.organisations.get(row.contact_id, prepared.no_organisation),
        )
        data = prepared.template.personalise(personal, date)
        if self.dkim is not None:
            data = dkim_sign(
                data,
                selector=self.dkim.selector,
                domain=self.dkim.domain,
                private_key=self.dkim.private_key,
            )
        verp = self.signer.verp(f"{row.delivery_id:x}")
        return _Job(row, f"bounces+{verp}@{self.domain}", data)

    async def _deliverer(self, queue: asyncio.Queue[_Job | None]) -> None:
        while True:
            job = await queue.get()
            try:
                if job is None:
                    return
                try:
                    # Await first: the recorder may swap the list while the message is out.
                    result = await self._deliver(job)
                except Exception as exc:  # a fault of ours: try again later, keep going
                    log.exception("delivery %s: unexpected error", job.claimed.delivery_id)
                    # It may have happened after the message was handed over.
                    result = Result(
                        job.claimed.delivery_id, Outcome.DEFERRED, 0, f"error: {exc}", True
                    )
                if result is not None:
                    self._owned.discard(result.delivery_id)
                    self._results.append(result)
            finally:
                queue.task_done()

    async def _deliver(self, job: _Job) -> Result | None:
        """Hand one message over while the lease holds; None when it is no longer ours."""
        # The firewall was checked for this message when it was claimed, from the database,
        # moments ago in the same batch (outbox.claim).
        row = job.claimed
        while True:
            if self._stopping or time.monotonic() < self._paused_until:
                return Result(row.delivery_id, Outcome.RELEASED)
            if row.delivery_id not in self._owned:
                return None  # taken over by another sender: theirs to send
            if not self._holds(row.delivery_id):
                await asyncio.sleep(0.05)  # until the heartbeat says what is still ours
                continue
            self._journal.handing(row.delivery_id)
            try:
                reply = await self.transport.send(
                    job.sender, [row.email], job.data, lambda: self._holds(row.delivery_id)
                )
                break
            except Withheld:
                continue
            except TransportError as exc:
                self._relay_down(exc)
                return Result(row.delivery_id, Outcome.RELEASED)
        if self._outage_logged:
            self._outage_logged = False
            self._pause = 0.0
            log.warning("the relay answers again: sending resumes")
        outcome = outbox.classify(reply.code)
        if outcome is Outcome.SENT:
            try:
                self._journal.accepted(row.delivery_id)
            except OSError as exc:  # then a crash before recording puts it in doubt
                log.warning("could not note delivery %s in the journal: %s", row.delivery_id, exc)
        self._watch_refusals(outcome, reply.message)
        return Result(row.delivery_id, outcome, reply.code, reply.message, in_doubt=reply.unknown)

    def _watch_refusals(self, outcome: Outcome, message: str) -> None:
        """Stop when the relay refuses every message the same way (a relay problem, not a
        run of bad addresses): the rest stay queued for when it is fixed."""
        if outcome is not Outcome.FAILED:
            self._refusals = 0
            return
        self._refusals = self._refusals + 1 if message == self._refusal else 1
        self._refusal = message
        if self._refusals == REFUSALS_BEFORE_STOP:
            log.error(
                "the relay refused %s messages in a row with the same reply (%s): stopping; "
                "check the relay, then send again",
                REFUSALS_BEFORE_STOP,
                message,
            )
            self.stop()

    def _relay_down(self, exc: TransportError) -> None:
        now = time.monotonic()
        if now < self._paused_until:
            return
        self._pause = min(MAX_PAUSE, self._pause * 2 if self._pause else 1.0)
        self._paused_until = now + self._pause
        if not self._outage_logged:
            self._outage_logged = True
            self._outage_since = now
            log.warning("%s; claimed messages released, trying again with back-off", exc)

    async def _recorder(self) -> None:
        """Write results as they come, and renew the lease: until told to stop (never
        cancelled, so that no result is dropped in the middle of being written)."""
        every = min(HEARTBEAT, self.settings.claim_timeout_seconds / 4)
        beat = _lease_clock()
        while self._recording:
            await asyncio.sleep(0.25)
            try:
                await self._flush()
                now = _lease_clock()
                if now - beat >= every or (self._owned and now >= self._lease_until):
                    beat = now
                    await self._renew()
            except Exception:  # a bug of ours must not stop the heartbeat
                log.exception("recording results or renewing the lease failed; trying again")

    async def _flush(self) -> bool:
        """Write the results so far; on a database error keep them for the next try.

        Returns whether everything is written.
        """
        if not self._results:
            return True
        taken, self._results = self._results, []
        try:
            await self._in_db(lambda s: outbox.record(s, taken, self.settings, self.worker))
        except Exception:
            log.exception("recording %s results failed; trying again", len(taken))
            self._results[:0] = taken
            return False
        for result in taken:
            if result.outcome is Outcome.SENT:
                self.tally.sent += 1
            elif result.outcome is Outcome.DEFERRED:
                self.tally.deferred += 1
            elif result.outcome in (Outcome.FAILED, Outcome.ERROR):
                self.tally.failed += 1
            else:
                self.tally.released += 1
        if self._on_progress is not None:
            self._on_progress(self.tally)
        return True


def _finish(session: Session, issue_id: int | None) -> None:
    for sending in [issue_id] if issue_id is not None else outbox.sending_issues(session):
        outbox.finish_if_done(session, sending)


def _open_count(session: Session, issue_id: int) -> int:
    return sum(n for status, n in outbox.counts(session, issue_id).items() if status in outbox.OPEN)


def run_sender(sender: Sender, **kwargs: Any) -> Tally:
    """Run a sender on a fresh event loop: uvloop's, which moves bytes faster."""
    tally: Tally = uvloop.run(sender.run(**kwargs))
    return tally
