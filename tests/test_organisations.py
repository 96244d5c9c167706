"""Organisations: the 38 LEPs from lists/leps.csv, external ones, lookups."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailer import organisations
from mailer.models import Organisation, OrganisationKind
from tests.conftest import LISTS


def test_the_shipped_lists_hold_38_leps_in_9_board_groups(loaded: Session) -> None:
    leps = loaded.exec(select(Organisation).where(Organisation.kind == OrganisationKind.LEP)).all()
    assert len(leps) == 38
    assert len({lep.board_group for lep in leps}) == 9
    assert all(lep.website and lep.website.startswith("https://") for lep in leps)
    assert all(lep.short_name for lep in leps)
    external = loaded.exec(select(Organisation).where(Organisation.kind != OrganisationKind.LEP))
    assert {o.kind for o in external} >= {
        OrganisationKind.GOVERNMENT,
        OrganisationKind.BUSINESS_REPRESENTATIVE,
        OrganisationKind.SKILLS,
        OrganisationKind.TRANSPORT,
        OrganisationKind.SPONSOR,
        OrganisationKind.MEDIA,
    }


def test_loading_again_changes_nothing_and_picks_up_edits(loaded: Session, tmp_path: Path) -> None:
    again = organisations.load_lists(loaded, LISTS)
    assert (again.added, again.updated) == (0, 0)
    edited = tmp_path / "lists"
    shutil.copytree(LISTS, edited)
    leps = edited / "leps.csv"
    leps.write_text(
        leps.read_text(encoding="utf-8").replace("https://www.d2n2lep.org", "https://d2n2.example"),
        encoding="utf-8",
    )
    result = organisations.load_lists(loaded, edited)
    assert (result.added, result.updated) == (0, 1)
    d2n2 = organisations.Directory.load(loaded).find("d2n2")
    assert d2n2 is not None and d2n2.website == "https://d2n2.example"


def test_a_lep_in_the_external_file_is_refused_with_file_and_line(
    session: Session, tmp_path: Path
) -> None:
    shutil.copytree(LISTS, tmp_path / "lists")
    path = tmp_path / "lists" / "organisations.csv"
    with path.open("a", encoding="utf-8") as handle:
        handle.write("Pretend LEP,PLEP,lep,https://plep.example\n")
    lines = len(path.read_text(encoding="utf-8").splitlines())
    with pytest.raises(
        organisations.OrganisationError, match=rf"organisations.csv:{lines}: .*leps.csv"
    ):
        organisations.load_lists(session, tmp_path / "lists")


def test_an_unknown_kind_is_refused_with_the_expected_ones(
    session: Session, tmp_path: Path
) -> None:
    shutil.copytree(LISTS, tmp_path / "lists")
    path = tmp_path / "lists" / "organisations.csv"
    with path.open("a", encoding="utf-8") as handle:
        handle.write("Odd Body,ODD,quango,\n")
    with pytest.raises(organisations.OrganisationError, match=r"unknown kind 'quango'.*government"):
        organisations.load_lists(session, tmp_path / "lists")


def test_lookup_by_name_or_short_name_ignores_case_and_spacing(loaded: Session) -> None:
    directory = organisations.Directory.load(loaded)
    by_short = directory.find("  gbslep ")
    by_name = directory.find("Greater Birmingham and  Solihull LEP")
    assert by_short is not None and by_short is by_name
    assert directory.find("Atlantis LEP") is None
    assert directory.suggest("Greater Birmingam and Solihull LEP") == (
        "Greater Birmingham and Solihull LEP"
    )


def test_adding_an_organisation_refuses_a_duplicate(loaded: Session) -> None:
    # Names and short names are compared case- and space-insensitively, each with both.
    org = organisations.add(loaded, "Local Radio Ltd", OrganisationKind.MEDIA, short_name="LRL")
    assert org.id is not None
    with pytest.raises(organisations.OrganisationError, match="already exists"):
        organisations.add(loaded, "local radio  ltd", OrganisationKind.MEDIA)
    with pytest.raises(organisations.OrganisationError, match="already exists"):
        organisations.add(loaded, "Something else", OrganisationKind.MEDIA, short_name="lrl")


def test_summaries_list_leps_first_with_contact_counts(loaded: Session) -> None:
    summaries = organisations.summaries(loaded)
    kinds = [s.organisation.kind for s in summaries]
    assert kinds[:38] == [OrganisationKind.LEP] * 38
    assert all(s.contacts == 0 for s in summaries)
    assert len(organisations.summaries(loaded, OrganisationKind.TRANSPORT)) == 3


def _lists(tmp_path: Path) -> Path:
    folder = tmp_path / "lists"
    shutil.copytree(LISTS, folder)
    return folder


def _append(path: Path, row: str) -> int:
    """Append a row to a list file; returns its line number."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(row + "\n")
    return len(path.read_text(encoding="utf-8").splitlines())


def test_a_name_that_is_another_organisations_short_name_cannot_be_added(
    loaded: Session,
) -> None:
    # "D2N2" is the short name of a LEP: a government body of that name would make every
    # import row naming D2N2 ambiguous, so it is refused; and the other way round.
    with pytest.raises(organisations.OrganisationError, match=r"name: 'D2N2' already exists"):
        organisations.add(loaded, "D2N2", OrganisationKind.GOVERNMENT)
    with pytest.raises(
        organisations.OrganisationError, match=r"short name: 'black country lep' already exists"
    ):
        organisations.add(
            loaded, "New Body", OrganisationKind.MEDIA, short_name="black country lep"
        )
    assert organisations.Directory.load(loaded).find("New Body") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "x" * 201}, "name: longer than 200 characters"),
        ({"short_name": "x" * 61}, "short_name: longer than 60 characters"),
        ({"website": "https://" + "x" * 300}, "website: longer than 300 characters"),
    ],
)
def test_adding_an_organisation_refuses_fields_too_long_for_the_database(
    loaded: Session, kwargs: dict[str, str], message: str
) -> None:
    # Checked before the database sees them, with the field named.
    fields = dict(kwargs)
    name = fields.pop("name", "Long Fields Ltd")
    with pytest.raises(organisations.OrganisationError, match=message):
        organisations.add(loaded, name, OrganisationKind.MEDIA, **fields)


def test_the_directory_never_resolves_an_ambiguous_key(loaded: Session) -> None:
    # Even if the table came to hold one organisation's name as another's short name (by
    # an older version, or by hand), a lookup of that key names both and picks neither.
    lep = Organisation(name="Alpha LEP", short_name="AB", kind=OrganisationKind.LEP)
    media = Organisation(name="AB", kind=OrganisationKind.MEDIA)
    directory = organisations.Directory([lep, media])
    with pytest.raises(organisations.AmbiguousOrganisation, match=r"'ab' names 2 organisations"):
        directory.find("ab")
    assert directory.find("alpha lep") is lep
    assert directory.suggest("AB") is None
    same = Organisation(name="Make UK", short_name="make uk", kind=OrganisationKind.OTHER)
    assert organisations.Directory([same]).find("MAKE UK") is same


@pytest.mark.parametrize(
    ("row", "clash"),
    [
        ("Black Country LEP,,media,", r"'black country lep' already names 'Black Country LEP'"),
        ("Derby Herald,D2N2,media,", r"'d2n2' already names 'Derby, Derbyshire"),
        ("DBT,,media,", r"'dbt' already names 'Department for Business and Trade'"),
        (
            "Federation of Small Businesses,FSB2,media,",
            r"'federation of small businesses' already names",
        ),
    ],
)
def test_a_name_or_short_name_used_twice_across_the_list_files_is_refused(
    loaded: Session, tmp_path: Path, row: str, clash: str
) -> None:
    # Naming a LEP again in organisations.csv would turn it into media (out of the bulletin);
    # a short name clash would be a database error: both are refused with file and line.
    folder = _lists(tmp_path)
    line = _append(folder / "organisations.csv", row)
    with pytest.raises(
        organisations.OrganisationError, match=rf"organisations.csv:{line}: {clash}.*csv:\d+"
    ):
        organisations.load_lists(loaded, folder)
    loaded.rollback()
    lep = organisations.Directory.load(loaded).find("Black Country LEP")
    assert lep is not None and lep.kind is OrganisationKind.LEP


def test_a_list_row_cannot_take_a_name_added_by_hand(loaded: Session, tmp_path: Path) -> None:
    # An organisation added with `orgs add` is not in the files; a new row must not clash.
    organisations.add(loaded, "Local Radio Ltd", OrganisationKind.MEDIA, short_name="LRL")
    loaded.commit()
    folder = _lists(tmp_path)
    line = _append(folder / "organisations.csv", "LRL Holdings,lrl,sponsor,")
    with pytest.raises(
        organisations.OrganisationError,
        match=rf"organisations.csv:{line}: 'lrl' already names 'Local Radio Ltd' \(LRL\) "
        "in the database",
    ):
        organisations.load_lists(loaded, folder)


def test_a_list_reload_never_moves_an_organisation_across_the_lep_line(
    loaded: Session, tmp_path: Path
) -> None:
    # The bulletin firewall rests on kind: a LEP cannot become external by a reload, nor an
    # external organisation a LEP; a change between external kinds is an ordinary update.
    organisations.add(loaded, "Local Radio Ltd", OrganisationKind.MEDIA)
    loaded.commit()
    folder = _lists(tmp_path)
    leps = folder / "leps.csv"
    line = _append(leps, "Local Radio Ltd,LRL,South East,")
    with pytest.raises(
        organisations.OrganisationError,
        match=rf"leps.csv:{line}: 'Local Radio Ltd' is stored as media; .* cannot make it lep",
    ):
        organisations.load_lists(loaded, folder)
    loaded.rollback()

    folder = _lists(tmp_path / "second")
    leps = folder / "leps.csv"
    kept = [r for r in leps.read_text(encoding="utf-8").splitlines() if "Black Country" not in r]
    leps.write_text("\n".join(kept) + "\n", encoding="utf-8")
    line = _append(folder / "organisations.csv", "Black Country LEP,Black Country,media,")
    with pytest.raises(
        organisations.OrganisationError,
        match=rf"organisations.csv:{line}: 'Black Country LEP' is stored as lep; .* make it media",
    ):
        organisations.load_lists(loaded, folder)
    loaded.rollback()

    folder = _lists(tmp_path / "third")
    external = folder / "organisations.csv"
    external.write_text(
        external.read_text(encoding="utf-8").replace(
            "Example Regional News (demo),Demo News,media",
            "Example Regional News (demo),Demo News,sponsor",
        ),
        encoding="utf-8",
    )
    assert organisations.load_lists(loaded, folder).updated == 1
    news = organisations.Directory.load(loaded).find("Demo News")
    assert news is not None and news.kind is OrganisationKind.SPONSOR


def test_an_overlong_list_field_is_refused_with_file_and_line(
    session: Session, tmp_path: Path
) -> None:
    # PostgreSQL would refuse it with a traceback; the loader names the row instead.
    folder = _lists(tmp_path)
    line = _append(folder / "organisations.csv", f"Wordy Body,{'W' * 61},media,")
    with pytest.raises(
        organisations.OrganisationError,
        match=rf"organisations.csv:{line}: short_name: longer than 60 characters",
    ):
        organisations.load_lists(session, folder)
