"""Transports: the one seam through which messages leave, with two real implementations.

``CaptureTransport`` keeps each message as an ``.eml`` file under ``var/mail`` and indexes
it in the database (the embedded default: a user sees exactly what would have been sent).
``SmtpTransport`` hands it to an SMTP relay with aiosmtplib.

Errors::

    TransportError   the relay could not be reached or refused the connection
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Protocol

import aiosmtplib
from sqlalchemy.engine import Engine

from mailer import clock
from mailer.db import session_scope
from mailer.models import CapturedMessage
from mailer.settings import Config


class TransportError(Exception):
    """The message could not be handed over at all (no reply to record)."""


@dataclass(frozen=True)
class Reply:
    """What the receiving side answered for a message."""

    code: int
    message: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


class Transport(Protocol):
    """Hands one message to the next hop."""

    async def send(self, sender: str, recipients: Sequence[str], message: bytes) -> Reply: ...

    async def close(self) -> None: ...


class CaptureTransport:
    """Keeps messages as files under ``var/mail/YYYY-MM-DD/`` with an index row each."""

    def __init__(self, folder: Path, engine: Engine) -> None:
        self.folder = folder
        self.engine = engine

    async def send(self, sender: str, recipients: Sequence[str], message: bytes) -> Reply:
        headers = BytesHeaderParser(policy=default_policy).parsebytes(message)
        message_id = str(headers.get("Message-ID", "")).strip()
        now = clock.now()
        day = self.folder / f"{now:%Y-%m-%d}"
        day.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(message).hexdigest()[:12]
        stem = re.sub(r"[^A-Za-z0-9.-]+", "_", message_id.strip("<>"))[:80] or "message"
        path = day / f"{now:%H%M%S}-{stem}-{digest}.eml"
        partial = path.with_suffix(".part")
        partial.write_bytes(message)
        os.replace(partial, path)
        with session_scope(self.engine) as session:
            session.add(
                CapturedMessage(
                    message_id=message_id,
                    envelope_from=sender,
                    recipients=", ".join(recipients),
                    subject=str(headers.get("Subject", "")),
                    path=str(path),
                    size=len(message),
                )
            )
        return Reply(250, f"captured as {path}")

    async def close(self) -> None:
        return None


class SmtpTransport:
    """Sends through an SMTP relay, one connection per message (the pool comes later)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: str = "none",
        username: str = "",
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.username = username
        self.password = password
        self.timeout = timeout

    async def send(self, sender: str, recipients: Sequence[str], message: bytes) -> Reply:
        try:
            errors, response = await aiosmtplib.send(
                message,
                sender=sender,
                recipients=list(recipients),
                hostname=self.host,
                port=self.port,
                use_tls=self.tls == "implicit",
                start_tls=self.tls == "starttls",
                username=self.username or None,
                password=self.password if self.username else None,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            return Reply(first.code, first.message)
        except aiosmtplib.SMTPResponseException as exc:
            return Reply(exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransportError(f"cannot send through {self.host}:{self.port}: {exc}") from exc
        if errors:
            code, text = next(iter(errors.values()))
            return Reply(code, text)
        return Reply(250, response)

    async def close(self) -> None:
        return None


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
    )
