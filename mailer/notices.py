"""Emails to staff (reminders, missed slots, disabled contacts), sign-up confirmations, and
the emails to LEP contributors (receipt, decline, credit)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from mailer import issues, messages
from mailer.bounces import Disabled
from mailer.calendar import Reminder
from mailer.contributions import Due, NoticeKind
from mailer.models import Publication
from mailer.settings import Config
from mailer.tokens import TokenSigner
from mailer.transports import Reply, Transport

log = logging.getLogger(__name__)
NAMES = {Publication.BULLETIN: "Bulletin", Publication.NEWSLETTER: "Newsletter"}


def _when(moment: datetime, zone: str) -> str:
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%a} {local.day} {local:%b %Y %H:%M} ({zone})"


@dataclass(frozen=True)
class Notice:
    """One notice: its headers' text and its body, made into bytes by :mod:`messages`."""

    from_name: str
    from_address: str
    to: tuple[str, ...]
    subject: str
    text: str
    message_id: str

    def as_bytes(self) -> bytes:
        """The message as sent (CRLF, every header value encoded as text).

        :raises HeaderError: a header value holds a line break or control character.
        """
        return messages.text_message(
            from_name=self.from_name,
            from_address=self.from_address,
            to=self.to,
            subject=self.subject,
            text=self.text,
            message_id=self.message_id,
        )


class Notices:
    """Builds notices to ``[calendar] alert_addresses`` and sends them."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(Path(config.templates_dir) / "notices")),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # noqa: S701 (plain-text emails to staff)
            keep_trailing_newline=True,
        )

    def _message(self, subject: str, template: str, values: dict[str, object]) -> Notice:
        network = self.config.settings.network
        return Notice(
            from_name=f"{network.name} mailer",
            from_address=network.contact_email,
            to=tuple(self.config.settings.calendar.alert_addresses),
            subject=subject,
            text=self.env.get_template(template).render(values),
            message_id=make_msgid("notice", domain=network.domain),
        )

    def reminder(self, reminder: Reminder) -> Notice:
        zone = self.config.settings.calendar.timezone
        name = NAMES[reminder.publication]
        subject = (
            f"Deadline passed: {name} {reminder.number}"
            if reminder.kind == "deadline"
            else f"Today: {name} {reminder.number} is not approved"
        )
        return self._message(
            subject,
            f"{reminder.kind}.txt",
            {
                "name": name,
                "number": reminder.number,
                "publication": reminder.publication.value,
                "send_at": _when(reminder.send_at, zone),
                "deadline": _when(reminder.deadline_at, zone),
                "issue_status": reminder.issue_status,
                "slot_id": reminder.slot_id,
            },
        )

    def missed(
        self, publication: Publication, number: str, send_at: datetime, reason: str
    ) -> Notice:
        name = NAMES[publication]
        return self._message(
            f"MISSED: {name} {number} was not sent",
            "missed.txt",
            {
                "name": name,
                "number": number,
                "publication": publication.value,
                "send_at": _when(send_at, self.config.settings.calendar.timezone),
                "reason": reason,
            },
        )

    def disabled(self, contact: Disabled) -> Notice:
        """The bounce score has disabled a contact: staff check the address."""
        return self._message(
            f"Disabled after repeated bounces: {messages.display_text(contact.name)}",
            "disabled.txt",
            {
                "contact": contact,
                "threshold": f"{self.config.settings.bounces.threshold:g}",
                "score": f"{contact.score:g}",
                "link": f"{self.config.settings.web.root}/staff/contacts/{contact.contact_id}",
            },
        )

    def confirmation(self, name: str, email: str, link: str) -> Notice:
        """The double opt-in email: one link to confirm a newsletter sign-up."""
        network = self.config.settings.network
        hours = self.config.settings.signup.confirm_hours
        text = self.env.get_template("confirm.txt").render(
            {
                "name": name,
                "link": link,
                "hours": f"{hours:g}",
                "network": network.name,
                "address": network.postal_address,
                "privacy": f"{self.config.settings.web.root}/privacy",
            }
        )
        return Notice(
            from_name=network.name,
            from_address=network.contact_email,
            to=(email,),
            subject=f"Please confirm your subscription to the {network.name} newsletter",
            text=text,
            message_id=make_msgid("signup", domain=network.domain),
        )

    def contribution(self, owed: Due, signer: TokenSigner) -> Notice:
        """An email to a LEP contributor: the receipt of what they sent in, a decline with
        its reason, or the sent issue that carries their items (with its view-online
        link)."""
        network = self.config.settings.network
        root = self.config.settings.web.root
        zone = self.config.settings.calendar.zone
        values: dict[str, object] = {
            "name": owed.name,
            "headline": owed.headlines[0],
            "headlines": list(owed.headlines),
            "network": network.name,
            "address": network.postal_address,
            "contact": network.contact_email,
            "privacy": f"{root}/privacy",
        }
        first = owed.headlines[0]
        short = first if len(first) <= 60 else first[:57].rstrip() + "..."
        if owed.kind == NoticeKind.RECEIPT:
            values["slot"] = issues.slot_label(owed.slot_at, zone) if owed.slot_at else ""
            values["in_time"] = owed.in_time
            subject, template = f"Received for the bulletin: {short}", "contribution_receipt.txt"
        elif owed.kind == NoticeKind.DECLINED:
            values["reason"] = owed.reason
            subject, template = (
                f"Not in the bulletin this time: {short}",
                "contribution_declined.txt",
            )
        else:
            assert owed.issue_id is not None
            values["issue"] = f"bulletin {owed.issue_number}"
            values["link"] = f"{root}/v/{signer.recipient(owed.contact_id, owed.issue_id)}"
            subject = (
                f"Your item is in today's bulletin: {short}"
                if len(owed.headlines) == 1
                else f"Your {len(owed.headlines)} items are in today's bulletin"
            )
            template = "contribution_credit.txt"
        return Notice(
            from_name=network.name,
            from_address=network.contact_email,
            to=(owed.email,),
            subject=subject,
            text=self.env.get_template(template).render(values),
            message_id=make_msgid("contribution", domain=network.domain),
        )

    async def send(self, transport: Transport, notices: Sequence[Notice]) -> list[Reply]:
        """Send notices through ``transport``, then close it.

        :raises TransportError: the relay cannot be reached.
        """
        sender = self.config.settings.network.contact_email
        recipients = list(self.config.settings.calendar.alert_addresses)
        replies = []
        try:
            for notice in notices:
                replies.append(await transport.send(sender, recipients, notice.as_bytes()))
        finally:
            await transport.close()
        return replies


def tell_disabled(
    config: Config, new_transport: Callable[[], Transport]
) -> Callable[[Disabled], None]:
    """What a bounce intake calls when the score disables a contact: a notice to staff,
    sent at once (from a thread with no event loop running).

    :raises TransportError: the relay cannot be reached.
    """
    notices = Notices(config)

    def tell(contact: Disabled) -> None:
        replies = asyncio.run(notices.send(new_transport(), [notices.disabled(contact)]))
        for reply in replies:
            if not reply.ok:
                log.error(
                    "the relay refused the notice about contact %s: %s %s",
                    contact.contact_id,
                    reply.code,
                    reply.message,
                )

    return tell


async def send_one(
    transport: Transport, config: Config, notice: Notice, recipients: Sequence[str]
) -> Reply:
    """Send one message to ``recipients`` (not the staff list), DKIM-signed when a key is
    set (as readers' issues are), then close the transport.

    :raises TransportError: the relay cannot be reached.
    """
    try:
        data = notice.as_bytes()
        key = messages.dkim_key(config)
        if key is not None:
            data = messages.dkim_sign(
                data, selector=key.selector, domain=key.domain, private_key=key.private_key
            )
        return await transport.send(config.settings.network.contact_email, list(recipients), data)
    finally:
        await transport.close()
