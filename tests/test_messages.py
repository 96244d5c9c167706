"""The bytes handed to SMTP, parsed back with the standard library against STANDARDS.md."""

from __future__ import annotations

import base64
import html
import re
import subprocess
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.messages import (
    DKIM_HEADERS,
    HeaderError,
    MessageTemplate,
    Personal,
    dkim_sign,
    issue_key,
    message_id,
)
from mailer.models import Publication
from mailer.rendering import RenderedIssue
from mailer.tokens import TokenSigner
from tests.rendering_fixtures import FIXED_SLOTS, NETWORK, WEB, content, definition, renderer

SIGNER = TokenSigner(b"test-key-" * 4)


def _rendered(publication: Publication) -> RenderedIssue:
    return renderer().render(content(publication), definition(publication), FIXED_SLOTS)


def _template(publication: Publication = Publication.BULLETIN) -> MessageTemplate:
    issue = content(publication)
    return MessageTemplate.build(
        _rendered(publication),
        definition(publication),
        NETWORK,
        subject=issue.subject,
        number=issue.number,
        base_url=WEB.base_url,
    )


def _personal(
    name: str = "Ann Lee", email: str = "ann@d2n2.example", contact: int = 42
) -> Personal:
    key = issue_key("bulletin", "2027/05")
    return Personal(
        name=name,
        email=email,
        token=SIGNER.recipient(contact, 7),
        message_id=message_id(NETWORK.domain, key, contact),
    )


def _parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.parametrize("publication", list(Publication))
def test_every_header_rule_holds(publication: Publication) -> None:
    raw = _template(publication).personalise(_personal())
    msg = _parse(raw)
    assert msg.defects == []
    for name in ("Date", "From", "To", "Subject", "Message-ID"):
        assert len(msg.get_all(name) or []) == 1, name
    assert re.fullmatch(r"<[^@<>\s]+@lepnetwork\.example>", str(msg["Message-ID"]))
    assert msg["Date"].datetime.tzinfo is not None
    sender = msg["From"].addresses
    assert len(sender) == 1
    assert sender[0].domain == NETWORK.domain
    assert sender[0].display_name == "LEP Network"
    assert not re.match(r"(?i)(re|fwd?):", str(msg["Subject"]))
    assert msg["Subject"] == content(publication).subject
    # RFC 2369 / 8058: exactly one https URI, plus mailto, with an opaque token.
    unsubscribe = str(msg["List-Unsubscribe"])
    uris = re.findall(r"<([^>]+)>", unsubscribe)
    assert [u.split(":")[0] for u in uris] == ["https", "mailto"]
    assert "ann@d2n2.example" not in unsubscribe
    assert "ann" not in uris[0].rsplit("/", 1)[1]
    assert msg.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
    list_id = definition(publication).list_id
    assert re.fullmatch(rf"LEP Network \w+ <{re.escape(list_id)}>", str(msg["List-Id"]))
    feedback = str(msg["Feedback-ID"]).split(":")
    assert feedback[1:3] == [publication.value, "mailer"]
    assert 5 <= len(feedback[3]) <= 15
    assert msg["Reply-To"] == definition(publication).reply_to


def test_the_bytes_are_crlf_7bit_and_lines_fit() -> None:
    raw = _template().personalise(_personal("Zoë Brontë-Ñúñez"))
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # quoted-printable limit


def test_the_structure_is_text_first_then_html() -> None:
    msg = _parse(_template().personalise(_personal()))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.defects == []
    text, body = (p.get_content() for p in parts)
    token = SIGNER.recipient(42, 7)
    for part_text in (text, body):
        assert f"https://lepnetwork.example/u/{token}" in part_text
        assert "LEP Network" in part_text
        assert "1 Example Street" in part_text
    assert "Dear Ann Lee," in text


@pytest.mark.parametrize(
    "name",
    [
        "Zoë Brontë-Ñúñez",
        'Ann "The Boss" O\'Neill',
        "Łukasz Żółć",
        "李小龍",
        "A & B <c>",
        "Ünïcödé " * 8,
    ],
)
def test_names_survive_in_headers_and_both_parts(name: str) -> None:
    name = name.strip()
    raw = _template().personalise(_personal(name))
    msg = _parse(raw)
    assert msg.defects == []
    to_field = raw.split(b"\r\nTo: ", 1)[1].split(b" <ann@d2n2.example>", 1)[0].decode()
    # make_header/decode_header: RFC 2047 decoding that joins adjacent encoded words as the
    # RFC says (the newer header parser adds spaces between them for long names).
    assert str(make_header(decode_header(to_field.replace("\r\n ", " ")))) == name
    text, body = (p.get_content() for p in msg.iter_parts())
    assert f"Dear {name}," in text
    assert f"Dear {html.escape(name, quote=True)}," in body


TEMPLATE = _template()


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
        min_size=1,
        max_size=60,
    ).filter(lambda n: n.strip() == n and n)
)
def test_property_any_printable_name_comes_back_exactly(name: str) -> None:
    raw = TEMPLATE.personalise(_personal(name))
    assert raw.isascii()
    msg = _parse(raw)
    assert msg.defects == []
    text = next(msg.iter_parts()).get_content()
    assert f"Dear {name}," in text


def test_the_message_id_is_unique_per_recipient_and_stable_on_resend() -> None:
    template = _template()
    first = _parse(template.personalise(_personal(contact=1)))["Message-ID"]
    again = _parse(template.personalise(_personal(contact=1)))["Message-ID"]
    other = _parse(template.personalise(_personal(contact=2)))["Message-ID"]
    assert first == again
    assert first != other


def test_a_line_break_in_the_subject_or_sender_name_is_refused() -> None:
    publication = Publication.BULLETIN
    with pytest.raises(HeaderError, match="subject: a line break"):
        MessageTemplate.build(
            _rendered(publication),
            definition(publication),
            NETWORK,
            subject="Hello\r\nBcc: everyone@example.org",
            number="2027/05",
            base_url=WEB.base_url,
        )
    hostile = definition(publication).model_copy(update={"from_name": "LEP\nBcc: x@evil.example"})
    with pytest.raises(HeaderError, match="from_name"):
        MessageTemplate.build(
            _rendered(publication),
            hostile,
            NETWORK,
            subject="S",
            number="2027/05",
            base_url=WEB.base_url,
        )


def test_personalising_does_not_render_again() -> None:
    # The per-recipient work is a join of prepared bytes: the template holds every byte of
    # the rendered issue, and only the gaps differ between two recipients.
    template = _template()
    a = template.personalise(_personal("Ann", "ann@d2n2.example", 1), date=b"D")
    b = template.personalise(_personal("Bo", "bo@d2n2.example", 2), date=b"D")
    assert len(template.segments) == len(template.gaps) + 1
    for segment in template.segments:
        assert segment in a
        assert segment in b


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "private.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True
    )
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return private.read_bytes(), base64.b64encode(der).decode()


def _dns(public: str) -> object:
    def lookup(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail2027._domainkey.lepnetwork.example."
        return f"v=DKIM1; k=rsa; p={public}".encode()

    return lookup


def test_dkim_signs_last_and_verifies_and_tampering_breaks_it(rsa_key: tuple[bytes, str]) -> None:
    private, public = rsa_key
    raw = _template().personalise(_personal("Zoë Brontë"))
    signed = dkim_sign(raw, selector="mail2027", domain="lepnetwork.example", private_key=private)
    assert signed.startswith(b"DKIM-Signature: ")
    assert signed.endswith(raw)
    header = _parse(signed)["DKIM-Signature"]
    fields = dict(part.strip().split("=", 1) for part in str(header).replace(" ", "").split(";"))
    assert fields["a"] == "rsa-sha256"
    assert fields["c"] == "relaxed/relaxed"
    assert fields["d"] == "lepnetwork.example"
    signed_headers = set(fields["h"].lower().split(":"))
    assert {h.decode() for h in DKIM_HEADERS} <= signed_headers
    assert {"list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id"} <= signed_headers
    assert dkim.verify(signed, dnsfunc=_dns(public))
    head, body = signed.split(b"\r\n\r\n", 1)
    assert b"Skills England" in body
    tampered_body = head + b"\r\n\r\n" + body.replace(b"Skills England", b"Spills England", 1)
    assert not dkim.verify(tampered_body, dnsfunc=_dns(public))
    tampered_header = signed.replace(b"/u/", b"/x/", 1)
    assert not dkim.verify(tampered_header, dnsfunc=_dns(public))


def test_message_ids_and_issue_keys_are_stable() -> None:
    assert issue_key("bulletin", "2027/05") == "bulletin-2027-05"
    assert message_id("lepnetwork.example", "bulletin-2027-05", 255) == (
        "<bulletin-2027-05.ff@lepnetwork.example>"
    )


def test_a_line_break_in_a_name_cannot_add_a_header() -> None:
    # Names are checked at import; even so, one with CR LF is encoded, never a new header.
    raw = TEMPLATE.personalise(_personal("Evil\r\nBcc: everyone@example.org"))
    msg = _parse(raw)
    assert msg["Bcc"] is None
    assert msg.defects == []
    assert b"\r\nBcc:" not in raw
