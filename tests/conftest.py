"""Fixtures: a fresh real database per test (SQLite file, and PostgreSQL when it answers)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mailer import db, organisations

# Cheap argon2 parameters for every staff password the tests (and their subprocesses) hash.
os.environ["MAILER_TEST_CHEAP_HASHES"] = "1"

ROOT = Path(__file__).resolve().parent.parent
LISTS = ROOT / "lists"
PG_HOST = "127.0.0.1"
PG_PORT = 5432


def _find_postgres() -> tuple[str | None, str]:
    """A base URL for a throw-away database on the local PostgreSQL, or why there is none."""
    reasons = []
    for user in ("root", "postgres"):
        try:
            with psycopg.connect(
                host=PG_HOST, port=PG_PORT, user=user, dbname="test", connect_timeout=3
            ):
                return f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}", ""
        except psycopg.Error as exc:
            reasons.append(f"{user}: {str(exc).strip().splitlines()[0]}")
    return None, f"no PostgreSQL answers at {PG_HOST}:{PG_PORT} ({'; '.join(reasons)})"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A database created for this test run on the real PostgreSQL, dropped afterwards."""
    base, reason = _find_postgres()
    if base is None:
        pytest.skip(reason)
    name = f"mailer_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{base}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _postgres_schema(server: str) -> Iterator[str]:
    """A fresh schema per test, selected through the connection's search_path."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{server}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a schema on the real PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'var' / 'mailer.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        yield from _postgres_schema(server)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A database created and stamped by ``mailer init``'s schema step."""
    engine = db.create_engine(db_url)
    db.init_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def loaded(session: Session) -> Session:
    """A session on a database holding the shipped organisations (38 LEPs and others)."""
    organisations.load_lists(session, LISTS)
    session.commit()
    return session


@pytest.fixture
def project(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder as a new user has it: config.toml, lists/, templates/; chosen by env."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(ROOT / "config.toml", folder / "config.toml")
    shutil.copytree(LISTS, folder / "lists")
    shutil.copytree(ROOT / "templates", folder / "templates")
    monkeypatch.setenv("MAILER_CONFIG", str(folder / "config.toml"))
    monkeypatch.setenv("MAILER_DATABASE_URL", db_url)
    return folder
