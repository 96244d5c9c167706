"""Database connections, sessions and the schema's life (create, stamp, migrate, back up).

A fresh database is created from the models and stamped at the newest
migration; an existing one is upgraded by Alembic (GNU Mailman's model).
A SQLite database is backed up with SQLite's online backup API; PostgreSQL by pg_dump.

Errors::

    SchemaError             the database holds tables this version cannot manage
    DatabaseLocationError   the folder of a SQLite database cannot be created
    MigrationError          a migration command cannot run (unknown revision, no checkout)
    BackupError             a backup cannot be made (no database, the target exists)
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from mailer import models  # noqa: F401  (registers the tables on SQLModel.metadata)

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaState(StrEnum):
    FRESH = "fresh"
    CURRENT = "current"
    BEHIND = "behind"
    UNVERSIONED = "unversioned"


class SchemaError(Exception):
    """The database holds tables this version of mailer cannot manage."""


class DatabaseLocationError(Exception):
    """The folder of a SQLite database cannot be created."""


class MigrationError(Exception):
    """A migration command cannot run: the revision is unknown, or there is no checkout."""


class BackupError(Exception):
    """A backup cannot be made: there is no database, or the target is in the way."""


def normalise_url(url: str) -> str:
    """Choose psycopg 3 for a plain ``postgresql://`` URL."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.removeprefix("postgres://")
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted rows are overwritten with zeros, not left in free pages: an erased address
    # must not survive in the file (Debian's SQLite is built this way; others may not be).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def flush_wal(session: Session) -> bool:
    """SQLite: copy the write-ahead log into the database file and empty it.

    Old page images (an erased row as it was) live on in the log until then. Returns
    whether it completed (a long reader elsewhere can hold it back); other databases: True.
    """
    if session.get_bind().dialect.name != "sqlite":
        return True
    busy, _, _ = session.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)")).one()
    session.commit()
    return not busy


MAX_ID = 2**31 - 1  # the largest id an INTEGER key holds on PostgreSQL
_Row = TypeVar("_Row")


def get_by_id(session: Session, model: type[_Row], row_id: int) -> _Row | None:
    """The row of ``model`` with this id, or None; an id no key can hold (typed by hand,
    or forged in a form) is simply not found rather than an error of the database."""
    if not 0 < row_id <= MAX_ID:
        return None
    return session.get(model, row_id)


def like_pattern(text: str) -> str:
    """A LIKE pattern (escape ``\\``) matching ``text`` anywhere, its own % and _ literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def write_lock(session: Session) -> None:
    """SQLite: take the write lock now, at the start of the session's transaction rather
    than at its first write, so that what it reads no other writer changes before it
    commits. Nothing on PostgreSQL (lock the rows read instead) or inside a transaction
    already begun."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.dbapi_connection
    if raw is not None and not getattr(raw, "in_transaction", True):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def rowcount(result: Any) -> int:
    """Rows an UPDATE, DELETE or INSERT statement touched."""
    return int(getattr(result, "rowcount", 0) or 0)


def among(
    connection: sa.Connection, column: sa.ColumnElement[Any], values: Iterable[Any]
) -> sa.ColumnElement[bool]:
    """``column IN values`` for a lookup of many keys: on PostgreSQL one array parameter
    (``= ANY``), which psycopg sends as it is instead of parsing a statement of a thousand
    placeholders each time; elsewhere a plain IN."""
    values = list(values)
    if connection.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


def lookups_by_index(connection: sa.Connection) -> None:
    """For the rest of this transaction, have PostgreSQL find rows by their indexes: a
    table that grows within the transaction (an import into an empty one) still has the
    statistics of an empty table, and each lookup by key would read it whole (100k
    contacts imported in 37 s instead of 11). No lock, no lasting effect (SET LOCAL);
    SQLite plans by index without statistics: nothing to do there."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")


def driver_value(connection: sa.Connection, column: sa.Column[Any], value: Any) -> Any:
    """``value`` in the form the driver takes for ``column`` (its type's own bind
    processing: a time in UTC, an enum's value), for :func:`insert_many`. Made once for a
    value many rows share, it costs those rows nothing."""
    dialect = connection.dialect
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process(value) if process is not None and value is not None else value


def insert_many(
    connection: sa.Connection, table: sa.Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` (values for ``columns``, each already as :func:`driver_value` makes
    it) in the connection's transaction, without SQLAlchemy's processing of every value:
    with COPY on PostgreSQL (psycopg's, the fastest way in), else one INSERT the driver
    executes for all rows. The columns' scalar defaults are applied as an INSERT would.

    :raises sqlalchemy.exc.DBAPIError: the database refused a row (as for any statement).
    """
    if not rows:
        return
    defaults = {
        column.name: driver_value(connection, column, column.default.arg)
        for column in table.columns
        if column.name not in columns
        and isinstance(column.default, sa.ColumnDefault)
        and column.default.is_scalar
    }
    names = [*columns, *defaults]
    extra = tuple(defaults.values())
    if connection.dialect.name == "postgresql":
        import psycopg  # loaded by the engine already; not at all on SQLite

        driver = connection.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        quoted = ", ".join(f'"{name}"' for name in names)
        statement = f'COPY "{table.name}" ({quoted}) FROM STDIN'  # names from the models
        try:
            with driver.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row + extra)
        except psycopg.Error as exc:  # raised as SQLAlchemy raises the driver's errors
            raise sa.exc.DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
        return
    compiled = table.insert().values({name: sa.bindparam(name) for name in names})
    sql = compiled.compile(dialect=connection.dialect)
    order = [names.index(name) for name in sql.positiontup or ()] if sql.positional else None
    if order is None:
        params: list[Any] = [dict(zip(names, row + extra, strict=True)) for row in rows]
    else:
        params = [tuple((row + extra)[i] for i in order) for row in rows]
    connection.exec_driver_sql(sql.string, params)


# How this process's PostgreSQL connections are named (pg_stat_activity): the CLI sets
# mailer-daemon, mailer-serve, mailer-worker...
application_name = "mailer"


def create_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets its folder created and WAL mode switched on."""
    url = normalise_url(url)
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            folder = Path(database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseLocationError(
                    f"cannot create the folder {folder} for the SQLite database: "
                    f"{exc.strerror or exc}"
                ) from exc
        engine = sa.create_engine(url, echo=echo)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Smaller multi-row INSERT pages: psycopg rewrites each statement's placeholders in
    # Python and caches only short statements, so 1000-row pages cost more than they save.
    engine = sa.create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        insertmanyvalues_page_size=100,
        # Named in pg_stat_activity; a server that does not answer, or a connection that
        # went silent, is an error in seconds, not a hang of minutes.
        connect_args={
            "application_name": application_name,
            "connect_timeout": 10,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        },
    )
    sa.event.listen(engine, "connect", _postgres_session)
    return engine


def _postgres_session(connection: Any, _: Any) -> None:
    """A session frozen in the middle of a transaction (SIGSTOP, a hung process) loses it,
    and its locks, after a minute, so the others are not held up behind it."""
    with connection.cursor() as cursor:
        cursor.execute("SET idle_in_transaction_session_timeout = '60s'")
    connection.commit()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back otherwise."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _alembic_config(connection: sa.Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration shipped with this version."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is stamped at, or None."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_state(engine: Engine) -> SchemaState:
    """Whether the database is empty, current, behind, or holds unknown tables."""
    with engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
        tables = set(sa.inspect(connection).get_table_names())
    if revision is None:
        return (
            SchemaState.UNVERSIONED if tables & set(SQLModel.metadata.tables) else SchemaState.FRESH
        )
    return SchemaState.CURRENT if revision == head_revision() else SchemaState.BEHIND


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to ``revision``.

    :raises MigrationError: Alembic cannot find ``revision`` or a way to it.
    """
    try:
        with _migrating(engine) as connection:
            command.upgrade(_alembic_config(connection), revision)
    except CommandError as exc:
        raise MigrationError(f"cannot upgrade to {revision!r}: {exc}") from exc


def downgrade(engine: Engine, revision: str) -> None:
    """Run Alembic migrations back down to ``revision``.

    :raises MigrationError: Alembic cannot find ``revision`` or a way to it.
    """
    try:
        with _migrating(engine) as connection:
            command.downgrade(_alembic_config(connection), revision)
    except CommandError as exc:
        raise MigrationError(f"cannot downgrade to {revision!r}: {exc}") from exc


@contextmanager
def _migrating(engine: Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction for migrations.

    On SQLite, foreign keys are off while it runs: a batch migration rebuilds a table by
    copying it, dropping the old one and renaming, and with foreign keys on the drop would
    cascade to (delete) the rows that refer to it. They are checked before the commit.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:  # outside any transaction: SQLite ignores this pragma inside one
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise MigrationError(
                            f"the migration would leave {len(broken)} rows referring to rows "
                            f"that do not exist (first: {tuple(broken[0])}); nothing was changed"
                        )
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def init_schema(engine: Engine) -> SchemaState:
    """Create and stamp a fresh database, or upgrade an existing one; returns what was found.

    :raises SchemaError: the database has mailer's tables but no migration stamp.
    """
    state = schema_state(engine)
    if state is SchemaState.FRESH:
        with engine.begin() as connection:
            SQLModel.metadata.create_all(connection)
            command.stamp(_alembic_config(connection), "head")
    elif state is SchemaState.BEHIND:
        upgrade(engine)
    elif state is SchemaState.UNVERSIONED:
        raise SchemaError(
            "the database has mailer tables but no alembic_version stamp; "
            "it was not created by `mailer init` (back it up, then start from an empty database)"
        )
    return state


def source_checkout(folder: Path = MIGRATIONS) -> Path | None:
    """The git checkout holding ``folder`` (a parent with a ``.git``), or None if installed."""
    for parent in folder.resolve().parents:
        if (parent / ".git").exists():
            return parent
    return None


def autogenerate(engine: Engine, message: str, *, folder: Path = MIGRATIONS) -> None:
    """Write a new migration from the difference between the models and the database.

    :raises MigrationError: ``folder`` is not inside a git checkout (an installed package
        must never be written to), or Alembic refuses.
    """
    if source_checkout(folder) is None:
        raise MigrationError(
            f"{folder} is not inside a git checkout: migrations are written by developers "
            "in the source tree, never into an installed package"
        )
    try:
        with engine.begin() as connection:
            config = _alembic_config(connection)
            config.set_main_option("script_location", str(folder))
            command.revision(config, message=message, autogenerate=True)
    except CommandError as exc:
        raise MigrationError(f"cannot write a migration: {exc}") from exc


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL; None for another database (or one in memory)."""
    parsed = sa.make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def pg_dump_command(url: str, target: Path) -> str:
    """The pg_dump command line that backs the PostgreSQL database at ``url`` up to
    ``target`` (custom format, for pg_restore); the password is left out of it."""
    parsed = sa.make_url(url)
    libpq = sa.URL.create(
        "postgresql",
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    )
    uri = libpq.render_as_string(hide_password=False)
    return f"pg_dump --format=custom --file={shlex.quote(str(target))} {shlex.quote(uri)}"


@dataclass(frozen=True)
class Backup:
    """A backup written: where, how many tables, how large."""

    path: Path
    tables: int
    size: int


def backup_sqlite(url: str, target: Path, *, force: bool = False) -> Backup:
    """Copy the SQLite database at ``url`` to ``target`` with SQLite's online backup API.

    The copy is one consistent snapshot (a single read transaction: in WAL mode writers
    go on meanwhile, and their uncommitted work is not in it), checked with
    ``PRAGMA integrity_check``, in rollback-journal mode (one self-contained file), only
    readable by its owner (it holds personal data). It is written beside ``target`` and
    moved there at the end, so ``target`` is never a partial copy.

    :raises BackupError: ``url`` is not a SQLite file that exists; ``target`` exists
        (without ``force``), is the database itself, or cannot be written; SQLite fails.
    """
    source = sqlite_file(url)
    if source is None:
        raise BackupError(f"{url} is not a SQLite database file")
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    if target.is_dir():
        raise BackupError(f"{target} is a folder: name the backup file, e.g. {target}/mailer.db")
    if target.exists():
        if target.resolve() == source.resolve():
            raise BackupError(f"{target} is the database itself")
        if not force:
            raise BackupError(f"{target} exists: give --force to replace it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise BackupError(f"{target}: cannot write: {exc.strerror or exc}") from exc
    try:
        reader = sqlite3.connect(
            f"file:{urllib.parse.quote(str(source))}?mode=ro", uri=True, timeout=30
        )
        try:
            copy = sqlite3.connect(partial)
            try:
                reader.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
                (verdict,) = copy.execute("PRAGMA integrity_check").fetchone()
                if verdict != "ok":
                    raise BackupError(f"the copy of {source} is damaged: {verdict}")
                (tables,) = copy.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                ).fetchone()
            finally:
                copy.close()
        finally:
            reader.close()
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        if force:
            os.replace(partial, target)
        else:
            try:
                os.link(partial, target)  # never replaces a file made meanwhile
            except FileExistsError:
                raise BackupError(f"{target} exists: give --force to replace it") from None
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {source}: {exc}") from exc
    except OSError as exc:
        raise BackupError(f"{target}: cannot write: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return Backup(target, int(tables), target.stat().st_size)
