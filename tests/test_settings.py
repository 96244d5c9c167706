"""config.toml: read once into frozen settings; every key documented; clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pydantic
import pytest

from mailer import settings
from tests.conftest import ROOT

SHIPPED = ROOT / "config.toml"


def _sections(text: str) -> dict[tuple[str, str], list[str]]:
    """Each (table, key) in a TOML file with the comment lines just above it."""
    found: dict[tuple[str, str], list[str]] = {}
    table = ""
    comments: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comments.append(stripped)
        elif match := re.fullmatch(r"\[([\w.]+)\]", stripped):
            table, comments = match.group(1), []
        elif match := re.match(r"(\w+)\s*=", stripped):
            found[(table, match.group(1))] = comments
            comments = []
        else:
            comments = []
    return found


def test_every_setting_is_documented_in_code_and_in_config_toml() -> None:
    # A setting without help text, or missing from config.toml, or without a comment there,
    # fails here; so does a key in config.toml the code does not know.
    in_file = _sections(SHIPPED.read_text(encoding="utf-8"))
    declared = {(section, key): text for section, key, text in settings.documented_keys()}
    assert declared, "no settings declared"
    for (section, key), help_text in declared.items():
        assert help_text.strip(), f"[{section}] {key} has no description in mailer/settings.py"
        assert (section, key) in in_file, f"[{section}] {key} is missing from config.toml"
        assert in_file[(section, key)], f"[{section}] {key} has no comment in config.toml"
    assert set(in_file) == set(declared)


def test_shipped_config_loads_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    config = settings.load(SHIPPED, environ={})
    assert config.settings.network.name == "LEP Network"
    assert config.database_url == f"sqlite:///{ROOT / 'var' / 'mailer.db'}"
    assert config.lists_dir == ROOT / "lists"
    assert config.secrets.smtp_password is None


def test_settings_are_frozen() -> None:
    config = settings.load(SHIPPED, environ={})
    with pytest.raises(pydantic.ValidationError):
        config.settings.database.url = "sqlite:///elsewhere.db"  # type: ignore[misc]


def _load(tmp_path: Path, text: str, **environ: str) -> settings.Config:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return settings.load(path, environ=environ)


def test_a_wrong_type_names_the_key_and_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(settings.ConfigError) as caught:
        _load(tmp_path, '[database]\necho = "yes"\n')
    message = str(caught.value)
    assert "[database] echo" in message
    assert "valid boolean" in message
    assert "'yes'" in message


def test_an_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(settings.ConfigError, match=r"\[database\] uri: unknown key"):
        _load(tmp_path, '[database]\nuri = "sqlite:///x.db"\n')


def test_a_bad_database_url_says_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(settings.ConfigError, match=r"\[database\] url: expected a sqlite"):
        _load(tmp_path, '[database]\nurl = "mysql://localhost/x"\n')


def test_a_value_out_of_range_is_named(tmp_path: Path) -> None:
    with pytest.raises(settings.ConfigError, match=r"\[import\] batch_size: .*greater than or"):
        _load(tmp_path, "[import]\nbatch_size = 0\n")


def test_broken_toml_gives_the_file_and_position(tmp_path: Path) -> None:
    with pytest.raises(settings.ConfigError, match=r"config.toml: not valid TOML: .*line 2"):
        _load(tmp_path, "[network]\nname = \n")


def test_a_missing_file_says_how_to_choose_one(tmp_path: Path) -> None:
    with pytest.raises(settings.ConfigError, match="MAILER_CONFIG"):
        settings.load(tmp_path / "absent.toml", environ={})


def test_environment_overrides_the_database_url_and_provides_secrets(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "",
        MAILER_DATABASE_URL="postgresql://mailer@db.internal/mailer",
        MAILER_SMTP_PASSWORD="s3cret",
        MAILER_SECRET_KEY="k" * 32,
    )
    assert config.database_url == "postgresql://mailer@db.internal/mailer"
    assert config.secrets.smtp_password == "s3cret"
    assert config.secrets.secret_key == "k" * 32


def test_a_bad_database_url_in_the_environment_is_named(tmp_path: Path) -> None:
    with pytest.raises(settings.ConfigError, match="MAILER_DATABASE_URL"):
        _load(tmp_path, "", MAILER_DATABASE_URL="oracle://x")


def test_mailer_config_names_the_file_to_read(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('[network]\nname = "Test Network"\n', encoding="utf-8")
    assert settings.config_path({"MAILER_CONFIG": str(path)}) == path
    assert settings.config_path({}, cwd=tmp_path) == tmp_path / "config.toml"
    assert settings.load(environ={"MAILER_CONFIG": str(path)}).settings.network.name == (
        "Test Network"
    )
