"""Proofs for staff: preview files, browser screenshots and test sends of an issue.

Errors::

    ProofError   a preview could not be written or the browser could not take screenshots
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailer import audiences
from mailer.contacts import ContactFieldError, clean_name, normalise_email
from mailer.messages import (
    DkimKey,
    MessageTemplate,
    Personal,
    dkim_sign,
    issue_key,
)
from mailer.models import Contact, Issue, Organisation, StaffAccount
from mailer.publications import PublicationDefinition
from mailer.rendering import RenderedIssue
from mailer.settings import NetworkSettings, ProofSettings
from mailer.tokens import TokenSigner
from mailer.transports import Reply, Transport

SAMPLE_NAME = "Zoë Sample-Ñúñez"
SAMPLE_EMAIL = "zoe.sample@recipient.example"
WIDTHS = (600, 375)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)


class ProofError(Exception):
    """A proof could not be made."""


@dataclass(frozen=True)
class PreviewFiles:
    html: Path
    text: Path
    eml: Path
    screenshots: tuple[Path, ...] = ()


def sample_personal(signer: TokenSigner, issue: Issue, domain: str) -> Personal:
    """A fictitious reader (contact 0 exists nowhere, so their links change nothing)."""
    assert issue.id is not None
    key = issue_key(issue.publication.value, issue.number)
    return Personal(
        name=SAMPLE_NAME,
        email=SAMPLE_EMAIL,
        token=signer.recipient(0, issue.id),
        message_id=f"<preview.{key}@{domain}>",
    )


def message_template(
    issue: Issue,
    rendered: RenderedIssue,
    definition: PublicationDefinition,
    network: NetworkSettings,
    base_url: str,
    *,
    subject: str | None = None,
) -> MessageTemplate:
    """The issue's message, prepared once; its content links are direct (a test send or
    preview counts no clicks)."""
    return MessageTemplate.build(
        rendered,
        definition,
        network,
        subject=subject or issue.subject,
        number=issue.number,
        base_url=base_url,
        count_clicks=False,
    )


def write_preview(
    out_dir: Path,
    rendered: RenderedIssue,
    template: MessageTemplate,
    personal: Personal,
    *,
    dkim: DkimKey | None = None,
) -> PreviewFiles:
    """Write ``preview.html``, ``preview.txt`` and ``preview.eml`` for one fictitious reader.

    :raises ProofError: the folder cannot be written.
    """
    html, text = rendered.for_reader(personal.name, personal.token)
    raw = template.personalise(personal)
    if dkim is not None:
        raw = dkim_sign(
            raw, selector=dkim.selector, domain=dkim.domain, private_key=dkim.private_key
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        files = PreviewFiles(
            out_dir / "preview.html", out_dir / "preview.txt", out_dir / "preview.eml"
        )
        files.html.write_text(html, encoding="utf-8")
        files.text.write_text(text, encoding="utf-8")
        files.eml.write_bytes(raw)
    except OSError as exc:
        raise ProofError(f"{out_dir}: cannot write the preview: {exc.strerror}") from exc
    return files


def screenshots(html: Path, out_dir: Path, widths: Sequence[int] = WIDTHS) -> tuple[Path, ...]:
    """Full-page PNGs of ``html`` at each width, taken with Debian's Chromium.

    The browser runs headless with every outside host unresolvable, so remote images show
    as their alt text, as in a mail client that blocks images.

    :raises ProofError: Chromium is not installed or fails.
    """
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        raise ProofError(f"{CHROMIUM} is missing: install Debian's chromium (make test does)")
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    shots = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
            try:
                for width in widths:
                    page = browser.new_page(viewport={"width": width, "height": 800})
                    page.goto(html.resolve().as_uri(), wait_until="load")
                    target = out_dir / f"preview-{width}.png"
                    page.screenshot(path=str(target), full_page=True)
                    page.close()
                    shots.append(target)
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise ProofError(f"Chromium could not take the screenshots: {exc.message}") from exc
    return tuple(shots)


@dataclass(frozen=True)
class ProofRecipients:
    """Addresses a test of one issue may go to, as :func:`proof_recipients` checked them,
    and the name each is greeted by."""

    issue_id: int
    addresses: tuple[str, ...]
    names: tuple[str, ...] = ()

    def name_of(self, index: int) -> str:
        if index < len(self.names):
            return self.names[index]
        return self.addresses[index].split("@")[0]


def proof_recipients(
    session: Session,
    issue: Issue,
    addresses: Sequence[str],
    names: Mapping[str, str] | None = None,
) -> ProofRecipients:
    """Check who a test of ``issue`` may go to. A test is a copy of the issue, so the
    firewall holds for it too: a test of an internal publication goes only to staff
    accounts and to contacts who may receive it (:func:`mailer.audiences.may_receive`).
    Each is greeted by the name in ``names``, else their name as a contact, else the
    part of the address before the @.

    :raises ProofError: an address is not valid, or may not see this issue.
    """
    assert issue.id is not None
    checked = []
    for raw in addresses:
        try:
            address = normalise_email(raw)
        except ContactFieldError as exc:
            raise ProofError(f"--to: {exc}") from None
        if issue.publication.internal and not _may_see(session, issue, address):
            raise ProofError(
                f"{address} may not see the {issue.publication}: a test of an internal "
                "publication goes only to staff accounts and contacts of LEPs"
            )
        checked.append(address)
    known: dict[str, str] = {
        email: name
        for email, name in session.execute(
            sa.select(col(Contact.email), col(Contact.name)).where(col(Contact.email).in_(checked))
        )
    }
    greeted = tuple(
        (names or {}).get(address) or known.get(address) or address.split("@")[0]
        for address in checked
    )
    return ProofRecipients(issue.id, tuple(checked), greeted)


@dataclass(frozen=True)
class Seed:
    """An address offered for a test send: its name, and whether it may see the issue."""

    email: str
    name: str
    allowed: bool


def _configured_seeds(settings: ProofSettings) -> dict[str, str]:
    """``[proofs] seed_addresses`` as address -> name ("" when none is given).

    :raises ProofError: an entry is not a valid address.
    """
    found: dict[str, str] = {}
    for entry in settings.seed_addresses:
        name, raw = parseaddr(entry)
        try:
            address = normalise_email(raw)
        except ContactFieldError as exc:
            raise ProofError(f"[proofs] seed_addresses: {exc}") from None
        try:
            found.setdefault(address, clean_name(name) if name.strip() else "")
        except ContactFieldError:
            found.setdefault(address, "")
    return found


def seeds(session: Session, issue: Issue, settings: ProofSettings) -> list[Seed]:
    """The seed list for a test of ``issue``: every staff account that may log in, then
    ``[proofs] seed_addresses``; each with the name the test greets them by and whether
    the firewall lets them see it (a test of the bulletin: staff and LEP contacts only).

    :raises ProofError: ``seed_addresses`` holds an invalid address.
    """
    listed: dict[str, str] = {
        email: ""
        for email in session.exec(
            select(StaffAccount.email)
            .where(col(StaffAccount.disabled_at).is_(None))
            .order_by(col(StaffAccount.email))
        )
    }
    for address, name in _configured_seeds(settings).items():
        listed[address] = listed.get(address) or name
    checked = proof_recipients(
        session,
        issue,
        [a for a in listed if not issue.publication.internal or _may_see(session, issue, a)],
        {a: n for a, n in listed.items() if n},
    )
    allowed = dict(zip(checked.addresses, checked.names, strict=True))
    return [
        Seed(address, allowed.get(address) or name or address.split("@")[0], address in allowed)
        for address, name in listed.items()
    ]


def seed_recipients(
    session: Session, issue: Issue, chosen: Sequence[str], settings: ProofSettings
) -> ProofRecipients:
    """The chosen seeds, checked: each must be in the seed list (:func:`seeds`) and may
    see the issue; each is greeted by their own name.

    :raises ProofError: none chosen, one is not a seed, or may not see the issue.
    """
    offered = {seed.email: seed for seed in seeds(session, issue, settings)}
    picked: list[str] = []
    for raw in chosen:
        try:
            address = normalise_email(raw)
        except ContactFieldError as exc:
            raise ProofError(str(exc)) from None
        if address not in offered:
            raise ProofError(f"{address} is not in the seed list ([proofs] seed_addresses)")
        if address not in picked:
            picked.append(address)
    if not picked:
        raise ProofError("choose at least one address to send the test to")
    return proof_recipients(session, issue, picked, {a: offered[a].name for a in picked})


def _may_see(session: Session, issue: Issue, address: str) -> bool:
    staff = session.exec(select(StaffAccount.id).where(col(StaffAccount.email) == address))
    if staff.first() is not None:
        return True
    kind = session.exec(
        select(col(Organisation.kind))
        .join(Contact, col(Contact.organisation_id) == col(Organisation.id))
        .where(col(Contact.email) == address)
    ).first()
    return kind is not None and audiences.may_receive(kind, issue.publication)


async def send_tests(
    template: MessageTemplate,
    recipients: ProofRecipients,
    *,
    issue: Issue,
    signer: TokenSigner,
    transport: Transport,
    domain: str,
    dkim: DkimKey | None = None,
) -> list[tuple[str, Reply]]:
    """Send one test message to each address, then close the transport.

    The links in a test message act on nobody (contact 0 does not exist).

    :raises TransportError: the relay cannot be reached.
    """
    assert issue.id is not None and recipients.issue_id == issue.id
    key = issue_key(issue.publication.value, issue.number)
    replies = []
    try:
        for index, address in enumerate(recipients.addresses):
            personal = Personal(
                name=recipients.name_of(index),
                email=address,
                token=signer.recipient(0, issue.id),
                message_id=f"<test.{key}.{secrets.token_hex(6)}@{domain}>",
            )
            raw = template.personalise(personal)
            if dkim is not None:
                raw = dkim_sign(
                    raw, selector=dkim.selector, domain=dkim.domain, private_key=dkim.private_key
                )
            replies.append((address, await transport.send(f"bounces@{domain}", [address], raw)))
    finally:
        await transport.close()
    return replies
