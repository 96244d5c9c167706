"""Uploads kept between two requests (a contacts import checked, then applied): each in a
folder of its own under ``var/uploads/`` with a random name, tied to one staff session,
gone after a while.

The token that names a folder is random (it is never a name from the upload) and is
usable only by the session that made it; a folder older than its time is deleted on
sight, and every new upload clears the old ones.

Errors::

    UploadGone   no kept upload has that token for this session (never, expired, or used)
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from mailer import clock

FOLDER = "uploads"
_OWNER = "owner.json"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{24}")


class UploadGone(Exception):
    """The kept upload is not there (or not this session's)."""


@dataclass(frozen=True)
class Kept:
    """A kept upload: the token that names it, its folder, and the file's name as
    uploaded (shown to people, never used as a path)."""

    token: str
    folder: Path
    name: str

    @property
    def upload(self) -> Path:
        """Where the uploaded file itself is kept."""
        return self.folder / "upload"

    def file(self, name: str) -> Path:
        """Another file kept with the upload (``name`` is ours, never the uploader's)."""
        return self.folder / f"{name}.kept"


def _root(var_dir: Path) -> Path:
    return var_dir / FOLDER


def keep(var_dir: Path, owner: str, name: str) -> Kept:
    """A new, empty folder for the upload ``name`` of ``owner`` (a staff session's key)."""
    token = secrets.token_urlsafe(18)
    folder = _root(var_dir) / token
    folder.mkdir(parents=True, mode=0o700)
    stamp = {"owner": owner, "created": clock.now().isoformat(), "name": name}
    (folder / _OWNER).write_text(json.dumps(stamp), encoding="utf-8")
    return Kept(token, folder, name)


def find(var_dir: Path, token: str, owner: str, max_age: timedelta) -> Kept:
    """The kept upload ``token`` names, if it is ``owner``'s and younger than ``max_age``
    (an older one is deleted now).

    :raises UploadGone: there is none for this owner.
    """
    if not _TOKEN.fullmatch(token):
        raise UploadGone("that upload is not known")
    folder = _root(var_dir) / token
    created, made_by, name = _stamp(folder)
    if created is None or made_by != owner:
        raise UploadGone("that upload is not known (or belongs to another login)")
    if clock.now() - created > max_age:
        shutil.rmtree(folder, ignore_errors=True)
        raise UploadGone("that upload has expired")
    return Kept(token, folder, name)


def discard(kept: Kept) -> None:
    """Delete a kept upload and everything in its folder."""
    shutil.rmtree(kept.folder, ignore_errors=True)


def purge(var_dir: Path, max_age: timedelta) -> int:
    """Delete every kept upload older than ``max_age``; returns how many."""
    root = _root(var_dir)
    if not root.is_dir():
        return 0
    now, gone = clock.now(), 0
    for folder in root.iterdir():
        created, _, _ = _stamp(folder)
        if created is None:  # being made, or broken: judged by its folder's time
            try:
                created = datetime.fromtimestamp(folder.stat().st_mtime, now.tzinfo)
            except OSError:
                continue
        if now - created > max_age:
            shutil.rmtree(folder, ignore_errors=True)
            gone += 1
    return gone


def _stamp(folder: Path) -> tuple[datetime | None, str, str]:
    """When the upload in ``folder`` was kept, whose it is and its name (None: no stamp)."""
    try:
        stamp = json.loads((folder / _OWNER).read_text(encoding="utf-8"))
        return datetime.fromisoformat(stamp["created"]), str(stamp["owner"]), str(stamp["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, "", ""
