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
