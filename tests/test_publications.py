"""Publication files in lists/: read, checked, and unable to widen the bulletin."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailer import publications
from mailer.models import OrganisationKind, Publication
from tests.conftest import LISTS


def test_the_shipped_publications_load() -> None:
    found = publications.load_all(LISTS)
    bulletin = found[Publication.BULLETIN]
    newsletter = found[Publication.NEWSLETTER]
    assert bulletin.audience.organisation_kinds == {OrganisationKind.LEP}
    assert OrganisationKind.LEP in newsletter.audience.organisation_kinds
    assert OrganisationKind.GOVERNMENT in newsletter.audience.organisation_kinds
    assert bulletin.list_id != newsletter.list_id


def _edited(tmp_path: Path, publication: str, old: str, new: str) -> Path:
    folder = tmp_path / "lists"
    shutil.copytree(LISTS, folder)
    path = folder / f"{publication}.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return folder


def test_a_bulletin_file_naming_outside_organisations_is_refused(tmp_path: Path) -> None:
    folder = _edited(tmp_path, "bulletin", '["lep"]', '["lep", "government"]')
    with pytest.raises(
        publications.PublicationError, match=r"bulletin.toml: .*internal.*government"
    ):
        publications.load(folder, Publication.BULLETIN)


def test_a_bad_address_names_the_file_and_key(tmp_path: Path) -> None:
    folder = _edited(tmp_path, "newsletter", '"newsletter@lepnetwork.example"', '"not an address"')
    with pytest.raises(publications.PublicationError, match=r"newsletter.toml: from_address"):
        publications.load(folder, Publication.NEWSLETTER)


def test_an_unknown_kind_names_the_file(tmp_path: Path) -> None:
    folder = _edited(tmp_path, "newsletter", '"media"', '"pirates"')
    with pytest.raises(publications.PublicationError, match=r"newsletter.toml: audience"):
        publications.load(folder, Publication.NEWSLETTER)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(publications.PublicationError, match=r"bulletin.toml: no such file"):
        publications.load(tmp_path, Publication.BULLETIN)


def test_the_rule_never_lets_an_internal_publication_reach_outside_the_leps() -> None:
    # Even a rule built in code with other kinds is narrowed for the bulletin.
    rule = publications.AudienceRule(
        organisation_kinds=frozenset({OrganisationKind.LEP, OrganisationKind.MEDIA})
    )
    assert rule.kinds_for(Publication.BULLETIN) == {OrganisationKind.LEP}
    assert rule.kinds_for(Publication.NEWSLETTER) == {OrganisationKind.LEP, OrganisationKind.MEDIA}
