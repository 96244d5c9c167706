"""Publication definitions: one ``lists/<publication>.toml`` file per publication.

Errors::

    PublicationError   a definition file is missing, not TOML, or invalid
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mailer.models import OrganisationKind, Publication, Role


class PublicationError(Exception):
    """A publication definition cannot be used; the message names the file and key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class AudienceRule(_Frozen):
    """Which contacts a publication goes to, before subscriptions are applied."""

    organisation_kinds: frozenset[OrganisationKind] = Field(min_length=1)
    roles: frozenset[Role] = frozenset()

    def kinds_for(self, publication: Publication) -> frozenset[OrganisationKind]:
        """The kinds that may receive ``publication``: an internal one only ever reaches LEPs."""
        return self.organisation_kinds & publication.organisation_kinds


_ADDRESS = r"^[^@\s<>\"]+@[a-z0-9.-]+\.[a-z]{2,}$"


class PublicationDefinition(_Frozen):
    """What readers see of a publication: its name, sender and List-Id."""

    publication: Publication
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=300)
    from_address: str = Field(pattern=_ADDRESS)
    from_name: str = Field(min_length=1, max_length=100)
    reply_to: str = Field(pattern=_ADDRESS)
    list_id: str = Field(pattern=r"^[a-z0-9-]+(\.[a-z0-9-]+)+$", max_length=255)
    reason: str = Field(min_length=10, max_length=300)
    audience: AudienceRule

    @model_validator(mode="after")
    def _internal_stays_internal(self) -> PublicationDefinition:
        if self.publication.internal:
            outside = self.audience.organisation_kinds - self.publication.organisation_kinds
            if outside:
                names = ", ".join(sorted(outside))
                raise ValueError(
                    f"audience.organisation_kinds: the {self.publication} is internal and goes "
                    f"to LEP contacts only; remove: {names}"
                )
        return self


def load(lists_dir: Path, publication: Publication) -> PublicationDefinition:
    """Read ``lists/<publication>.toml``.

    :raises PublicationError: the file is missing, not TOML, or a key is invalid.
    """
    path = lists_dir / f"{publication.value}.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PublicationError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PublicationError(f"{path}: cannot read: {exc}") from exc
    try:
        return PublicationDefinition.model_validate(
            {"publication": publication, **raw}, strict=False
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise PublicationError(f"{path}: {problems}") from exc


def load_all(lists_dir: Path) -> dict[Publication, PublicationDefinition]:
    """Every publication's definition.

    :raises PublicationError: any file is missing or invalid.
    """
    return {publication: load(lists_dir, publication) for publication in Publication}
