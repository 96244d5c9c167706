"""The media library: images verified by decoding them with Pillow, stored by the hash of
their bytes under var/media/, served from /media/ for a year; nothing else is taken or
served."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailer.models import AuditEntry, MediaImage
from mailer.web.app import create_app
from tests.web_fixtures import Site, build_site, csrf_of, login


def _image(kind: str, width: int, height: int, *, noise: bool = False) -> bytes:
    out = io.BytesIO()
    picture = (
        Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
        if noise
        else Image.new("RGB", (width, height), (29, 107, 55))
    )
    picture.save(out, kind)
    return out.getvalue()


@pytest.fixture
def site(engine: Engine, tmp_path: Path) -> Site:
    built = build_site(engine, tmp_path)
    # A limit of 1 MB, to try a larger image without sending megabytes.
    web = built.config.settings.web.model_copy(update={"image_limit_mb": 1})
    config = replace(built.config, settings=built.config.settings.model_copy(update={"web": web}))
    app = create_app(config, engine, transport=built.app.state.ctx.new_transport)
    return Site(app, config, engine, built.mail)


@pytest.fixture
def editor(site: Site) -> TestClient:
    client = site.client()
    login(client, "editor")
    return client


def _upload(client: TestClient, name: str, data: bytes, alt: str = "A picture") -> Any:
    token = csrf_of(client.get("/staff/media").text)
    return client.post(
        "/staff/media",
        data={"csrf": token, "alt": alt},
        files={"file": (name, data, "application/octet-stream")},
    )


def _rows(site: Site) -> list[MediaImage]:
    with Session(site.engine) as session:
        return list(session.exec(select(MediaImage)).all())


@pytest.mark.parametrize(("kind", "extension"), [("PNG", "png"), ("JPEG", "jpg")])
def test_an_uploaded_image_is_measured_stored_by_its_hash_and_served_for_a_year(
    site: Site, editor: TestClient, kind: str, extension: str
) -> None:
    answer = _upload(editor, f"Photo 1.{extension}", _image(kind, 640, 320), "Board members")
    assert answer.status_code == 303, answer.text
    [row] = _rows(site)
    assert (row.width, row.height, row.alt, row.uploaded_by) == (
        640,
        320,
        "Board members",
        "editor@lepnetwork.example",
    )
    stored = site.config.var_dir / "media" / row.name
    assert row.name == f"{hashlib.sha256(stored.read_bytes()).hexdigest()}.{extension}"
    with Image.open(stored) as again:
        assert (again.format, again.size) == (kind, (640, 320))
    listing = editor.get("/staff/media").text
    assert f'src="/media/{row.name}"' in listing and "640×320" in listing  # noqa: RUF001
    assert f"https://lepnetwork.example/media/{row.name}" in listing

    served = site.client().get(f"/media/{row.name}")  # no login: email programs fetch it
    assert served.status_code == 200
    assert served.content == stored.read_bytes()
    assert served.headers["content-type"] == f"image/{'png' if kind == 'PNG' else 'jpeg'}"
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in served.headers

    again = _upload(editor, "copy.png", _image(kind, 640, 320), "Another description")
    assert again.status_code == 303 and len(_rows(site)) == 1  # the same image: kept once
    with Session(site.engine) as session:
        entries = session.exec(select(AuditEntry).where(AuditEntry.action == "media:upload"))
        assert [e.target for e in entries] == [row.name]


@pytest.mark.parametrize(
    ("name", "data", "said"),
    [
        (
            "logo.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "SVG is not accepted",
        ),
        ("photo.png", os.urandom(4096), "is not a PNG, JPEG, GIF or WebP image"),
        ("cut.png", _image("PNG", 200, 100, noise=True)[:3000], "it may be damaged"),
        (
            "huge.png",
            _image("PNG", 700, 700, noise=True),  # about 1.4 MB: over the 1 MB limit
            "the library takes images up to 1 MB ([web] image_limit_mb)",
        ),
        ("empty.png", b"", "empty.png is empty: choose an image to upload"),
    ],
)
def test_what_is_not_an_acceptable_image_is_refused_with_a_clear_error(
    site: Site, editor: TestClient, name: str, data: bytes, said: str
) -> None:
    answer = _upload(editor, name, data, "Typed before the refusal")
    assert answer.status_code == 422
    assert said in answer.text.replace("&#39;", "'")
    assert 'id="file" name="file"' in answer.text and 'aria-invalid="true"' in answer.text
    assert 'value="Typed before the refusal"' in answer.text
    assert _rows(site) == []
    folder = site.config.var_dir / "media"
    assert not folder.exists() or not any(folder.iterdir())


def test_alt_text_is_required(site: Site, editor: TestClient) -> None:
    answer = _upload(editor, "a.png", _image("PNG", 10, 10), "   ")
    assert answer.status_code == 422
    assert "Alt text: describe what the picture shows" in answer.text
    assert _rows(site) == []


def test_only_library_names_are_served(site: Site, editor: TestClient, tmp_path: Path) -> None:
    assert _upload(editor, "a.gif", _image("GIF", 30, 30)).status_code == 303
    [row] = _rows(site)
    secret = site.config.var_dir / "secret.key"
    assert secret.exists()
    anonymous = site.client()
    for path in (
        "/media/../secret.key",
        "/media/..%2fsecret.key",
        "/media/%2e%2e%2fsecret.key",
        "/media/..%5csecret.key",
        "/media/%2e%2e/%2e%2e/config.toml",
        f"/media/{row.name.replace('.gif', '.svg')}",
        f"/media/{row.name.upper()}",
        f"/media/{'0' * 64}.png",  # a library name, but no such image
        "/media/",
    ):
        answer = anonymous.get(path)
        assert answer.status_code in (404, 308), path
        assert secret.read_bytes() not in answer.content, path
        assert "immutable" not in answer.headers.get("cache-control", ""), path
