"""The console's structured issue editor, without JavaScript (plain form posts): block
operations, field errors that keep what was typed, the same issue file as the raw editor,
the autosave, library images, and the raw view kept as the advanced one."""

from __future__ import annotations

import html
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mailer import issuefile, issues
from mailer.models import Issue
from tests.outbox_fixtures import drafted
from tests.rendering_fixtures import ZONE
from tests.web_fixtures import Site, build_site, csrf_of, login

FORM = "issue-form"


class _Fields(HTMLParser):
    """The fields a browser would send for the form ``issue-form`` (no button pressed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: dict[str, str] = {}
        self._inside = False
        self._select: str | None = None
        self._first: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._inside = found.get("id") == FORM
        if not self._inside:
            return
        name = found.get("name", "")
        if tag == "input" and name and found.get("type") not in ("radio", "checkbox"):
            self.fields[name] = found.get("value", "")
        elif tag == "textarea":
            self._textarea = name
            self.fields[name] = ""
        elif tag == "select":
            self._select, self._first = name, None
        elif tag == "option" and self._select is not None:
            if self._first is None:
                self._first = found.get("value", "")
                self.fields[self._select] = self._first
            if "selected" in found:
                self.fields[self._select] = found.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            # The HTML parser drops the newline right after <textarea>; so does a browser.
            self.fields[self._textarea] += data


def fields_of(page: str) -> dict[str, str]:
    parser = _Fields()
    parser.feed(page)
    assert parser.fields, "no editor form on the page"
    return parser.fields


@pytest.fixture
def site(engine: Engine, tmp_path: Path) -> Site:
    return build_site(engine, tmp_path)


@pytest.fixture
def draft(site: Site) -> Issue:
    with Session(site.engine, expire_on_commit=False) as session:
        return drafted(session)


@pytest.fixture
def editor(site: Site) -> TestClient:
    client = site.client()
    login(client, "editor")
    return client


def _exported(site: Site, issue_id: int) -> str:
    with Session(site.engine) as session:
        issue = issues.get(session, issue_id)
        return issuefile.dump(issues.document(session, issue), ZONE)


def _titles(fields: dict[str, str]) -> list[list[str]]:
    found: dict[int, dict[int, str]] = {}
    for name, value in fields.items():
        matched = re.fullmatch(r"s(\d+)\.i(\d+)\.title", name)
        if matched:
            found.setdefault(int(matched.group(1)), {})[int(matched.group(2))] = value
    return [[found[s][j] for j in sorted(found[s])] for s in sorted(found)]


def test_the_editor_shows_the_issue_as_fields_and_saving_them_unchanged_changes_nothing(
    site: Site, draft: Issue, editor: TestClient
) -> None:
    assert draft.id is not None
    before = _exported(site, draft.id)
    page = editor.get(f"/staff/issues/{draft.id}")
    assert page.status_code == 200
    fields = fields_of(page.text)
    assert fields["subject"] == draft.subject
    assert fields["slot"] == "2027-03-04T09:30:00+00:00"
    assert (
        _titles(fields)[0][0]
        == "Skills England publishes its first assessment of local skills needs"
    )
    assert page.text.count("<iframe sandbox") == 2
    assert f'href="/staff/issues/{draft.id}/raw"' in page.text
    saved = editor.post(f"/staff/issues/{draft.id}", data={**fields, "op": "save"})
    assert saved.status_code == 303, saved.text
    assert _exported(site, draft.id) == before


def test_each_block_operation_is_a_plain_post_that_changes_the_form_and_saves_nothing(
    site: Site, draft: Issue, editor: TestClient
) -> None:
    assert draft.id is not None
    url = f"/staff/issues/{draft.id}"
    before = _exported(site, draft.id)
    fields = fields_of(editor.get(url).text)
    start = _titles(fields)
    assert [len(items) for items in start] == [3, 2, 5]

    def do(op: str, form: dict[str, str]) -> dict[str, str]:
        answer = editor.post(url, data={**form, "op": op})
        assert answer.status_code == 200, (op, answer.text)
        return fields_of(answer.text)

    fields = do("add-section", fields)
    assert _titles(fields)[3] == [""] and fields["s3.heading"] == ""
    fields["s3.heading"] = "A section typed, not yet saved"
    fields = do("add-item:3", fields)
    assert _titles(fields)[3] == ["", ""]
    assert fields["s3.heading"] == "A section typed, not yet saved"  # typing kept
    fields = do("down:0.0", fields)
    assert _titles(fields)[0] == [start[0][1], start[0][0], start[0][2]]
    fields = do("up:0.1", fields)
    assert _titles(fields)[0] == start[0]
    fields = do("up:3", fields)
    assert fields["s2.heading"] == "A section typed, not yet saved"
    fields = do("down:2", fields)
    assert fields["s3.heading"] == "A section typed, not yet saved"
    fields = do("remove:0.1", fields)
    assert _titles(fields)[0] == [start[0][0], start[0][2]]
    fields = do("remove:3", fields)
    assert len(_titles(fields)) == 3
    assert do("up:0", fields) == fields  # the first section cannot go higher
    assert do("remove:9.9", fields) == fields  # no such block: nothing happens
    assert _exported(site, draft.id) == before  # nothing was saved

    # What was done is autosaved: the editor shows it again, until discarded.
    again = editor.get(url)
    assert "Your unsaved changes, autosaved at" in again.text
    assert _titles(fields_of(again.text))[0] == [start[0][0], start[0][2]]
    discarded = editor.post(url, data={**fields, "op": "discard"})
    assert discarded.status_code == 303
    assert _titles(fields_of(editor.get(url).text)) == start


def test_a_field_error_marks_the_field_and_keeps_everything_typed(
    site: Site, draft: Issue, editor: TestClient
) -> None:
    assert draft.id is not None
    url = f"/staff/issues/{draft.id}"
    before = _exported(site, draft.id)
    fields = fields_of(editor.get(url).text)
    fields["subject"] = "A subject typed with care"
    fields["s0.i1.link"] = "www.no-scheme.example"
    fields["s1.heading"] = ""
    fields["s0.i0.body"] = "A first line.\n## Not a heading here"
    answer = editor.post(url, data={**fields, "op": "save"})
    assert answer.status_code == 422
    shown = fields_of(answer.text)
    assert shown["subject"] == "A subject typed with care"
    assert shown["s0.i1.link"] == "www.no-scheme.example"
    assert shown["s0.i0.body"] == "A first line.\n## Not a heading here"
    for field, message in {
        "s0-i1-link": "Item 1.2 link: give a web address starting with https://",
        "s1-heading": "Section 2 heading: must not be empty",
        "s0-i0-body": "a line starting with ## or ### would begin a new section or item",
    }.items():
        tag = re.search(rf'<(?:input|textarea)[^>]*id="{field}"[^>]*>', answer.text)
        assert tag is not None, field
        assert 'aria-invalid="true"' in tag.group(0), field
        assert f"{field}-error" in tag.group(0), field  # aria-describedby the message
        error = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', answer.text)
        assert error is not None and message in html.unescape(error.group(1)), field
    assert "3 fields need attention" in answer.text
    subject = re.search(r'<input[^>]*id="subject"[^>]*>', answer.text)
    assert subject is not None and 'aria-invalid="true"' not in subject.group(0)
    assert _exported(site, draft.id) == before


def test_a_slot_that_is_not_open_is_an_error_on_the_slot_field(
    site: Site, draft: Issue, editor: TestClient
) -> None:
    url = f"/staff/issues/{draft.id}"
    fields = fields_of(editor.get(url).text)
    fields["slot"] = "2027-08-12T09:30"  # forged: August has no bulletin
    answer = editor.post(url, data={**fields, "op": "save"})
    assert answer.status_code == 422
    error = re.search(r'<p class="field-error" id="slot-error">(.*?)</p>', answer.text)
    assert error is not None
    assert "there is no bulletin slot at Thu 12 Aug 2027 09:30" in html.unescape(error.group(1))


def test_saving_the_form_writes_the_issue_file_the_raw_editor_would(
    site: Site, draft: Issue, editor: TestClient
) -> None:
    assert draft.id is not None
    url = f"/staff/issues/{draft.id}"
    original = _exported(site, draft.id)
    # By hand, in the file: a new subject, and a new last section with one item.
    by_hand = re.sub(
        "^subject: .*$",
        "subject: Skills, growth and the spring conference",
        original,
        count=1,
        flags=re.M,
    ) + (
        "\n## Dates for the diary\n\n### Board members' induction day\n"
        "Link: https://www.lepnetwork.example/induction\n"
        "Image: https://images.lepnetwork.example/induction.jpg\n"
        "Image-Alt: New board members around a table\nImage-Size: 600x300\n\n"
        "Book by **Friday**:\n\n- Leeds\n- Bristol\n"
    )
    token = csrf_of(editor.get(f"{url}/raw").text)
    assert editor.post(f"{url}/raw", data={"csrf": token, "text": by_hand}).status_code == 303
    raw_result = _exported(site, draft.id)
    assert "Dates for the diary" in raw_result

    # Back to the original, then the same changes in the form.
    assert editor.post(f"{url}/raw", data={"csrf": token, "text": original}).status_code == 303
    fields = fields_of(
        editor.post(url, data={**fields_of(editor.get(url).text), "op": "add-section"}).text
    )
    fields.update(
        {
            "subject": "Skills, growth and the spring conference",
            "s3.heading": "Dates for the diary",
            "s3.i0.title": "Board members' induction day",
            "s3.i0.link": "https://www.lepnetwork.example/induction",
            "s3.i0.image": "https://images.lepnetwork.example/induction.jpg",
            "s3.i0.image_alt": "New board members around a table",
            "s3.i0.image_size": "600x300",
            "s3.i0.body": "Book by **Friday**:\r\n\r\n- Leeds\r\n- Bristol\r\n",
        }
    )
    assert editor.post(url, data={**fields, "op": "save"}).status_code == 303
    assert _exported(site, draft.id) == raw_result


def test_the_raw_view_still_edits_the_file(site: Site, draft: Issue, editor: TestClient) -> None:
    assert draft.id is not None
    url = f"/staff/issues/{draft.id}/raw"
    page = editor.get(url)
    assert page.status_code == 200
    text = _exported(site, draft.id)
    assert html.escape(text, quote=False).split("\n")[2] in page.text
    token = csrf_of(page.text)
    changed = text.replace("preheader:", "preheader: Edited in the file;", 1)
    saved = editor.post(url, data={"csrf": token, "text": changed})
    assert (saved.status_code, saved.headers["location"]) == (303, f"/staff/issues/{draft.id}")
    assert "Edited in the file;" in _exported(site, draft.id)
    broken = editor.post(url, data={"csrf": token, "text": "no front matter"})
    assert broken.status_code == 422
    assert "must start with &#39;---&#39;" in broken.text and "no front matter" in broken.text


def test_the_autosave_keeps_invalid_typing_and_the_preview_shows_a_valid_draft(
    site: Site, draft: Issue, editor: TestClient
) -> None:
    assert draft.id is not None
    url = f"/staff/issues/{draft.id}"
    before = _exported(site, draft.id)
    fields = fields_of(editor.get(url).text)
    fields["s0.i0.link"] = "not a link"
    kept = editor.post(f"{url}/autosave", data=fields).json()
    assert kept["valid"] is False and "s0.i0.link" in kept["errors"]
    assert fields_of(editor.get(url).text)["s0.i0.link"] == "not a link"  # nothing lost
    assert (
        "Draft subject, seen in the preview" not in editor.get(f"{url}/preview.html?draft=1").text
    )

    fields["s0.i0.link"] = "https://www.gov.uk/skills"
    fields["s0.i0.title"] = "Draft headline, seen in the preview"
    assert editor.post(f"{url}/autosave", data=fields).json()["valid"] is True
    assert "Draft headline, seen in the preview" in editor.get(f"{url}/preview.html?draft=1").text
    assert "Draft headline, seen in the preview" not in editor.get(f"{url}/preview.html").text
    assert _exported(site, draft.id) == before  # an autosave is not a save
    # Another member of staff sees the issue as saved, not someone else's autosave.
    approver = site.client()
    login(approver, "approver")
    assert "Draft headline" not in approver.get(url).text


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (11, 61, 92)).save(out, "PNG")
    return out.getvalue()


def test_an_image_picked_from_the_library_fills_the_item_image(
    site: Site, draft: Issue, editor: TestClient
) -> None:
    assert draft.id is not None
    token = csrf_of(editor.get("/staff/media").text)
    uploaded = editor.post(
        "/staff/media",
        data={"csrf": token, "alt": "Apprentices in a college workshop"},
        files={"file": ("workshop.png", _png(640, 320), "image/png")},
    )
    assert uploaded.status_code == 303, uploaded.text
    page = editor.get(f"/staff/issues/{draft.id}")
    [name] = re.findall(r'<option value="([0-9a-f]{64}\.png)"', page.text)[:1]
    fields = fields_of(page.text)
    fields["s0.i1.media"] = name
    fields["s0.i1.image"] = fields["s0.i1.image_alt"] = fields["s0.i1.image_size"] = ""
    assert (
        editor.post(f"/staff/issues/{draft.id}", data={**fields, "op": "save"}).status_code == 303
    )
    text = _exported(site, draft.id)
    assert f"Image: https://lepnetwork.example/media/{name}\n" in text
    assert "Image-Alt: Apprentices in a college workshop\nImage-Size: 640x320\n" in text
    shown = fields_of(editor.get(f"/staff/issues/{draft.id}").text)
    assert (shown["s0.i1.media"], shown["s0.i1.media_was"]) == (name, name)
    # Choosing "none" again takes the library image away.
    shown["s0.i1.media"] = ""
    assert editor.post(f"/staff/issues/{draft.id}", data={**shown, "op": "save"}).status_code == 303
    assert name not in _exported(site, draft.id)


def test_the_newsletter_sponsor_is_fields_too_and_its_logo_can_come_from_the_library(
    site: Site, editor: TestClient
) -> None:
    with Session(site.engine, expire_on_commit=False) as session:
        letter = drafted(session, "newsletter.md")
    assert letter.id is not None
    url = f"/staff/issues/{letter.id}"
    before = _exported(site, letter.id)
    fields = fields_of(editor.get(url).text)
    assert fields["sponsor.name"] and fields["sponsor.link"].startswith("https://")
    assert editor.post(url, data={**fields, "op": "save"}).status_code == 303
    assert _exported(site, letter.id) == before
    token = csrf_of(editor.get("/staff/media").text)
    editor.post(
        "/staff/media",
        data={"csrf": token, "alt": "The sponsor's logo"},
        files={"file": ("logo.png", _png(300, 100), "image/png")},
    )
    page = editor.get(url)
    [name] = re.findall(r'<option value="([0-9a-f]{64}\.png)"', page.text)[:1]
    fields = {**fields_of(page.text), "sponsor.media": name}
    assert editor.post(url, data={**fields, "op": "save"}).status_code == 303
    text = _exported(site, letter.id)
    assert f"logo: https://lepnetwork.example/media/{name}\n" in text
    assert "logo_alt: The sponsor's logo\n" in text
    fields = {**fields_of(editor.get(url).text), "sponsor.link": ""}
    refused = editor.post(url, data={**fields, "op": "save"})
    assert refused.status_code == 422 and 'id="sponsor-link-error"' in refused.text
