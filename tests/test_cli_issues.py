"""The issue and events commands, used as staff would: compose, check, preview, approve."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from mailer import db
from mailer.models import CapturedMessage
from tests.rendering_fixtures import DATA
from tests.test_cli import run


def _ready(project: Path) -> None:
    assert run("init").exit_code == 0
    for role in ("editor", "approver"):  # edits and approvals are made by named staff
        assert run("staff", "add", f"{role}@lepnetwork.example", "--role", role).exit_code == 0


def test_compose_preview_lint_test_and_approve(project: Path, tmp_path: Path) -> None:
    _ready(project)
    skeleton = run("issue", "new", "bulletin", "--slot", "2027-03-04T09:30")
    assert skeleton.exit_code == 0, skeleton.output
    assert "number: 2027/05" in skeleton.output  # the rhythm's slot at that time
    draft = tmp_path / "draft.md"
    draft.write_text(skeleton.output, encoding="utf-8")
    created = run("issue", "import", str(draft), "--by", "editor@lepnetwork.example")
    assert created.exit_code == 0, created.output
    assert "Created issue 1: bulletin 2027/05, 2 sections, draft" in created.output
    # The untouched skeleton cannot be approved: its placeholders are lint errors.
    untouched = run("issue", "approve", "1", "--by", "approver@lepnetwork.example")
    assert untouched.exit_code == 1
    assert "the item title 'Headline of the first item' is still" in untouched.output
    assert "images.example/photo.jpg" in untouched.output
    written = skeleton.output
    for placeholder, text in {
        ": the headline story": ": skills, funding and the spring conference",
        "One honest sentence that previews the issue": "Skills England's assessment is out",
        "Headline of the first item": "Skills England publishes its assessment",
        "Two or three sentences in **Markdown**.": "Skills England has published its report.",
        "https://images.example/photo.jpg": "https://images.lepnetwork.example/skills.jpg",
        "Describe what the picture shows": "Apprentices in a college workshop",
        "A LEP success story": "D2N2 opens a skills hub",
        "What happened, where, and why.": "The hub opened in Derby on Monday.",
    }.items():
        assert placeholder in written
        written = written.replace(placeholder, text)
    draft.write_text(written, encoding="utf-8")
    edited = run("issue", "import", str(draft), "--id", "1", "--by", "editor@lepnetwork.example")
    assert edited.exit_code == 0, edited.output
    added = run(
        "events",
        "add",
        "2027-03-10",
        "LEP Network conference",
        "--location",
        "London",
        "--link",
        "https://conference.example",
    )
    assert added.exit_code == 0, added.output
    assert "LEP Network conference" in run("events", "list", "--all").output

    shown = run("issue", "show", "1")
    assert shown.exit_code == 0, shown.output
    assert "### Skills England publishes its assessment [link] [image]" in shown.output
    assert "Events in the diary for this issue: 1" in shown.output

    linted = run("issue", "lint", "1")
    assert linted.exit_code == 0, linted.output
    assert "site-https" in linted.output

    out = tmp_path / "preview"
    preview = run("issue", "preview", "1", "--out", str(out))
    assert preview.exit_code == 0, preview.output
    assert {p.name for p in out.iterdir()} == {"preview.html", "preview.txt", "preview.eml"}

    sent = run("issue", "test", "1", "--to", "editor@lepnetwork.example")
    assert sent.exit_code == 0, sent.output
    assert "sent editor@lepnetwork.example: 250 captured" in sent.output
    # A test is a copy of the internal bulletin: never to an address outside the LEPs.
    outside = run("issue", "test", "1", "--to", "journalist@news.example")
    assert outside.exit_code == 2
    assert "journalist@news.example may not see the bulletin" in outside.output

    approved = run("issue", "approve", "1", "--by", "approver@lepnetwork.example")
    assert approved.exit_code == 0, approved.output
    assert "frozen" in approved.output
    again = run("issue", "import", str(draft), "--id", "1")
    assert again.exit_code == 2
    assert "only a draft can be edited" in again.output

    exported = run("issue", "export", "1")
    assert exported.output == draft.read_text(encoding="utf-8")
    listed = run("issue", "list")
    assert "scheduled" in listed.output  # approved for its slot: the daemon sends it then
    cancelled = run("issue", "cancel", "1")
    assert cancelled.exit_code == 0
    assert run("issue", "cancel", "1").exit_code == 2


def test_the_test_send_is_captured_with_an_index_row(project: Path, db_url: str) -> None:
    _ready(project)
    assert run("calendar", "plan", "--year", "2027").exit_code == 0  # newsletter slots
    assert run("issue", "import", str(DATA / "newsletter.md")).exit_code == 0
    assert (
        run(
            "issue", "test", "1", "--to", "a@lepnetwork.example", "--to", "b@lepnetwork.example"
        ).exit_code
        == 0
    )
    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            captured = session.exec(select(CapturedMessage)).all()
    finally:
        engine.dispose()
    assert sorted(c.recipients for c in captured) == [
        "a@lepnetwork.example",
        "b@lepnetwork.example",
    ]
    assert all(c.subject.startswith("[TEST] ") for c in captured)
    # As a final delivery keeps it: the envelope sender first, as Return-Path.
    assert all(
        Path(c.path).read_bytes().startswith(b"Return-Path: <bounces@lepnetwork.example>\r\nDate: ")
        for c in captured
    )


def test_bad_input_gets_a_clear_error(project: Path, tmp_path: Path) -> None:
    _ready(project)
    broken = tmp_path / "broken.md"
    broken.write_text(
        "---\npublication: bulletin\nsubject: Fine\n---\n\n## S\n\nstray\n", encoding="utf-8"
    )
    result = run("issue", "import", str(broken))
    assert result.exit_code == 2
    assert "broken.md:8: text outside an item" in result.output
    assert "there is no issue 42" in run("issue", "show", "42").output
    assert run("issue", "test", "42", "--to", "not-an-address").exit_code == 2
    assert "invalid address" in run("issue", "test", "42", "--to", "nope@").output


def test_lint_errors_block_approval(project: Path, tmp_path: Path) -> None:
    _ready(project)
    text = (DATA / "bulletin.md").read_text(encoding="utf-8")
    no_alt = tmp_path / "no-alt.md"
    no_alt.write_text(
        text.replace("Image-Alt: Apprentices working on an engine in a college workshop\n", ""),
        encoding="utf-8",
    )
    assert run("issue", "import", str(no_alt), "--by", "editor@lepnetwork.example").exit_code == 0
    linted = run("issue", "lint", "1")
    assert linted.exit_code == 1
    assert "has no alt text" in linted.output
    refused = run("issue", "approve", "1", "--by", "approver@lepnetwork.example")
    assert refused.exit_code == 1
    assert "lint errors" in refused.output
    assert "draft" in run("issue", "list").output


def test_a_broken_template_names_file_and_line(project: Path) -> None:
    _ready(project)
    footer = project / "templates" / "partials" / "footer.txt"
    footer.write_text("{{ network.nope }}\n", encoding="utf-8")
    assert run("issue", "import", str(DATA / "bulletin.md")).exit_code == 0
    result = run("issue", "lint", "1")
    assert result.exit_code == 2
    assert "footer.txt:1" in result.output
    assert "nope" in result.output


def test_the_demo_issues_load_once_and_can_be_approved(project: Path) -> None:
    first = run("init", "--demo")
    assert "issues created: bulletin 2027/01, newsletter 2027/01" in first.output
    assert "issues created: none new" in run("init", "--demo").output
    for issue_id in ("1", "2"):
        approved = run("issue", "approve", issue_id)
        assert approved.exit_code == 0, approved.output
