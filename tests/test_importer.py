"""Contact CSV import: every bad row named by line, valid rows all-or-nothing, idempotent."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import clock, db, organisations
from mailer.contacts import email_hash, export_csv
from mailer.importer import ImportFileError, ImportReport, import_contacts, sniff
from mailer.models import (
    Contact,
    ContactStatus,
    LawfulBasis,
    Publication,
    Role,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from tests.conftest import LISTS
from tests.helpers import write_csv
from tests.rendering_fixtures import ZONE

HEADER = "email,name,organisation,role,lawful_basis,consented_at,source,publications\n"


def _subscriptions(session: Session, email: str) -> dict[Publication, SubscriptionStatus]:
    rows = session.execute(
        sa.select(col(Subscription.publication), col(Subscription.status))
        .join(Contact, col(Contact.id) == col(Subscription.contact_id))
        .where(col(Contact.email) == email)
    )
    return {publication: status for publication, status in rows}


def _count(session: Session, model: type[Contact] | type[Subscription]) -> int:
    return int(session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one())


def _problems(report: ImportReport) -> dict[int, str]:
    return {p.line: f"{p.field}: {p.reason}" for p in report.rejected}


def test_lep_and_external_contacts_get_the_right_publications_and_basis(
    loaded: Session, tmp_path: Path
) -> None:
    # A LEP contact gets both publications on legitimate interest; an external contact with
    # consent gets the newsletter only; a LEP contact can choose the newsletter alone.
    path = write_csv(
        tmp_path / "contacts.csv",
        HEADER
        + "ann@d2n2.example,Ann Lee,D2N2,Chief Executive/Director,,,,\n"
        + "bo@fsb.example,Bo Chan,Federation of Small Businesses,stakeholder,consent,"
        + "2025-03-31,sign-up form at LEP conference,\n"
        + "cy@semlep.example,Cy Ng,semlep,officer,,,,newsletter\n",
    )
    with clock.frozen(datetime(2026, 11, 24, 12, tzinfo=UTC)):
        report = import_contacts(loaded, path, zone=ZONE)
    assert (report.rows, report.added, len(report.rejected)) == (3, 3, 0)
    assert report.encoding == "utf-8"
    assert _subscriptions(loaded, "ann@d2n2.example") == {
        Publication.BULLETIN: SubscriptionStatus.ACTIVE,
        Publication.NEWSLETTER: SubscriptionStatus.ACTIVE,
    }
    assert _subscriptions(loaded, "bo@fsb.example") == {
        Publication.NEWSLETTER: SubscriptionStatus.ACTIVE
    }
    assert _subscriptions(loaded, "cy@semlep.example") == {
        Publication.NEWSLETTER: SubscriptionStatus.ACTIVE
    }
    ann = loaded.exec(select(Contact).where(Contact.email == "ann@d2n2.example")).one()
    assert ann.role is Role.CHIEF_EXECUTIVE
    assert ann.lawful_basis is LawfulBasis.LEGITIMATE_INTEREST
    assert ann.consent_source == "import:contacts.csv"
    assert ann.email_hash == email_hash("ann@d2n2.example")
    assert ann.created_at == datetime(2026, 11, 24, 12, tzinfo=UTC)
    bo = loaded.exec(select(Contact).where(Contact.email == "bo@fsb.example")).one()
    assert bo.lawful_basis is LawfulBasis.CONSENT
    assert bo.consent_source == "sign-up form at LEP conference"
    # 31 March 2025, midnight in London (BST had not begun): 00:00 UTC.
    # 31 March 2025 began at 00:00 in London, already on summer time: 23:00 UTC the day before.
    assert bo.consented_at == datetime(2025, 3, 30, 23, 0, tzinfo=UTC)


def test_every_bad_row_is_reported_with_its_line_and_the_good_rows_are_written(
    loaded: Session, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "messy.csv",
        HEADER
        + "good1@d2n2.example,Good One,D2N2,chair,,,,\n"  # line 2
        + "not-an-address,Bad Address,D2N2,chair,,,,\n"  # 3
        + "x@atlantis.example,Lost,Atlantis LEP,chair,,,,\n"  # 4
        + "y@gbslep.example,Typo,Greater Birmingam and Solihull LEP,chair,,,,\n"  # 5
        + "z@d2n2.example,Odd Role,D2N2,janitor,,,,\n"  # 6
        + "GOOD1@d2n2.example,Twice,D2N2,officer,,,,\n"  # 7
        + "gov@dbt.example,No Basis,DBT,stakeholder,,,,\n"  # 8
        + "gov2@dbt.example,Wants Bulletin,DBT,stakeholder,consent,2025-01-01,,bulletin\n"  # 9
        + "gov3@dbt.example,Undated,DBT,stakeholder,consent,,,\n"  # 10
        + "gov4@dbt.example,Future,DBT,stakeholder,consent,2099-01-01,,\n"  # 11
        + "too@d2n2.example,Too,Many,Fields,D2N2,chair,,,,\n"  # 12
        + "short@d2n2.example,Short\n"  # 13
        + '"multi@d2n2.example","Multi\nLine",D2N2,chair,,,,\n'  # 14-15
        + "after@d2n2.example,After Multi,D2N2,chair,,,,\n"  # 16
        + "\n"  # 17: blank, ignored
        + "good2@d2n2.example,Good Two,D2N2,officer,,,,newsletter\n"  # 18
        + "bad@d2n2.example,Bad Pub,D2N2,officer,,,,digest\n"  # 19
        + "date@dbt.example,Bad Date,DBT,stakeholder,consent,31/02/2025,,\n"  # 20
        + "basis@dbt.example,Bad Basis,DBT,stakeholder,whim,,,\n",  # 21
    )
    with clock.frozen(datetime(2026, 11, 24, tzinfo=UTC)):
        report = import_contacts(loaded, path, zone=ZONE)
    problems = _problems(report)
    assert problems == {
        3: problems[3],
        4: "organisation: unknown organisation 'Atlantis LEP' (see `mailer orgs list`)",
        5: "organisation: unknown organisation 'Greater Birmingam and Solihull LEP'; "
        "did you mean 'Greater Birmingham and Solihull LEP'?",
        6: problems[6],
        7: "email: good1@d2n2.example is a duplicate of line 2",
        8: problems[8],
        9: problems[9],
        10: "consented_at: consent needs the date it was given",
        11: "consented_at: '2099-01-01' is in the future",
        12: "(row): expected 8 fields, found 10 (an unquoted comma?)",
        13: "(row): expected 8 fields, found 2",
        14: "name: name contains a line break or control character",
        19: problems[19],
        20: problems[20],
        21: problems[21],
    }
    assert problems[3].startswith("email: invalid address 'not-an-address'")
    assert problems[6].startswith("role: unknown role 'janitor'")
    assert "external contact needs a lawful_basis" in problems[8]
    assert "bulletin is internal: only contacts of LEPs" in problems[9]
    assert "unknown publication 'digest'" in problems[19]
    assert "cannot read '31/02/2025' as a date" in problems[20]
    assert "unknown lawful_basis 'whim'" in problems[21]
    assert report.rows == 18  # 20 lines, one blank, one record over two lines
    assert report.added == 3
    assert {c.email for c in loaded.exec(select(Contact))} == {
        "good1@d2n2.example",
        "after@d2n2.example",
        "good2@d2n2.example",
    }


def test_reimporting_the_same_file_changes_nothing(loaded: Session, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "c.csv",
        HEADER
        + "ann@d2n2.example,Ann Lee,D2N2,chair,,,,\n"
        + "bo@fsb.example,Bo Chan,FSB,stakeholder,consent,2025-03-31T10:15:00+01:00,,\n",
    )
    import_contacts(loaded, path, zone=ZONE)
    before = [c.model_dump() for c in loaded.exec(select(Contact).order_by(col(Contact.id)))]
    subscriptions = _count(loaded, Subscription)
    again = import_contacts(loaded, path, zone=ZONE)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    assert not again.rejected and not again.skipped
    loaded.expire_all()
    after = [c.model_dump() for c in loaded.exec(select(Contact).order_by(col(Contact.id)))]
    assert after == before
    assert _count(loaded, Subscription) == subscriptions


def test_a_dry_run_writes_nothing_but_reports_everything(loaded: Session, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "c.csv",
        HEADER + "ann@d2n2.example,Ann Lee,D2N2,chair,,,,\nbad,Bad,D2N2,chair,,,,\n",
    )
    report = import_contacts(loaded, path, zone=ZONE, dry_run=True)
    assert report.dry_run and report.added == 1 and list(_problems(report)) == [3]
    assert _count(loaded, Contact) == 0
    assert _count(loaded, Subscription) == 0


def test_changed_rows_are_skipped_unless_update_is_asked(loaded: Session, tmp_path: Path) -> None:
    import_contacts(
        loaded,
        write_csv(tmp_path / "a.csv", HEADER + "ann@d2n2.example,Ann Lee,D2N2,officer,,,,\n"),
        zone=ZONE,
    )
    changed = write_csv(
        tmp_path / "b.csv", HEADER + "ann@d2n2.example,Ann Lee-Smith,D2N2,chair,,,,\n"
    )
    skipped = import_contacts(loaded, changed, zone=ZONE)
    assert skipped.updated == 0
    assert [(p.line, p.field) for p in skipped.skipped] == [(2, "name, role")]
    updated = import_contacts(loaded, changed, zone=ZONE, update=True)
    assert updated.updated == 1
    ann = loaded.exec(select(Contact).where(Contact.email == "ann@d2n2.example")).one()
    assert (ann.name, ann.role) == ("Ann Lee-Smith", Role.CHAIR)


def test_an_import_never_revives_an_ended_subscription(loaded: Session, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", HEADER + "ann@d2n2.example,Ann Lee,D2N2,chair,,,,\n")
    import_contacts(loaded, path, zone=ZONE)
    loaded.execute(
        sa.update(Subscription)
        .where(col(Subscription.publication) == Publication.BULLETIN)
        .values(status=SubscriptionStatus.UNSUBSCRIBED)
    )
    loaded.commit()
    explicit = write_csv(
        tmp_path / "b.csv", HEADER + "ann@d2n2.example,Ann Lee,D2N2,chair,,,,bulletin;newsletter\n"
    )
    for report in (
        import_contacts(loaded, path, zone=ZONE),
        import_contacts(loaded, explicit, zone=ZONE, update=True),
    ):
        assert report.unchanged == 1
    assert _subscriptions(loaded, "ann@d2n2.example")[Publication.BULLETIN] is (
        SubscriptionStatus.UNSUBSCRIBED
    )


def test_a_suppressed_address_is_not_imported(loaded: Session, tmp_path: Path) -> None:
    # An erased person leaves only a hashed suppression: their address can never come back.
    loaded.add(
        Suppression(email_hash=email_hash("gone@d2n2.example"), reason=SuppressionReason.ERASURE)
    )
    loaded.commit()
    report = import_contacts(
        loaded,
        write_csv(tmp_path / "a.csv", HEADER + "Gone@D2N2.example,Gone,D2N2,chair,,,,\n"),
        zone=ZONE,
    )
    assert _problems(report) == {
        2: "email: the address is suppressed (bounced, complained, or asked to be erased)"
    }
    assert _count(loaded, Contact) == 0


def test_windows_1252_and_bom_files_keep_their_letters(loaded: Session, tmp_path: Path) -> None:
    text = "email,name,organisation,role\nzoe@d2n2.example,Zoë Brontë £,D2N2,chair\n"
    cp1252 = write_csv(tmp_path / "excel.csv", text, encoding="cp1252")
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + text.replace("zoe@", "zoe2@").encode("utf-8"))
    assert sniff(cp1252) == ("cp1252", 2, 2)
    assert sniff(bom) == ("utf-8-sig", 2, None)
    for path in (cp1252, bom):
        report = import_contacts(loaded, path, zone=ZONE)
        assert report.added == 1, report.rejected
    assert import_contacts(loaded, bom, zone=ZONE).warnings == []
    names = {c.name for c in loaded.exec(select(Contact))}
    assert names == {"Zoë Brontë £"}


def test_semicolon_files_and_loose_headers_are_understood(loaded: Session, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "semi.csv",
        "E-mail;Full Name;Organization;Role;Notes\nann@d2n2.example;Ann Lee;D2N2;chair;x\n",
    )
    report = import_contacts(loaded, path, zone=ZONE)
    assert report.added == 1
    assert report.ignored_columns == ("notes",)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "the file is empty"),
        (b"\xff\xfee\x00m\x00", "UTF-16"),
        (b"email,name\x00,organisation,role\n", ":1: NUL byte"),
        (b"email,name,organisation\nann@d2n2.example,Ann,D2N2\n", ":1: missing column.*role"),
        (b"email,name,organisation,role\n\x81\x8d\x8f\x90\x9d\n", "neither UTF-8 nor Windows-1252"),
    ],
)
def test_an_unreadable_file_is_an_error_and_nothing_is_written(
    loaded: Session, tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImportFileError, match=message):
        import_contacts(loaded, path, zone=ZONE)
    assert _count(loaded, Contact) == 0


def test_malformed_csv_names_the_line_and_rolls_back_earlier_batches(
    loaded: Session, tmp_path: Path
) -> None:
    # Two good rows are written (batch size 1) before a runaway quote swallows the rest of
    # the file into one field larger than the CSV field limit.
    path = write_csv(
        tmp_path / "broken.csv",
        "email,name,organisation,role\n"
        "a@d2n2.example,A,D2N2,chair\n"
        "b@d2n2.example,B,D2N2,chair\n"
        'c@d2n2.example,"C,D2N2,chair\n' + "x@d2n2.example,X,D2N2,chair\n" * 20,
    )
    previous = csv.field_size_limit(200)
    try:
        with pytest.raises(ImportFileError, match=r"broken.csv:\d+: malformed CSV"):
            import_contacts(loaded, path, zone=ZONE, batch_size=1)
    finally:
        csv.field_size_limit(previous)
    assert _count(loaded, Contact) == 0


def test_a_database_failure_mid_import_leaves_nothing_half_written(
    engine: Engine, loaded: Session, tmp_path: Path
) -> None:
    # Fault injected in the real database: the third insert fails after two batches went in.
    if engine.dialect.name == "sqlite":
        trigger = (
            "CREATE TRIGGER refuse BEFORE INSERT ON contacts WHEN NEW.email LIKE 'c@%' "
            "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
        )
        statements = [trigger]
    else:
        statements = [
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
            "IF NEW.email LIKE 'c@%' THEN RAISE EXCEPTION 'injected fault'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT ON contacts "
            "FOR EACH ROW EXECUTE FUNCTION refuse()",
        ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))
    path = write_csv(
        tmp_path / "c.csv",
        "email,name,organisation,role\n"
        "a@d2n2.example,A,D2N2,chair\nb@d2n2.example,B,D2N2,chair\nc@d2n2.example,C,D2N2,chair\n",
    )
    with pytest.raises(sa.exc.DatabaseError, match="injected fault"):
        import_contacts(loaded, path, zone=ZONE, batch_size=1)
    assert _count(loaded, Contact) == 0
    assert _count(loaded, Subscription) == 0


def test_a_suppressed_status_column_stays_suppressed(loaded: Session, tmp_path: Path) -> None:
    # A row marked suppressed adds a suppressed contact with its suppression entry; importing
    # the same file again changes nothing and rejects nothing.
    path = write_csv(
        tmp_path / "c.csv",
        "email,name,organisation,role,status\nann@d2n2.example,Ann,D2N2,chair,suppressed\n",
    )
    assert import_contacts(loaded, path, zone=ZONE).added == 1
    ann = loaded.exec(select(Contact).where(Contact.email == "ann@d2n2.example")).one()
    assert ann.status is ContactStatus.SUPPRESSED
    assert loaded.exec(select(Suppression).where(Suppression.email_hash == ann.email_hash)).one()
    again = import_contacts(loaded, path, zone=ZONE)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 1)
    assert not again.rejected and not again.skipped
    assert len(loaded.exec(select(Suppression)).all()) == 1


def test_progress_reaches_the_last_line(loaded: Session, tmp_path: Path) -> None:
    rows = "".join(f"p{i}@d2n2.example,P {i},D2N2,officer\n" for i in range(25))
    path = write_csv(tmp_path / "p.csv", "email,name,organisation,role\n" + rows)
    seen: list[tuple[int, int]] = []
    import_contacts(
        loaded,
        path,
        zone=ZONE,
        batch_size=10,
        progress=lambda line, total: seen.append((line, total)),
    )
    assert [line for line, _ in seen] == [11, 21, 26]
    assert all(total == 26 for _, total in seen)


STATUS_HEADER = "email,name,organisation,role,status\n"


def _status(session: Session, email: str) -> ContactStatus:
    session.expire_all()
    return session.exec(select(Contact).where(Contact.email == email)).one().status


def test_an_import_makes_a_status_stricter_but_never_looser(
    loaded: Session, tmp_path: Path
) -> None:
    # active -> disabled -> suppressed is applied with --update (and reported as skipped
    # without it); a row saying active or disabled for a suppressed contact changes nothing.
    def row(name: str, status: str) -> Path:
        return write_csv(
            tmp_path / f"{name}.csv", STATUS_HEADER + f"ann@d2n2.example,Ann,D2N2,chair,{status}\n"
        )

    import_contacts(loaded, row("active", "active"), zone=ZONE)
    disabled = row("disabled", "disabled")
    skipped = import_contacts(loaded, disabled, zone=ZONE)
    assert [(p.line, p.field) for p in skipped.skipped] == [(2, "status")]
    assert _status(loaded, "ann@d2n2.example") is ContactStatus.ACTIVE
    updated = import_contacts(loaded, disabled, zone=ZONE, update=True)
    assert (updated.updated, updated.unchanged) == (1, 0)
    assert _status(loaded, "ann@d2n2.example") is ContactStatus.DISABLED
    assert import_contacts(loaded, row("active-again", "active"), zone=ZONE).unchanged == 1
    suppressed = import_contacts(loaded, row("suppressed", "Suppressed"), zone=ZONE, update=True)
    assert suppressed.updated == 1
    assert _status(loaded, "ann@d2n2.example") is ContactStatus.SUPPRESSED
    assert loaded.exec(select(Suppression)).one().email_hash == email_hash("ann@d2n2.example")
    for looser in ("active", "disabled"):
        report = import_contacts(loaded, row(f"looser-{looser}", looser), zone=ZONE, update=True)
        assert (report.updated, report.unchanged, report.skipped) == (0, 1, [])
        assert _status(loaded, "ann@d2n2.example") is ContactStatus.SUPPRESSED


def test_a_contact_suppressed_by_a_bounce_is_compared_not_rejected(
    loaded: Session, tmp_path: Path
) -> None:
    # A contact still on file whose address has a suppression entry is not an erased person:
    # the row is compared as usual and marking it suppressed adds no second entry.
    path = write_csv(tmp_path / "a.csv", STATUS_HEADER + "bo@d2n2.example,Bo,D2N2,chair,\n")
    import_contacts(loaded, path, zone=ZONE)
    loaded.add(
        Suppression(email_hash=email_hash("bo@d2n2.example"), reason=SuppressionReason.BOUNCE)
    )
    loaded.commit()
    assert import_contacts(loaded, path, zone=ZONE).unchanged == 1
    marked = write_csv(
        tmp_path / "b.csv", STATUS_HEADER + "bo@d2n2.example,Bo,D2N2,chair,suppressed\n"
    )
    assert import_contacts(loaded, marked, zone=ZONE, update=True).updated == 1
    assert _status(loaded, "bo@d2n2.example") is ContactStatus.SUPPRESSED
    assert len(loaded.exec(select(Suppression)).all()) == 1


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ("0001-01-01T00:00:00+01:00", "'0001-01-01T00:00:00+01:00' is before 2000-01-01"),
        ("0001-01-01", "'0001-01-01' is before 2000-01-01"),
        ("31/12/1999", "'31/12/1999' is before 2000-01-01"),
        ("9999-12-31T23:59:59-05:00", "'9999-12-31T23:59:59-05:00' is in the future"),
    ],
)
def test_a_date_out_of_range_is_a_row_error_not_a_crash(
    loaded: Session, tmp_path: Path, when: str, reason: str
) -> None:
    # Dates Python can parse but not convert to UTC (or not plausibly consent dates) reject
    # their row; the other rows are still written.
    path = write_csv(
        tmp_path / "c.csv",
        HEADER
        + f"old@fsb.example,Old,FSB,stakeholder,consent,{when},,\n"
        + "new@fsb.example,New,FSB,stakeholder,consent,2000-01-01,,\n",
    )
    with clock.frozen(datetime(2026, 11, 24, tzinfo=UTC)):
        report = import_contacts(loaded, path, zone=ZONE)
    assert _problems(report)[2].startswith(f"consented_at: {reason}")
    assert report.added == 1


def test_too_long_source_or_wording_rejects_the_row(loaded: Session, tmp_path: Path) -> None:
    # Nothing is cut short silently: an over-long source or consent wording names its field.
    path = write_csv(
        tmp_path / "c.csv",
        "email,name,organisation,role,source,consent_wording\n"
        f"a@d2n2.example,A,D2N2,chair,{'s' * 201},\n"
        f"b@d2n2.example,B,D2N2,chair,,{'w' * 61}\n"
        f"c@d2n2.example,C,D2N2,chair,{'s' * 200},{'w' * 60}\n",
    )
    report = import_contacts(loaded, path, zone=ZONE)
    assert _problems(report) == {
        2: "source: source is longer than 200 characters (201)",
        3: "consent_wording: consent_wording is longer than 60 characters (61)",
    }
    c = loaded.exec(select(Contact)).one()
    assert (c.consent_source, c.consent_wording_version) == ("s" * 200, "w" * 60)


def test_a_corrected_row_after_a_rejected_one_is_not_a_duplicate(
    loaded: Session, tmp_path: Path
) -> None:
    # Only a row that passed every check claims its address: fixing a row by adding a
    # corrected copy below it works.
    path = write_csv(
        tmp_path / "c.csv",
        "email,name,organisation,role\n"
        "ann@d2n2.example,Ann,Atlantis,chair\n"
        "ann@d2n2.example,Ann,D2N2,chair\n"
        "ANN@d2n2.example,Ann,D2N2,officer\n",
    )
    report = import_contacts(loaded, path, zone=ZONE)
    assert report.added == 1
    assert set(_problems(report)) == {2, 4}
    assert _problems(report)[4] == "email: ann@d2n2.example is a duplicate of line 3"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("email,name,organisation,role,email", r":1: email is named more than once: "),
        (
            "Email,name,organisation,role,E-mail",
            r":1: email is named more than once: 'Email' \(column 1 \(A\)\), "
            r"'E-mail' \(column 5 \(E\)\)",
        ),
        ("email,name,org,role,Organization", r"organisation is named more than once"),
    ],
)
def test_a_column_named_twice_is_refused(
    loaded: Session, tmp_path: Path, header: str, message: str
) -> None:
    # Two columns that mean the same field make every row ambiguous: the file is refused.
    path = write_csv(tmp_path / "c.csv", header + "\nann@d2n2.example,Ann,D2N2,chair,x\n")
    with pytest.raises(ImportFileError, match=message):
        import_contacts(loaded, path, zone=ZONE)
    assert _count(loaded, Contact) == 0


def test_unnamed_columns_are_ignored_only_when_empty(loaded: Session, tmp_path: Path) -> None:
    # Spreadsheets often save trailing empty columns: harmless. A value under a column with
    # no name cannot be placed, so the file is refused naming the column.
    trailing = write_csv(
        tmp_path / "trailing.csv",
        "email,name,organisation,role,,Notes,\nann@d2n2.example,Ann,D2N2,chair,,x,\n",
    )
    report = import_contacts(loaded, trailing, zone=ZONE)
    assert report.added == 1
    assert report.ignored_columns == ("notes",)
    filled = write_csv(
        tmp_path / "filled.csv",
        "email,name,organisation,role,\n"
        "bo@d2n2.example,Bo,D2N2,chair,\n"
        "cy@d2n2.example,Cy,D2N2,chair,oops\n",
    )
    with pytest.raises(ImportFileError, match=r"filled.csv:3: column 5 \(E\) has no name"):
        import_contacts(loaded, filled, zone=ZONE)
    assert _count(loaded, Contact) == 1


def test_one_windows_1252_byte_in_a_utf8_file_is_warned_about(
    loaded: Session, tmp_path: Path
) -> None:
    # A file of UTF-8 with one Windows-1252 byte is read as Windows-1252 (so UTF-8 letters
    # come out garbled): the report says which line broke UTF-8.
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        "email,name,organisation,role\nann@d2n2.example,Zoë,D2N2,chair\n".encode()
        + "bo@d2n2.example,Brontë,D2N2,chair\n".encode("cp1252")
    )
    report = import_contacts(loaded, path, zone=ZONE)
    assert report.encoding == "cp1252"
    assert report.warnings == [
        "line 3 is not UTF-8; the file was read as Windows-1252: check accented names"
    ]
    # Far into a large file, past the first chunk read, the line is still right.
    big = tmp_path / "big.csv"
    rows = "".join(f"p{i}@d2n2.example,P {i},D2N2,officer\n" for i in range(40_000))
    big.write_bytes(("email,name,organisation,role\n" + rows).encode() + b"x@d2n2.example,\xe9\n")
    assert sniff(big) == ("cp1252", 40_002, 40_002)


def test_a_publication_both_wanted_and_unsubscribed_is_a_row_error(
    loaded: Session, tmp_path: Path
) -> None:
    # New contacts start unsubscribed from what `unsubscribed` names; a default set of
    # publications leaves those out; naming one in both columns is a contradiction.
    header = "email,name,organisation,role,publications,unsubscribed\n"
    path = write_csv(
        tmp_path / "c.csv",
        header
        + "ann@d2n2.example,Ann,D2N2,chair,,bulletin\n"
        + "bo@d2n2.example,Bo,D2N2,chair,bulletin,bulletin\n"
        + "cy@d2n2.example,Cy,D2N2,chair,none,bulletin;newsletter\n"
        + "di@d2n2.example,Di,D2N2,chair,,digest\n",
    )
    report = import_contacts(loaded, path, zone=ZONE)
    assert _problems(report)[3] == "unsubscribed: bulletin is both in publications and unsubscribed"
    assert _problems(report)[5].startswith("unsubscribed: unknown publication 'digest'")
    assert _subscriptions(loaded, "ann@d2n2.example") == {
        Publication.BULLETIN: SubscriptionStatus.UNSUBSCRIBED,
        Publication.NEWSLETTER: SubscriptionStatus.ACTIVE,
    }
    assert _subscriptions(loaded, "cy@d2n2.example") == {
        Publication.BULLETIN: SubscriptionStatus.UNSUBSCRIBED,
        Publication.NEWSLETTER: SubscriptionStatus.UNSUBSCRIBED,
    }
    # An existing contact is never changed by the column.
    existing = write_csv(
        tmp_path / "e.csv", header + "ann@d2n2.example,Ann,D2N2,chair,,newsletter\n"
    )
    again = import_contacts(loaded, existing, zone=ZONE, update=True)
    assert (again.updated, again.unchanged) == (0, 1)
    assert _subscriptions(loaded, "ann@d2n2.example")[Publication.NEWSLETTER] is (
        SubscriptionStatus.ACTIVE
    )


def test_export_then_import_into_a_fresh_database_keeps_history_and_formulas(
    loaded: Session, tmp_path: Path
) -> None:
    # Ended subscriptions survive the round trip, and a source that looks like a formula is
    # exported with a protective ' that the importer takes off again.
    path = write_csv(
        tmp_path / "in.csv",
        HEADER
        + "ann@d2n2.example,Ann,D2N2,chair,,,=cmd,\n"
        + "bo@d2n2.example,Bo,D2N2,chair,,,'+quoted,\n"
        + "cy@fsb.example,Cy,FSB,stakeholder,consent,2025-01-01,@home,\n",
    )
    assert import_contacts(loaded, path, zone=ZONE).added == 3
    loaded.execute(
        sa.update(Subscription)
        .where(col(Subscription.publication) == Publication.BULLETIN)
        .values(status=SubscriptionStatus.UNSUBSCRIBED)
    )
    loaded.execute(
        sa.update(Subscription)
        .where(
            col(Subscription.contact_id)
            == select(Contact.id).where(Contact.email == "cy@fsb.example").scalar_subquery()
        )
        .values(status=SubscriptionStatus.BOUNCED)
    )
    loaded.commit()
    exported = tmp_path / "exported.csv"
    with exported.open("w", encoding="utf-8", newline="") as handle:
        assert export_csv(loaded, handle) == 3
    with exported.open(encoding="utf-8", newline="") as handle:
        rows = {r["email"]: r for r in csv.DictReader(handle)}
    assert rows["ann@d2n2.example"]["source"] == "'=cmd"
    assert rows["bo@d2n2.example"]["source"] == "'+quoted"
    assert rows["ann@d2n2.example"]["unsubscribed"] == "bulletin"
    assert rows["cy@fsb.example"]["publications"] == "none"
    assert rows["cy@fsb.example"]["unsubscribed"] == "newsletter"
    assert import_contacts(loaded, exported, zone=ZONE).unchanged == 3

    fresh = db.create_engine(f"sqlite:///{tmp_path / 'fresh' / 'mailer.db'}")
    try:
        db.init_schema(fresh)
        with Session(fresh) as other:
            organisations.load_lists(other, LISTS)
            other.commit()
            report = import_contacts(other, exported, zone=ZONE)
            assert (report.added, report.rejected) == (3, [])
            for email in ("ann@d2n2.example", "bo@d2n2.example"):
                assert _subscriptions(other, email) == {
                    Publication.BULLETIN: SubscriptionStatus.UNSUBSCRIBED,
                    Publication.NEWSLETTER: SubscriptionStatus.ACTIVE,
                }
            assert _subscriptions(other, "cy@fsb.example") == {
                Publication.NEWSLETTER: SubscriptionStatus.UNSUBSCRIBED
            }
            sources = {c.email: c.consent_source for c in other.exec(select(Contact))}
            assert sources == {
                "ann@d2n2.example": "=cmd",
                "bo@d2n2.example": "+quoted",
                "cy@fsb.example": "@home",
            }
    finally:
        fresh.dispose()


def test_a_large_import_keeps_the_planner_on_the_address_index(
    loaded: Session, tmp_path: Path
) -> None:
    """An import into an empty table still has the planner's statistics of an empty table
    (PostgreSQL), so each batch's lookup of the addresses on file would read the whole
    table (100k contacts went from 37 s to 11 s): the import's transaction finds rows by
    index, without an ANALYZE's lock on the tables, and only for its own transaction."""
    rows = "".join(f"reader{n}@d2n2.example,Reader {n},D2N2,officer\n" for n in range(2500))
    path = write_csv(tmp_path / "many.csv", "email,name,organisation,role\n" + rows)
    postgres = loaded.get_bind().dialect.name == "postgresql"
    explain = sa.text("EXPLAIN SELECT id FROM contacts WHERE email = ANY(:emails)")
    lookup = {"emails": [f"reader{n}@d2n2.example" for n in range(1000)]}
    plans: list[str] = []

    def progress(line: int, total: int) -> None:  # inside the import's transaction
        if postgres:
            plans.append("\n".join(loaded.execute(explain, lookup).scalars()))

    report = import_contacts(loaded, path, zone=ZONE, batch_size=1000, progress=progress)
    assert report.added == 2500
    found = loaded.execute(
        sa.select(sa.func.count())
        .where(
            db.among(loaded.connection(), sa.column("email", sa.String), ["reader7@d2n2.example"])
        )
        .select_from(sa.table("contacts"))
    ).scalar_one()
    assert found == 1
    if not postgres:
        return
    assert plans and all("uq_contacts_email" in plan for plan in plans), plans
    after = "\n".join(loaded.execute(explain, lookup).scalars())
    assert "Seq Scan" in after, after  # the setting ended with the import's transaction
