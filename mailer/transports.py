"""Transports: the one seam through which messages leave, with two real implementations.

``CaptureTransport`` keeps each message as an ``.eml`` file under ``var/mail`` and indexes
it in the database (the embedded default: a user sees exactly what would have been sent).
``SmtpTransport`` hands it to an SMTP relay with aiosmtplib, over a pool of connections.

A sender passes a ``guard`` with each message: it is asked just before the message is
handed over (before MAIL FROM, before DATA, and before the message itself after DATA's
354), and when it answers no the message
is not sent (:class:`Withheld`): a sender whose lease on the delivery has lapsed must not
send it.

Errors::

    TransportError   the relay could not be reached or refused the connection
    Withheld         the guard said no: nothing of the message was handed over
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Protocol

import aiosmtplib
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import clock
from mailer.db import like_pattern, session_scope
from mailer.models import CapturedMessage
from mailer.settings import Config


class TransportError(Exception):
    """The relay cannot be reached: nothing was handed over, so there is no reply."""


class Withheld(Exception):
    """The sender's guard said no just before the hand-over: nothing was sent."""


Guard = Callable[[], bool]


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Reply:
    """What the receiving side answered for a message.

    ``unknown``: all of the message was sent and the connection was lost before its
    reply, so the relay may have accepted it (RFC 5321 section 4.1.1.4 leaves that open).
    """

    code: int
    message: str
    unknown: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


class Transport(Protocol):
    """Hands one message to the next hop."""

    async def send(
        self, sender: str, recipients: Sequence[str], message: bytes, guard: Guard = _always
    ) -> Reply:
        """Hand over one message; :class:`Withheld` when ``guard()`` is false just before."""
        ...

    async def close(self) -> None: ...


class CaptureTransport:
    """Keeps messages as files under ``var/mail/YYYY-MM-DD/`` with an index row each."""

    concurrency = 4

    def __init__(self, folder: Path, engine: Engine) -> None:
        self.folder = folder
        self.engine = engine

    async def send(
        self, sender: str, recipients: Sequence[str], message: bytes, guard: Guard = _always
    ) -> Reply:
        if not guard():
            raise Withheld()
        return await asyncio.to_thread(self._keep, sender, recipients, message)

    def _keep(self, sender: str, recipients: Sequence[str], message: bytes) -> Reply:
        headers = BytesHeaderParser(policy=default_policy).parsebytes(message)
        message_id = str(headers.get("Message-ID", "")).strip()
        now = clock.now()
        day = self.folder / f"{now:%Y-%m-%d}"
        day.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(message).hexdigest()[:12]
        stem = re.sub(r"[^A-Za-z0-9.-]+", "_", message_id.strip("<>"))[:80] or "message"
        path = day / f"{now:%H%M%S}-{stem}-{digest}.eml"
        partial = path.with_suffix(".part")
        # As a final delivery would (RFC 5321 section 4.4): the envelope sender, which is
        # where bounces for this copy go, becomes the Return-Path header of the kept file.
        newline = b"\r\n" if b"\r\n" in message[:2000] else b"\n"
        kept = b"Return-Path: <" + sender.encode() + b">" + newline + message
        partial.write_bytes(kept)
        os.replace(partial, path)
        with session_scope(self.engine) as session:
            session.add(
                CapturedMessage(
                    message_id=message_id,
                    envelope_from=sender,
                    recipients=", ".join(recipients),
                    subject=str(headers.get("Subject", "")),
                    path=str(path),
                    size=len(kept),
                )
            )
        return Reply(250, f"captured as {path}")

    async def close(self) -> None:
        return None


def captured(
    session: Session, *, search: str | None = None, offset: int = 0, limit: int = 50
) -> tuple[list[CapturedMessage], int]:
    """One page of the captured messages, newest first, and how many there are in all;
    with ``search``, only those whose subject or recipients contain it (any case)."""
    query = select(CapturedMessage)
    if search:
        pattern = like_pattern(search.casefold())
        query = query.where(
            sa.or_(
                sa.func.lower(col(CapturedMessage.subject)).like(pattern, escape="\\"),
                sa.func.lower(col(CapturedMessage.recipients)).like(pattern, escape="\\"),
            )
        )
    total = session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    rows = session.exec(
        query.order_by(col(CapturedMessage.id).desc()).offset(offset).limit(limit)
    ).all()
    return list(rows), int(total)


class SmtpTransport:
    """A pool of SMTP connections to one relay, shared by concurrent senders.

    At most ``connections`` are open at once and each is reused for up to
    ``messages_per_connection`` messages; ``rate`` caps messages per second overall (0: no
    cap) and ``per_domain`` caps messages in flight to one recipient domain.

    Messages must already be CRLF-terminated (every mailer message is): the DATA phase
    only dot-stuffs them with one ``bytes.replace`` instead of aiosmtplib's per-message
    regular expressions, which cost more than building the message.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: str = "none",
        username: str = "",
        password: str | None = None,
        timeout: float = 30.0,
        connections: int = 4,
        messages_per_connection: int = 1000,
        rate: float = 0.0,
        per_domain: int = 8,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.username = username
        self.password = password
        self.timeout = timeout
        self.messages_per_connection = messages_per_connection
        self.per_domain = per_domain
        self.concurrency = connections * 2
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[_Connection] = []
        self._domains: dict[str, asyncio.Semaphore] = {}
        self._bucket = _TokenBucket(rate)

    async def _open(self) -> _Connection:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.tls == "implicit",
            start_tls=self.tls == "starttls",
            timeout=self.timeout,
        )
        try:
            await client.connect()
            if self.username:
                await client.login(self.username, self.password or "")
            if client.is_ehlo_or_helo_needed:  # (our MAIL FROM does not send it first)
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise TransportError(f"cannot reach {self.host}:{self.port}: {exc}") from exc
        return _Connection(client)

    async def send(
        self, sender: str, recipients: Sequence[str], message: bytes, guard: Guard = _always
    ) -> Reply:
        domain = recipients[0].rpartition("@")[2].lower()
        limit = self._domains.setdefault(domain, asyncio.Semaphore(self.per_domain))
        async with limit, self._slots:
            await self._bucket.take()
            for attempt in range(2):
                if not guard():
                    raise Withheld()
                reused = bool(self._idle)
                connection = self._idle.pop() if reused else await self._open()
                try:
                    reply, usable = await connection.deliver(
                        sender, recipients, message, self.timeout, guard
                    )
                except _Stale:
                    # The relay closed an idle connection: nothing was sent, so try a
                    # fresh one once.
                    connection.client.close()
                    if reused and attempt == 0:
                        continue
                    return Reply(0, "connection lost before the message was sent")
                except Withheld:
                    if connection.client.is_connected:
                        self._idle.append(connection)
                    raise
                except _SenderRefused as exc:
                    await connection.quit()
                    raise TransportError(
                        f"{self.host}:{self.port} refuses our sender address: "
                        f"{exc.code} {exc.message}"
                    ) from None
                if usable and connection.sent < self.messages_per_connection:
                    self._idle.append(connection)
                else:
                    await connection.quit()
                return reply
            raise AssertionError("unreachable")

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.quit()


def _path(address: str) -> bytes:
    """``<address>`` for MAIL FROM or RCPT TO (RFC 5321 section 4.1.2).

    :raises ValueError: the address holds what no path may (a line break, a bracket):
        every address we send to is normalised first, so this is a bug of ours.
    """
    if _UNSAFE_PATH.search(address):
        raise ValueError(f"not a plain address: {address!r}")
    return b"<" + address.encode("ascii") + b">"


_UNSAFE_PATH = re.compile(r"[\x00-\x20<>\x7f-\U0010ffff]")


class _Stale(Exception):
    """The connection was gone before anything of the message was sent."""


class _SenderRefused(Exception):
    """The relay refuses MAIL FROM: a problem with us or the relay, not the recipient."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Connection:
    """One open SMTP session."""

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        self.sent = 0

    async def deliver(
        self,
        sender: str,
        recipients: Sequence[str],
        message: bytes,
        timeout: float,
        guard: Guard = _always,
    ) -> tuple[Reply, bool]:
        """Send one message; the reply, and whether the connection can be used again.

        :raises Withheld: ``guard()`` said no before the message was sent (the transaction
            is reset, or after DATA's 354 the connection closed before the message's end).
        """
        client = self.client
        written = False
        try:
            # The command itself, not client.mail(): our addresses are already normalised,
            # and parsing them again per message cost more than the rest of the command.
            started = await client.execute_command(b"MAIL FROM:" + _path(sender))
        except (aiosmtplib.SMTPServerDisconnected, OSError):
            raise _Stale() from None
        if started.code != 250:
            if started.code == 421 or not client.is_connected:
                raise _Stale() from None
            raise _SenderRefused(started.code, started.message) from None
        try:
            for recipient in recipients:
                accepted = await client.execute_command(b"RCPT TO:" + _path(recipient))
                if accepted.code not in (250, 251):
                    raise aiosmtplib.SMTPRecipientRefused(
                        accepted.code, accepted.message, recipient
                    )
            if not guard():
                await self._abandon()
            start = await client.execute_command(b"DATA")
            if start.code != 354:
                await client.rset()
                return Reply(start.code, start.message), start.code != 421
            protocol = client.protocol
            assert protocol is not None
            if not guard():  # the 354 took long: closing now, before the end, sends nothing
                client.close()
                raise Withheld()
            stuffed = message.replace(b"\r\n.", b"\r\n..")
            if stuffed.startswith(b"."):
                stuffed = b"." + stuffed
            protocol.write(stuffed)  # and the end apart: no copy of the whole message
            protocol.write(b".\r\n")
            written = True
            done = await protocol.read_response(timeout=timeout)
        except aiosmtplib.SMTPResponseException as exc:
            usable = exc.code != 421 and client.is_connected
            if usable:
                try:
                    await client.rset()
                except aiosmtplib.SMTPException:
                    usable = False
            return Reply(exc.code, exc.message), usable
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            if written:
                reason = f"no reply after the message was sent: {exc or type(exc).__name__}"
                return Reply(0, reason, unknown=True), False
            return Reply(0, f"connection lost: {exc or type(exc).__name__}"), False
        self.sent += 1
        return Reply(done.code, done.message), done.code != 421 and client.is_connected

    async def _abandon(self) -> None:
        """Reset the transaction (or, failing that, drop the connection): nothing is sent.

        :raises Withheld: always.
        """
        try:
            await self.client.rset()
        except (aiosmtplib.SMTPException, OSError):
            self.client.close()
        raise Withheld()

    async def quit(self) -> None:
        try:
            if self.client.is_connected:
                await self.client.quit()
        except (aiosmtplib.SMTPException, OSError):
            self.client.close()


class _TokenBucket:
    """Allows ``rate`` events per second, evenly spaced, without bursts (0: unlimited)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = 1.0
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        if self.rate <= 0:
            return
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(1.0, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


def from_config(config: Config, engine: Engine) -> Transport:
    """The transport ``[smtp] transport`` names."""
    smtp = config.settings.smtp
    if smtp.transport == "capture":
        return CaptureTransport(config.var_dir / "mail", engine)
    return SmtpTransport(
        smtp.host,
        smtp.port,
        tls=smtp.tls,
        username=smtp.username,
        password=config.secrets.smtp_password,
        timeout=smtp.timeout,
        connections=smtp.connections,
        messages_per_connection=smtp.messages_per_connection,
        rate=smtp.rate,
        per_domain=smtp.per_domain,
    )
