"""Contact fields: addresses normalised, roles and bases understood, names kept clean."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from mailer import contacts
from mailer.contacts import ContactFieldError
from mailer.importer import import_contacts
from mailer.models import LawfulBasis, Publication, Role
from tests.helpers import write_csv
from tests.rendering_fixtures import ZONE


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Jo.Bloggs@Example.ORG ", "jo.bloggs@example.org"),
        ("jo@bücher.example", "jo@xn--bcher-kva.example"),
        ("JO@XN--BCHER-KVA.EXAMPLE", "jo@xn--bcher-kva.example"),
    ],
)
def test_addresses_are_normalised(raw: str, expected: str) -> None:
    assert contacts.normalise_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "jo", "jo@", "@example.org", "jo@@example.org", "jo@localhost", "jo@x.test", "a b@c.org"],
)
def test_invalid_addresses_are_refused_with_the_address(raw: str) -> None:
    with pytest.raises(ContactFieldError, match="email is empty" if not raw else "invalid address"):
        contacts.normalise_email(raw)


def _library(text: str) -> str | None:
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    assert checked.ascii_email is not None
    return checked.ascii_email


_PARTS = st.text(alphabet="aZ09.-_+'@\"<> ()[],;:\\é", min_size=0, max_size=12)
_DOMAINS = st.sampled_from(
    [
        "example.org",
        "EXAMPLE.org",
        "x.test",
        "localhost",
        "xn--bcher-kva.example",
        "-a.example",
        "a_b.example",
        "bücher.example",
        "123",
        "a.example.",
        "a" * 64 + ".example",
        "[127.0.0.1]",
    ]
)


@settings(max_examples=400, deadline=None)
@given(local=_PARTS, domain=_DOMAINS | _PARTS)
def test_the_quick_path_agrees_with_email_validator_on_every_address(
    local: str, domain: str
) -> None:
    # Plain addresses skip the full validator (their domain's check is remembered): for
    # any address, that path gives the library's answer or stands aside for it.
    text = f"{local}@{domain}"
    quick = contacts._plain_address(text)
    assert quick is None or quick == _library(text)


def test_the_quick_path_takes_the_common_address_and_long_ones_go_to_the_library() -> None:
    assert contacts._plain_address("Jo.Bloggs+news@Example.ORG") == "Jo.Bloggs+news@example.org"
    long_local = "a" * 65 + "@example.org"  # the library, not strict, takes it: so do we
    assert contacts._plain_address(long_local) == _library(long_local) == long_local
    too_long = "a" * 60 + "@" + ".".join(["b" * 60] * 4) + ".example"
    assert contacts._plain_address(too_long) is None
    with pytest.raises(ContactFieldError, match="too long"):
        contacts.normalise_email(too_long)


def test_the_hash_is_stable_and_not_the_address() -> None:
    digest = contacts.email_hash("jo@example.org")
    assert digest == contacts.email_hash("jo@example.org")
    assert len(digest) == 64 and "jo" not in digest


@pytest.mark.parametrize(
    ("raw", "role"),
    [
        ("Chair", Role.CHAIR),
        ("Chief Executive/Director", Role.CHIEF_EXECUTIVE),
        ("CEO", Role.CHIEF_EXECUTIVE),
        ("comms lead", Role.COMMUNICATIONS_LEAD),
        ("communications_lead", Role.COMMUNICATIONS_LEAD),
        ("Board-Member", Role.BOARD_MEMBER),
        (" officer ", Role.OFFICER),
        ("stakeholder", Role.STAKEHOLDER),
    ],
)
def test_roles_are_read_from_common_spellings(raw: str, role: Role) -> None:
    assert contacts.parse_role(raw) is role


def test_an_unknown_role_lists_the_known_ones() -> None:
    with pytest.raises(ContactFieldError, match=r"unknown role 'janitor'.*chair.*stakeholder"):
        contacts.parse_role("janitor")


def test_lawful_basis_and_publications_cells() -> None:
    assert contacts.parse_lawful_basis("Legitimate Interest") is LawfulBasis.LEGITIMATE_INTEREST
    assert contacts.parse_lawful_basis("consent") is LawfulBasis.CONSENT
    assert contacts.parse_lawful_basis(" ") is None
    with pytest.raises(ContactFieldError, match="unknown lawful_basis"):
        contacts.parse_lawful_basis("vibes")
    assert contacts.parse_publications("bulletin; Newsletter") == frozenset(Publication)
    assert contacts.parse_publications("none") == frozenset()
    assert contacts.parse_publications("") is None
    with pytest.raises(ContactFieldError, match="unknown publication 'digest'"):
        contacts.parse_publications("digest")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("   ", "name is empty"),
        ("Jo\r\nBcc: victim@example.org", "line break or control character"),
        ('=HYPERLINK("http://x")', "spreadsheet formula"),
        ("x" * 201, "longer than 200"),
    ],
)
def test_names_that_would_cause_harm_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(ContactFieldError, match=reason):
        contacts.clean_name(raw)


def test_names_keep_their_letters_and_lose_extra_spaces() -> None:
    assert contacts.clean_name("  Zoë   O'Brien-Ñúñez ") == "Zoë O'Brien-Ñúñez"


def test_export_writes_what_import_reads_back_unchanged(loaded: Session, tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "in.csv",
        "email,name,organisation,role,publications,lawful_basis,consented_at\n"
        "ann@d2n2.example,Ann Lee,D2N2,chair,,,\n"
        "bo@d2n2.example,Bo Chan,D2N2,officer,newsletter,,\n"
        "cy@fsb.example,Cy Ng,FSB,stakeholder,newsletter,consent,2025-06-01\n",
    )
    first = import_contacts(loaded, source, zone=ZONE)
    assert first.added == 3 and not first.rejected
    out = io.StringIO()
    assert contacts.export_csv(loaded, out) == 3
    lines = out.getvalue().splitlines()
    assert lines[0] == ",".join(contacts.EXPORT_COLUMNS)
    assert lines[1].startswith("ann@d2n2.example,Ann Lee,")
    assert "bulletin;newsletter" in lines[1]
    exported = tmp_path / "exported.csv"
    exported.write_text(out.getvalue(), encoding="utf-8")
    again = import_contacts(loaded, exported, zone=ZONE)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3)
    assert not again.rejected and not again.skipped


def test_listing_filters_by_organisation_role_and_text(loaded: Session, tmp_path: Path) -> None:
    import_contacts(
        loaded,
        write_csv(
            tmp_path / "in.csv",
            "email,name,organisation,role\n"
            "ann@d2n2.example,Ann Lee,D2N2,chair\n"
            "bo@d2n2.example,Bo Chan,D2N2,officer\n"
            "cy@semlep.example,Cy Ng,SEMLEP,chair\n",
        ),
        zone=ZONE,
    )
    assert [r.email for r in contacts.iter_contacts(loaded, organisation="d2n2")] == [
        "ann@d2n2.example",
        "bo@d2n2.example",
    ]
    assert [r.email for r in contacts.iter_contacts(loaded, role=Role.CHAIR)] == [
        "ann@d2n2.example",
        "cy@semlep.example",
    ]
    assert [r.name for r in contacts.iter_contacts(loaded, search="CHAN")] == ["Bo Chan"]
    assert contacts.count_contacts(loaded, role=Role.CHAIR) == 2
    assert len(list(contacts.iter_contacts(loaded, limit=1))) == 1


def test_search_takes_percent_and_underscore_literally(loaded: Session, tmp_path: Path) -> None:
    # In SQL LIKE, _ matches any character and % any run: a search for "a_b" must not find
    # "axb", and a search for "%" finds only a name that holds one.
    import_contacts(
        loaded,
        write_csv(
            tmp_path / "in.csv",
            "email,name,organisation,role\n"
            "a_b@d2n2.example,Ann Lee,D2N2,chair\n"
            "axb@d2n2.example,Bo Chan,D2N2,officer\n"
            "cy@d2n2.example,Cy 100% Ng,D2N2,officer\n"
            "di@d2n2.example,Di\\Ng,D2N2,officer\n",
        ),
        zone=ZONE,
    )
    assert [r.email for r in contacts.iter_contacts(loaded, search="a_b")] == ["a_b@d2n2.example"]
    assert [r.name for r in contacts.iter_contacts(loaded, search="%")] == ["Cy 100% Ng"]
    assert [r.name for r in contacts.iter_contacts(loaded, search="0% n")] == ["Cy 100% Ng"]
    assert [r.name for r in contacts.iter_contacts(loaded, search="i\\n")] == ["Di\\Ng"]
    assert contacts.count_contacts(loaded, search="_") == 1
    assert contacts.count_contacts(loaded, search="@d2n2") == 4


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=cmd", "'=cmd"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("'quoted", "'quoted"),
        ("", ""),
    ],
)
def test_cells_a_spreadsheet_would_run_get_a_quote_that_import_removes(
    cell: str, safe: str
) -> None:
    # Export guards a formula-like cell with one '; reading it back removes exactly that '.
    assert contacts.to_spreadsheet_cell(cell) == safe
    assert contacts.from_spreadsheet_cell(safe) == cell
    assert contacts.from_spreadsheet_cell("''=x") == "''=x"
