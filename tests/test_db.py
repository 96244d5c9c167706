"""The schema: created and stamped once, harmless to re-run, migrations equal to the models."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from mailer import db
from mailer.models import (
    Contact,
    ContactStatus,
    LawfulBasis,
    Organisation,
    OrganisationKind,
    Role,
)


def test_a_fresh_database_is_created_and_stamped_then_left_alone(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        assert db.schema_state(engine) is db.SchemaState.FRESH
        assert db.init_schema(engine) is db.SchemaState.FRESH
        assert db.current_revision(engine) == db.head_revision()
        with Session(engine) as session:
            session.add(Organisation(name="Kept LEP", kind=OrganisationKind.LEP))
            session.commit()
        # Running init again changes nothing and keeps the data.
        assert db.init_schema(engine) is db.SchemaState.CURRENT
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM organisations")).scalar() == 1
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_schema_the_models_describe(db_url: str) -> None:
    # Upgrading an empty database through every migration must give what create_all gives.
    engine = db.create_engine(db_url)
    try:
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision()
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, SQLModel.metadata)
        assert differences == []
    finally:
        engine.dispose()


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_migrating_keeps_every_row_and_ids_are_never_handed_out_again(db_url: str) -> None:
    """The data-protection migration rebuilds tables on SQLite: nothing may cascade away."""
    engine = db.create_engine(db_url)
    try:
        db.upgrade(engine, "9081f8dd5052")  # the release before it
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO organisations (name, short_name, kind, created_at)"
                    " VALUES ('D2N2', 'D2N2', 'lep', :now)"
                ),
                {"now": datetime(2027, 1, 4, tzinfo=UTC)},
            )
            for n in (1, 2):
                connection.execute(
                    sa.text(
                        "INSERT INTO contacts (email, email_hash, name, organisation_id, role,"
                        " status, lawful_basis, consent_source, created_at, updated_at)"
                        " VALUES (:email, :hash, :name, 1, 'officer', 'active',"
                        " 'legitimate_interest', '', :now, :now)"
                    ),
                    {
                        "email": f"r{n}@d2n2.example",
                        "hash": f"{n:064x}",
                        "name": f"R {n}",
                        "now": datetime(2027, 1, 4, tzinfo=UTC),
                    },
                )
                connection.execute(
                    sa.text(
                        "INSERT INTO subscriptions (contact_id, publication, status, created_at,"
                        " updated_at) VALUES (:id, 'bulletin', 'active', :now, :now)"
                    ),
                    {"id": n, "now": datetime(2027, 1, 4, tzinfo=UTC)},
                )
        db.upgrade(engine)
        assert (_count(engine, "contacts"), _count(engine, "subscriptions")) == (2, 2)
        # The newest contact goes (as erasure deletes it); the next one gets a new id.
        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM contacts WHERE id = 2"))
            connection.execute(
                sa.text(
                    "INSERT INTO contacts (email, email_hash, name, organisation_id, role,"
                    " status, lawful_basis, consent_source, created_at, updated_at,"
                    " bounce_score) VALUES ('new@d2n2.example', :hash, 'New', 1, 'officer',"
                    " 'active', 'legitimate_interest', '', :now, :now, 0)"
                ),
                {"hash": f"{3:064x}", "now": datetime(2027, 1, 4, tzinfo=UTC)},
            )
            newest = connection.execute(sa.text("SELECT max(id) FROM contacts")).scalar_one()
        assert newest == 3
        assert _count(engine, "subscriptions") == 1  # the deleted contact's, by its cascade
        db.downgrade(engine, "9081f8dd5052")
        assert (_count(engine, "contacts"), _count(engine, "subscriptions")) == (2, 1)
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision()
    finally:
        engine.dispose()


def test_tables_without_a_stamp_are_refused(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        with engine.begin() as connection:
            SQLModel.metadata.create_all(connection)
        assert db.schema_state(engine) is db.SchemaState.UNVERSIONED
        with pytest.raises(db.SchemaError, match="no alembic_version stamp"):
            db.init_schema(engine)
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: object) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path}/nested/dir/mailer.db")
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    # Both spellings of a PostgreSQL URL choose psycopg 3; other URLs are left alone.
    assert db.normalise_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalise_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_timestamps_come_back_aware_and_naive_ones_are_refused(engine: Engine) -> None:
    with Session(engine) as session:
        org = Organisation(name="Aware LEP", kind=OrganisationKind.LEP)
        session.add(org)
        session.commit()
        session.refresh(org)
        assert org.created_at.tzinfo is not None
        org.created_at = datetime(2027, 1, 1)  # noqa: DTZ001
        with pytest.raises(sa.exc.StatementError, match="naive datetime"):
            session.commit()


def test_a_status_outside_its_enum_is_refused_by_the_database(engine: Engine) -> None:
    with engine.connect() as connection, pytest.raises(sa.exc.IntegrityError):
        connection.execute(
            sa.text(
                "INSERT INTO organisations (name, kind, created_at) "
                "VALUES ('Odd', 'pirate', CURRENT_TIMESTAMP)"
            )
        )


def test_a_sqlite_folder_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    # A file where the folder should be: mkdir fails, and the error names the folder.
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(db.DatabaseLocationError, match=r"cannot create the folder .*taken/sub"):
        db.create_engine(f"sqlite:///{blocker}/sub/mailer.db")


def test_an_unknown_revision_is_a_migration_error(engine: Engine) -> None:
    # Alembic's own error becomes mailer's, naming the revision asked for.
    with pytest.raises(db.MigrationError, match=r"cannot upgrade to 'nonsense'.*Can't locate"):
        db.upgrade(engine, "nonsense")
    assert db.current_revision(engine) == db.head_revision()


def test_migrations_are_written_only_inside_a_git_checkout(engine: Engine, tmp_path: Path) -> None:
    # An installed package (no .git above it) is never written to; a checkout is found
    # however deep the migrations folder lies.
    installed = tmp_path / "site-packages" / "mailer" / "migrations"
    installed.mkdir(parents=True)
    assert db.source_checkout(installed) is None
    with pytest.raises(db.MigrationError, match="not inside a git checkout"):
        db.autogenerate(engine, "never written", folder=installed)
    assert list(installed.iterdir()) == []
    checkout = tmp_path / "src"
    (checkout / ".git").mkdir(parents=True)
    (checkout / "mailer" / "migrations").mkdir(parents=True)
    assert db.source_checkout(checkout / "mailer" / "migrations") == checkout
    assert db.source_checkout() is not None  # the tests run from a checkout


def test_the_membership_migration_moves_self_declared_lep_members_out(db_url: str) -> None:
    # Before it, a confirmed sign-up naming a LEP was filed as that LEP's contact. The
    # migration moves exactly those out (their stated organisation kept, their bulletin
    # ended, each move audited) and leaves staff-imported LEP contacts alone.
    engine = db.create_engine(db_url)
    now = datetime(2026, 11, 30, tzinfo=UTC)
    try:
        db.upgrade(engine, "24f393a305a3")  # the release before it
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO organisations (name, short_name, kind, created_at)"
                    " VALUES ('D2N2 LEP', 'D2N2', 'lep', :now)"
                ),
                {"now": now},
            )
            people = (  # email, source, basis, role
                ("eve@gmail.example", "web sign-up", "consent", "stakeholder"),
                ("ann@d2n2.example", "import:leps.csv", "legitimate_interest", "chair"),
            )
            for n, (email, source, basis, role) in enumerate(people, start=1):
                connection.execute(
                    sa.text(
                        "INSERT INTO contacts (email, email_hash, name, organisation_id, role,"
                        " status, lawful_basis, consent_source, created_at, updated_at,"
                        " bounce_score) VALUES (:email, :hash, 'X', 1, :role, 'active',"
                        " :basis, :source, :now, :now, 0)"
                    ),
                    {
                        "email": email,
                        "hash": f"{n:064x}",
                        "role": role,
                        "basis": basis,
                        "source": source,
                        "now": now,
                    },
                )
                for publication in ("bulletin", "newsletter"):
                    connection.execute(
                        sa.text(
                            "INSERT INTO subscriptions (contact_id, publication, status,"
                            " created_at, updated_at) VALUES (:id, :p, 'active', :now, :now)"
                        ),
                        {"id": n, "p": publication, "now": now},
                    )
        db.upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT c.email, o.kind, c.stated_organisation FROM contacts c"
                    " JOIN organisations o ON o.id = c.organisation_id ORDER BY c.id"
                )
            ).all()
            subscriptions = connection.execute(
                sa.text("SELECT contact_id, publication FROM subscriptions ORDER BY 1, 2")
            ).all()
            audited = (
                connection.execute(
                    sa.text("SELECT target FROM audit_log WHERE action = 'contact:ungrant'")
                )
                .scalars()
                .all()
            )
        assert [tuple(r) for r in rows] == [
            ("eve@gmail.example", "other", "D2N2 LEP"),
            ("ann@d2n2.example", "lep", None),
        ]
        assert [tuple(s) for s in subscriptions] == [
            (1, "newsletter"),
            (2, "bulletin"),
            (2, "newsletter"),
        ]
        assert audited == ["contact 1"]
    finally:
        engine.dispose()


def test_rows_inserted_many_at_once_read_back_as_any_other_insert(engine: Engine) -> None:
    # insert_many bypasses SQLAlchemy's per-value processing (COPY on PostgreSQL): times
    # must still be stored as SQLAlchemy stores them (SQL comparisons find them), the
    # models' scalar defaults applied, and a refused row an error of SQLAlchemy's.
    contacts = Contact.metadata.tables["contacts"]
    when = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
    columns = ("email", "email_hash", "name", "organisation_id", "role", "lawful_basis")
    with Session(engine) as session:
        lep = Organisation(name="Bulk LEP", kind=OrganisationKind.LEP)
        session.add(lep)
        session.flush()
        connection = session.connection()
        stamp = db.driver_value(connection, contacts.c.created_at, when)
        role = db.driver_value(connection, contacts.c.role, Role.CHAIR)
        basis = db.driver_value(connection, contacts.c.lawful_basis, LawfulBasis.CONSENT)
        rows = [(f"r{n}@bulk.example", f"h{n}", f"R {n}", lep.id, role, basis) for n in range(3)]
        db.insert_many(
            connection,
            contacts,
            (*columns, "created_at", "updated_at"),
            [(*row, stamp, stamp) for row in rows],
        )
        session.commit()
        found = session.execute(
            sa.select(sa.func.count()).where(
                contacts.c.created_at == when, contacts.c.role == Role.CHAIR
            )
        ).scalar_one()
        assert found == 3
        back = session.exec(select(Contact).where(Contact.email == "r0@bulk.example")).one()
        assert (back.created_at, back.status, back.bounce_score) == (
            when,
            ContactStatus.ACTIVE,  # the models' defaults
            0,
        )
        with pytest.raises(sa.exc.IntegrityError):
            db.insert_many(
                session.connection(),
                contacts,
                (*columns, "created_at", "updated_at"),
                [(*rows[0], stamp, stamp)],
            )
        session.rollback()
