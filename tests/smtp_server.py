"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) that can be told to misbehave.

Faults are chosen per recipient: an SMTP reply code for RCPT or DATA (421, 451, 452, 550,
554, ...), dropping the connection in the middle of DATA (after the first bytes of the
message, before its end), or storing the whole message and then dropping the connection
before the reply (the sender cannot know it was accepted); or for every message: a reply
to MAIL FROM. With ``once``, each recipient's fault happens the first time only.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

REPLIES = {
    421: "421 4.3.2 Service shutting down",
    451: "451 4.3.0 Temporary local problem",
    452: "452 4.2.2 Mailbox full",
    550: "550 5.1.1 No such user",
    554: "554 5.7.1 Message rejected as spam",
}


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class RecordingHandler:
    """Keeps every accepted message; answers or misbehaves as told for chosen recipients."""

    messages: list[Received] = field(default_factory=list)
    rcpt_faults: dict[str, int] = field(default_factory=dict)
    data_faults: dict[str, int] = field(default_factory=dict)
    drop_during_data: set[str] = field(default_factory=set)
    drop_after_storing: set[str] = field(default_factory=set)
    once: bool = False
    mail_fault: int | None = None
    delay: float = 0.0
    sessions: int = 0
    in_flight: Counter[str] = field(default_factory=Counter)
    most_in_flight: Counter[str] = field(default_factory=Counter)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.mail_fault is not None:
            return f"{self.mail_fault} 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        code = self.rcpt_faults.get(address.lower())
        if code is not None:
            if self.once:
                del self.rcpt_faults[address.lower()]
            return REPLIES.get(code, f"{code} fault injected")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipients = [r.lower() for r in envelope.rcpt_tos]
        for recipient in recipients:
            code = self.data_faults.get(recipient)
            if code is not None:
                if self.once:
                    del self.data_faults[recipient]
                return REPLIES.get(code, f"{code} fault injected")
        domains = {r.rpartition("@")[2] for r in recipients}
        for domain in domains:
            self.in_flight[domain] += 1
            self.most_in_flight[domain] = max(self.most_in_flight[domain], self.in_flight[domain])
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            for domain in domains:
                self.in_flight[domain] -= 1
        data = envelope.original_content or b""
        self.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), data))
        return "250 2.0.0 Message accepted"


class _DroppingSMTP(SMTP):
    """Closes the connection during DATA, or after storing the message but before the
    reply, for the handler's chosen recipients."""

    async def smtp_DATA(self, arg: str) -> None:
        handler = self.event_handler
        assert self.envelope is not None
        recipients = {r.lower() for r in self.envelope.rcpt_tos}
        during = recipients & handler.drop_during_data
        after = recipients & handler.drop_after_storing
        if not during and not after:
            await super().smtp_DATA(arg)
            return
        if handler.once:
            handler.drop_during_data -= during
            handler.drop_after_storing -= after
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        if during:
            await self._reader.read(512)  # some of the message, never its end
        else:
            data = b""
            while not data.endswith(b"\r\n.\r\n"):
                chunk = await self._reader.read(65536)
                if not chunk:
                    break
                data += chunk
            content = data[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")
            handler.messages.append(
                Received(str(self.envelope.mail_from), list(self.envelope.rcpt_tos), content)
            )
        assert self.transport is not None
        self.transport.close()


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _DroppingSMTP(self.handler, **self.SMTP_kwargs)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (aiosmtpd cannot bind port 0 itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running(
    handler: RecordingHandler | None = None, port: int | None = None
) -> Iterator[tuple[Controller, RecordingHandler]]:
    """Start a server on 127.0.0.1 (on ``port``, or a free one) and stop it afterwards."""
    handler = handler or RecordingHandler()
    controller = _Controller(handler, hostname="127.0.0.1", port=port or free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()
