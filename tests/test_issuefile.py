"""The issue file: front matter and Markdown sections, read and written without loss."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer import issuefile
from mailer.issuefile import IssueFileError
from mailer.models import Publication
from tests.rendering_fixtures import DATA, ZONE


def test_a_realistic_bulletin_is_read_fully() -> None:
    doc = issuefile.read(DATA / "bulletin.md", ZONE)
    assert doc.publication is Publication.BULLETIN
    assert doc.number == "2027/05"
    assert doc.slot_at == datetime(2027, 3, 4, 9, 30, tzinfo=UTC)
    assert [s.heading for s in doc.sections] == [
        "Updates from government and agencies",
        "Best practice",
        "LEP news",
    ]
    first = doc.sections[0].items[0]
    assert first.title == "Skills England publishes its first assessment of local skills needs"
    assert first.link == "https://www.gov.uk/government/organisations/skills-england"
    assert first.image is not None
    assert (first.image.width, first.image.height) == (1200, 600)
    assert first.image.alt.startswith("Apprentices working")
    assert first.body.startswith("Skills England has published")
    assert "- A webinar for LEP officers" in first.body
    assert len(doc.sections[2].items) == 5


@pytest.mark.parametrize("name", ["bulletin.md", "newsletter.md"])
def test_the_round_trip_loses_nothing(name: str) -> None:
    doc = issuefile.read(DATA / name, ZONE)
    again = issuefile.parse(issuefile.dump(doc, ZONE), ZONE)
    assert again == doc
    assert issuefile.dump(again, ZONE) == issuefile.dump(doc, ZONE)


def test_the_newsletter_sponsor_is_read() -> None:
    doc = issuefile.read(DATA / "newsletter.md", ZONE)
    assert doc.sponsor is not None
    assert doc.sponsor.name.startswith("Example Infrastructure Partners")
    assert doc.sponsor.logo_alt == "Example Infrastructure Partners logo"


@pytest.mark.parametrize("publication", list(Publication))
def test_the_skeleton_is_a_valid_file(publication: Publication) -> None:
    text = issuefile.skeleton(publication, "2027/07", datetime(2027, 4, 1, 8, 30, tzinfo=UTC), ZONE)
    doc = issuefile.parse(text, ZONE)
    assert doc.publication is publication
    assert doc.number == "2027/07"
    assert doc.sections
    assert (doc.sponsor is None) == publication.internal


def _front(extra: str = "", body: str = "## S\n\n### I\n\nBody\n") -> str:
    return f"---\npublication: bulletin\nsubject: Subject\n{extra}---\n\n{body}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no front matter\n", r":1: the file must start with '---'"),
        ("---\npublication: bulletin\n", "not closed"),
        ("---\npublication: [1\n---\n", "not valid YAML"),
        (_front().replace("bulletin", "digest"), "publication: expected bulletin or newsletter"),
        (_front("number: 27/5\n"), "number: expected YYYY/NN"),
        (_front("colour: blue\n"), "unknown front matter key.*colour"),
        (_front("slot: 2027-03-04\n"), "slot: give a time as well"),
        (_front("slot: soon\n"), "slot: expected a date and time"),
        (
            _front().replace("subject: Subject", 'subject: "Hi\\r\\nBcc: x@evil.example"'),
            "subject: a line break",
        ),
        (_front().replace("subject: Subject\n", ""), "subject: must not be empty"),
        (
            _front("sponsor:\n  name: Acme\n  link: https://a.example\n  blurb: x\n"),
            "the bulletin carries no sponsor slot",
        ),
        (_front(body="### Orphan\n"), r":6: an item \(###\) before any section"),
        (_front(body="## S\n\nStray text\n"), r":8: text outside an item"),
        (_front(body="## S\n\n### I\nLink: ftp://x.example\n"), r":8: Link: expected an http"),
        (_front(body="## S\n\n### I\nImage-Alt: x\n"), "Image-Alt or Image-Size without an Image"),
        (
            _front(body="## S\n\n### I\nImage: https://i.example/a.png\nImage-Size: big\n"),
            "Image-Size: expected WIDTHxHEIGHT",
        ),
        (_front(body="## S\n\n### I\nImage: http://i.example/a.png\n"), "Image: expected an http"),
        (
            _front(body="## S\n\n### I\nLink: https://a.example\nLink: https://b.example\n"),
            r":10: Link given twice",
        ),
        (_front(body="## S\n\n### I\n\n```\ncode\n"), "code block .* never closed"),
    ],
)
def test_malformed_files_are_refused_naming_line_and_field(text: str, message: str) -> None:
    with pytest.raises(IssueFileError, match=message):
        issuefile.parse(text, ZONE, "issue.md")


def test_headings_inside_code_blocks_stay_in_the_item() -> None:
    doc = issuefile.parse(_front(body="## S\n\n### I\n\n```\n## not a section\n```\n"), ZONE)
    assert len(doc.sections) == 1
    assert "## not a section" in doc.sections[0].items[0].body


def test_a_slot_without_offset_is_london_time() -> None:
    doc = issuefile.parse(_front("slot: 2027-07-01T09:30\n"), ZONE)
    assert doc.slot_at is not None
    assert doc.slot_at.astimezone(UTC) == datetime(2027, 7, 1, 8, 30, tzinfo=UTC)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(IssueFileError, match=r"absent\.md: no such file"):
        issuefile.read(tmp_path / "absent.md", ZONE)
