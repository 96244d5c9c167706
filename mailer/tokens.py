"""Signed, opaque tokens: a recipient's links (unsubscribe, preferences, view online) and VERP.

A token names a contact and an issue, signed with HMAC-SHA256 (itsdangerous) under the
secret key, so it can be neither forged nor altered; it never holds the address.

Errors::

    BadToken   a token was forged, altered or is not one of ours
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, Signer

log = logging.getLogger(__name__)

KEY_FILE = "secret.key"
_RECIPIENT_SALT = "mailer.recipient.v1"
_VERP_SALT = "mailer.verp.v1"
_REDIRECT_SALT = "mailer.redirect.v1"


class BadToken(Exception):
    """The token is forged, altered or malformed."""


def load_key(secret_key: str | None, var_dir: Path) -> bytes:
    """The signing key: MAILER_SECRET_KEY, or for a local install a key kept in var/.

    The generated key (32 random bytes, file mode 0600) keeps links valid across restarts
    of a development or demo install; production sets MAILER_SECRET_KEY.
    """
    if secret_key:
        return secret_key.encode("utf-8")
    path = var_dir / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _written_by_another(path)  # processes started together: one writes it
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    log.warning("MAILER_SECRET_KEY is not set: generated a signing key in %s", path)
    return key


def _written_by_another(path: Path) -> bytes:
    """The key another process has just created, once it has written it (bounded wait)."""
    deadline = time.monotonic() + 5
    while not (key := path.read_bytes().strip()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} stays empty: remove it and start again")
        time.sleep(0.01)
    return key


@dataclass(frozen=True)
class RecipientRef:
    """Who a token was made for."""

    contact_id: int
    issue_id: int


@dataclass(frozen=True)
class OrganisationRef:
    """What a redirect token names: an issue and the organisation of the copy (never a
    person; organisation 0 is a copy sent to no one, such as the archive's)."""

    issue_id: int
    organisation_id: int


class TokenSigner:
    """Makes and checks tokens; one per process, cheap to call per recipient."""

    def __init__(self, key: bytes) -> None:
        self._recipient = Signer(key, salt=_RECIPIENT_SALT, digest_method=hashlib.sha256)
        self._verp = Signer(key, salt=_VERP_SALT, digest_method=hashlib.sha256)
        self._redirect = Signer(key, salt=_REDIRECT_SALT, digest_method=hashlib.sha256)

    def recipient(self, contact_id: int, issue_id: int) -> str:
        """The token in a recipient's links: ``<contact>-<issue>.<signature>``."""
        return self._recipient.sign(f"{contact_id:x}-{issue_id:x}".encode()).decode("ascii")

    def read_recipient(self, token: str) -> RecipientRef:
        """The contact and issue a token names.

        :raises BadToken: the token was forged, altered or is malformed.
        """
        try:
            value = self._recipient.unsign(token.encode("ascii")).decode("ascii")
            contact, issue = value.split("-")
            return RecipientRef(int(contact, 16), int(issue, 16))
        except (BadSignature, UnicodeError, ValueError) as exc:
            raise BadToken("this link is not valid: it was altered or is not one of ours") from exc

    def organisation(self, issue_id: int, organisation_id: int) -> str:
        """The token of an issue's redirects in copies for one organisation:
        ``<issue>-<organisation>.<signature>``, made once per organisation."""
        value = f"{issue_id:x}-{organisation_id:x}".encode()
        return self._redirect.sign(value).decode("ascii")

    def read_organisation(self, token: str) -> OrganisationRef:
        """The issue and organisation a redirect token names.

        :raises BadToken: the token was forged, altered or is malformed.
        """
        try:
            value = self._redirect.unsign(token.encode("ascii")).decode("ascii")
            issue, organisation = value.split("-")
            return OrganisationRef(int(issue, 16), int(organisation, 16))
        except (BadSignature, UnicodeError, ValueError) as exc:
            raise BadToken("this link is not valid: it was altered or is not one of ours") from exc

    def verp(self, delivery_key: str) -> str:
        """A token for a bounce address naming one delivery (case-insensitive safe)."""
        signed = self._verp.get_signature(delivery_key.encode()).decode("ascii")
        digest = hashlib.sha256(signed.encode()).hexdigest()[:12]
        return f"{delivery_key}-{digest}".lower()

    def read_verp(self, token: str) -> str:
        """The delivery key a VERP token names.

        :raises BadToken: the token was forged or altered.
        """
        key, _, _ = token.lower().rpartition("-")
        if not key or not secrets.compare_digest(self.verp(key), token.lower()):
            raise BadToken("not one of our bounce addresses")
        return key
