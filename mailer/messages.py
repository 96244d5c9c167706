"""The bytes handed to SMTP: prepared once per issue, personalised per recipient by joining.

A :class:`MessageTemplate` is the whole RFC 5322 message (headers, multipart/alternative
with a quoted-printable text part first and HTML part last, CRLF line ends) cut at the
places that differ per recipient. Each gap sits on an encoded line of its own, between
quoted-printable soft line breaks, so inserting a value never breaks the encoding or the
76-character line limit; values are encoded on the way in (RFC 2047 for the To name,
quoted-printable and HTML escaping for the body). Optional DKIM signing comes last, over
the exact bytes sent.

Errors::

    HeaderError   a header value holds a line break or is otherwise unsafe
"""

from __future__ import annotations

import binascii
import email.policy
import html
import re
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import Header
from email.utils import format_datetime
from enum import IntEnum

import dkim

from mailer import clock
from mailer.publications import PublicationDefinition
from mailer.rendering import RenderedIssue
from mailer.settings import Config, NetworkSettings

POLICY = email.policy.SMTP
CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"
DKIM_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"mime-version",
    b"content-type",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"feedback-id",
)
_ATOM_SAFE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ .]*$")


class HeaderError(ValueError):
    """A header value is unsafe (a CR or LF would let it add headers)."""


class Gap(IntEnum):
    """What goes into each gap of a template."""

    DATE = 0
    MESSAGE_ID = 1
    TO = 2
    TOKEN = 3
    TEXT_NAME = 4
    HTML_NAME = 5
    ORGANISATION = 6  # the redirect token of the reader's organisation (mailer.clicks)


@dataclass(frozen=True)
class Personal:
    """One recipient's values."""

    name: str
    email: str
    token: str
    message_id: str
    # The redirect token of their organisation (TokenSigner.organisation): needed only when
    # the issue's HTML part counts its links; never anything naming the person.
    organisation: str = ""


def _is_control(ch: str) -> bool:
    return (unicodedata.category(ch) == "Cc" and ch != "\t") or ch in "\u2028\u2029"


def check_header_value(field: str, value: str) -> str:
    """Refuse a value that could inject headers.

    Values are text: an ``=?...?=`` in one is encoded like any other text and never
    decoded (see :func:`header`), so what a reader's program decodes is exactly the value
    checked here.

    :raises HeaderError: the value holds a CR, LF or other control character.
    """
    if any(_is_control(ch) for ch in value):
        raise HeaderError(f"{field}: a line break or control character is not allowed")
    return value


def _crlf(encoded: bytes) -> bytes:
    """Every line end of quoted-printable output as CRLF (b2a_qp writes its soft breaks
    with the line end it saw first in the data, LF or CRLF)."""
    return encoded.replace(b"\r\n", b"\n").replace(b"\n", CRLF)


def _qp(data: bytes) -> bytes:
    """Quoted-printable text with CRLF line ends and lines of at most 76 characters; a
    bare CR in the text is a line end too (never a CR alone on the wire)."""
    text = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return _crlf(binascii.b2a_qp(text, istext=True))


def _gap_value(data: bytes) -> bytes:
    """A value encoded to sit on its own lines between soft line breaks.

    Encoded as binary, so even a CR or LF in a value becomes =0D=0A, never a line break.
    """
    return _crlf(binascii.b2a_qp(data, istext=False)) + SOFT_BREAK


_LONGEST_WORD = 60  # a longer word would not fold under 78 octets after "Subject: "


def _needs_encoding(value: str) -> bool:
    """Whether a value must travel as RFC 2047 encoded words: not ASCII, holding
    something a reader would take for an encoded word (``=?``), or a word too long to
    fold at spaces (encoded words split anywhere, so no line passes 78 octets)."""
    return (
        not value.isascii()
        or "=?" in value
        or any(len(word) > _LONGEST_WORD for word in value.split())
    )


def display_text(value: str) -> str:
    """A reader's text for display only (a name): each control character a space and
    whitespace collapsed, so a damaged row is shown rather than stopping a message."""
    return " ".join("".join(" " if _is_control(ch) else ch for ch in value).split())


def _encoded_words(name: str, value: str) -> str:
    """``value`` as UTF-8 encoded words, folded for a header called ``name``: the text is
    encoded whole, so nothing in it is ever read as markup (RFC 2047 section 5)."""
    return Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


def header(name: str, value: str) -> bytes:
    """One unstructured header line (Subject, List-Id …): plain ASCII folded at spaces,
    anything else RFC 2047-encoded as text.

    :raises HeaderError: the value holds a line break or control character.
    """
    check_header_value(name, value)
    if not _needs_encoding(value):
        lines = textwrap.wrap(
            f"{name}: {value}", width=78, break_long_words=False, break_on_hyphens=False
        )
        return ("\r\n ".join(lines) + "\r\n").encode("ascii")
    return f"{name}: {_encoded_words(name, value)}\r\n".encode("ascii")


def mailbox(name: str, display_name: str, address: str, *, field: str | None = None) -> bytes:
    """A header naming one mailbox (From, To): the display name as a quoted string when it
    is plain ASCII, else as encoded words; the address as it is (already checked ASCII).

    :raises HeaderError: the display name or address holds a line break or control
        character (the message names ``field``).
    """
    check_header_value(field or name, display_name)
    check_header_value(field or name, address)
    if not display_name:
        return f"{name}: <{address}>\r\n".encode("ascii")
    if not _needs_encoding(display_name) and _ATOM_SAFE.match(display_name):
        quoted = display_name.replace("\\", "\\\\").replace('"', '\\"')
        return f'{name}: "{quoted}" <{address}>\r\n'.encode("ascii")
    return f"{name}: {_encoded_words(name, display_name)} <{address}>\r\n".encode("ascii")


def format_to(name: str, address: str) -> bytes:
    """``To:`` for one recipient (see :func:`mailbox`). A reader's name is display text
    only: a control character in it (checked at import, so only from a damaged row)
    becomes a space rather than stopping the send."""
    return mailbox("To", display_text(name), address)


def text_message(
    *,
    from_name: str,
    from_address: str,
    to: Sequence[str],
    subject: str,
    text: str,
    message_id: str,
) -> bytes:
    """A plain-text message (notices to staff, sign-up confirmations) with every header
    built here, so text in them is never read as encoded words.

    :raises HeaderError: a header value holds a line break or control character.
    """
    addresses = ",\r\n ".join(check_header_value("to", address) for address in to)
    heads = [
        b"Date: " + format_datetime(clock.now()).encode("ascii") + CRLF,
        f"Message-ID: {check_header_value('message_id', message_id)}\r\n".encode("ascii"),
        mailbox("From", from_name, from_address),
        f"To: {addresses}\r\n".encode("ascii"),
        header("Subject", subject),
        b"Auto-Submitted: auto-generated\r\n",
        b"MIME-Version: 1.0\r\n",
        b'Content-Type: text/plain; charset="utf-8"\r\n',
        b"Content-Transfer-Encoding: quoted-printable\r\n",
    ]
    body = _qp(text.encode("utf-8"))
    return b"".join(heads) + CRLF + body + (b"" if body.endswith(CRLF) else CRLF)


def message_id(domain: str, issue_key: str, contact_id: int) -> str:
    """The Message-ID of one delivery: unique in the issue, the same when re-sent."""
    return f"<{issue_key}.{contact_id:x}@{domain}>"


def issue_key(publication: str, number: str) -> str:
    """'bulletin-2027-05': names an issue in Message-IDs and Feedback-IDs."""
    return f"{publication}-{re.sub(r'[^A-Za-z0-9]+', '-', number).strip('-')}".lower()


class MessageTemplate:
    """One issue's message with gaps for the per-recipient values."""

    def __init__(self, segments: Sequence[bytes], gaps: Sequence[Gap]) -> None:
        assert len(segments) == len(gaps) + 1
        self.segments = tuple(segments)
        self.gaps = tuple(gaps)

    @classmethod
    def build(
        cls,
        rendered: RenderedIssue,
        definition: PublicationDefinition,
        network: NetworkSettings,
        *,
        subject: str,
        number: str,
        base_url: str,
        count_clicks: bool = True,
    ) -> MessageTemplate:
        """Prepare the message of an issue once; without ``count_clicks`` (test sends) the
        content links of the HTML part are direct, not counted redirects.

        :raises HeaderError: the subject or a name holds a line break.
        """
        html_part = rendered.html if count_clicks else rendered.direct_html()
        slots = rendered.slots
        check_header_value("subject", subject)
        key = issue_key(definition.publication.value, number)
        boundary = f"=_mailer_{rendered.slots.nonce}"
        publication = definition.publication.value
        feedback_id = f"Feedback-ID: {key}:{publication}:mailer:{network.sender_id}\r\n"
        pieces: list[bytes | Gap] = [
            b"Date: ",
            Gap.DATE,
            b"\r\nMessage-ID: ",
            Gap.MESSAGE_ID,
            CRLF,
            Gap.TO,
            mailbox("From", definition.from_name, definition.from_address, field="from_name"),
            header("Subject", subject),
            header("Reply-To", definition.reply_to),
            header("List-Id", f"{definition.name} <{definition.list_id}>"),
            f"List-Unsubscribe: <{base_url.rstrip('/')}/u/".encode("ascii"),
            Gap.TOKEN,
            f">,\r\n <mailto:unsubscribe@{network.domain}?subject=unsubscribe%20".encode("ascii"),
            Gap.TOKEN,
            b">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
            feedback_id.encode("ascii"),
            b"MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode("ascii"),
            f"--{boundary}\r\n".encode("ascii"),
            b'Content-Type: text/plain; charset="utf-8"\r\n',
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            *_body(rendered.text, slots.name, slots.token, Gap.TEXT_NAME),
            f"\r\n--{boundary}\r\n".encode("ascii"),
            b'Content-Type: text/html; charset="utf-8"\r\n',
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            *_body(html_part, slots.name, slots.token, Gap.HTML_NAME, slots.organisation),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        ]
        segments: list[bytes] = [b""]
        gaps: list[Gap] = []
        for piece in pieces:
            if isinstance(piece, Gap):
                gaps.append(piece)
                segments.append(b"")
            else:
                segments[-1] += piece
        return cls(segments, gaps)

    def personalise(self, personal: Personal, date: bytes | None = None) -> bytes:
        """The exact bytes for one recipient: a join of prepared bytes and encoded values."""
        token = personal.token.encode("ascii")
        name = personal.name.encode("utf-8")
        if not personal.organisation and Gap.ORGANISATION in self.gaps:
            raise ValueError("this issue counts its links: the copy needs an organisation token")
        values = (
            date or format_datetime(clock.now()).encode("ascii"),
            personal.message_id.encode("ascii"),
            format_to(personal.name, personal.email),
            token,
            _gap_value(name),
            _gap_value(html.escape(personal.name, quote=True).encode("utf-8")),
            personal.organisation.encode("ascii"),
        )
        parts = [self.segments[0]]
        for gap, segment in zip(self.gaps, self.segments[1:], strict=True):
            parts.append(values[gap])
            parts.append(segment)
        return b"".join(parts)


def _body(
    body: str, name_slot: str, token_slot: str, name_gap: Gap, organisation_slot: str = ""
) -> list[bytes | Gap]:
    """A body encoded as quoted-printable, cut at its slots; each gap on a line of its own.

    Tokens are URL-safe ASCII and stay on the line that a soft break opens for them; a
    name is quoted-printable encoded on insertion (see :func:`_gap_value`).
    """
    pieces: list[bytes | Gap] = []
    text = body.replace("\r\n", "\n")
    slots = [re.escape(name_slot), re.escape(token_slot)]
    if organisation_slot:
        slots.append(re.escape(organisation_slot))
    for number, chunk in enumerate(re.split(f"({'|'.join(slots)})", text)):
        if number % 2:
            if chunk == name_slot:
                pieces.append(name_gap)
            elif chunk == token_slot:
                pieces.extend([Gap.TOKEN, SOFT_BREAK])
            else:
                pieces.extend([Gap.ORGANISATION, SOFT_BREAK])
            continue
        encoded = _qp(chunk.encode("utf-8"))
        if chunk and not chunk.endswith("\n"):
            encoded += SOFT_BREAK
        pieces.append(encoded)
    return pieces


def proof_subject(subject: str) -> str:
    """The subject of a test send: marked so nobody mistakes it for the real issue."""
    return f"[TEST] {subject}"


@dataclass(frozen=True)
class DkimKey:
    """What DKIM signing needs; ``d=`` is the network's domain, aligned with From."""

    selector: str
    domain: str
    private_key: bytes


def dkim_key(config: Config) -> DkimKey | None:
    """The DKIM key if ``[dkim] selector`` and a private key are both set, else None."""
    selector = config.settings.dkim.selector
    key = config.secrets.dkim_private_key
    if not selector or not key:
        return None
    return DkimKey(selector, config.settings.network.domain, key)


def dkim_sign(message: bytes, *, selector: str, domain: str, private_key: bytes) -> bytes:
    """Prepend a DKIM-Signature (rsa-sha256, relaxed/relaxed) over exactly these bytes.

    The signed headers include the List-* and Feedback-ID headers (RFC 8058 section 4).
    """
    signature = dkim.sign(
        message,
        selector.encode("ascii"),
        domain.encode("ascii"),
        private_key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=list(DKIM_HEADERS),
        linesep=CRLF,
    )
    return bytes(signature) + message
