"""Shards, issue 16's first slice: settings, setup_shards, placement, health.

Two extra PostgreSQL servers of the test's own are the shards shard1 and shard2
(tests/shard_support.py); the test database is the coordinator. The settings and
placement tests only need the aliases (placement never connects to a shard), so they run
where no server can be started too; the others skip there, saying why.
"""

from __future__ import annotations

import threading
from io import StringIO

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections

from activity_grades import placement
from activity_grades.core.exceptions import PlacementError, ShardError
from activity_grades.core.settings import app_settings
from activity_grades.core.shards import hashed_shard, server_name
from activity_grades.operations import create, repair, shards
from tests.conftest import make_lms

from .shard_support import (
    CLOSED_PORT,
    SHARD_DATABASE,
    SHARD_DBS,
    aliases,
    clean_coordinator,
    clean_shard,
    entry,
    require_servers,
    shard_servers,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.usefixtures("shard_servers")


def configure(settings, **keys) -> None:
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, **keys}


def setting_errors() -> list[str]:
    return [m.msg for m in checks.run_checks() if m.id == "activity_grades.E100"]


@pytest.fixture
def two_shards(settings):
    """SHARDS = shard1, shard2 (placement never connects to them)."""
    configure(settings, SHARDS=["shard1", "shard2"])


@pytest.fixture
def shards_up(shard_servers, settings):  # noqa: F811
    """shard1 and shard2 as SHARDS, on the two servers; everything set up is removed after.

    Tests using it are ``django_db(transaction=True, databases=SHARD_DBS)``: setup_shards
    commits on three servers.
    """
    require_servers(shard_servers)
    saved = {alias: dict(django_settings.DATABASES[alias]) for alias in ("shard1", "shard2")}
    configure(settings, SHARDS=["shard1", "shard2"])
    try:
        yield shard_servers
    finally:
        for alias, entry_ in saved.items():
            django_settings.DATABASES[alias].clear()
            django_settings.DATABASES[alias].update(entry_)
            connections[alias].close()
        clean_coordinator()
        for server in shard_servers:
            if not server_running(server):
                server.start()  # a test stopped it
            clean_shard(server)


def server_running(server) -> bool:
    try:
        psycopg.connect(server.url(), connect_timeout=5).close()
    except psycopg.OperationalError:
        return False
    return True


shard_test = pytest.mark.django_db(transaction=True, databases=SHARD_DBS)


def server_options(name: str) -> dict[str, str] | None:
    with connection.cursor() as cur:
        cur.execute("SELECT srvoptions FROM pg_foreign_server WHERE srvname = %s", [name])
        row = cur.fetchone()
    return None if row is None else dict(o.split("=", 1) for o in row[0])


def run(*args: str) -> str:
    out = StringIO()
    call_command("setup_shards", *args, stdout=out)
    return out.getvalue()


def problems(code_prefix: str = "activity_grades.E03") -> list[repair.Problem]:
    return [p for p in repair.plan().problems if p.id.startswith(code_prefix)]


# -- settings ------------------------------------------------------------------------


def test_shard_settings_are_checked_at_start_up(settings):
    if True:
        for value, says in [
            ("shard1", "must be list or tuple"),
            (["nowhere"], "names databases not in DATABASES: ['nowhere']"),
            (["default"], "must not name the primary 'default'"),
            (["shard1", "shard1"], "names an alias twice"),
            (["local"], "must not name an alias 'local'"),
            ([1], "must list database aliases"),
        ]:
            configure(settings, SHARDS=value)
            (error,) = setting_errors()
            assert "ACTIVITY_GRADES['SHARDS']" in error and says in error, error
        configure(settings, SHARDS=["shard1"], SHARD_PLACEMENT={"c1": "shard2", "c2": "local"})
        (error,) = setting_errors()
        assert "'SHARD_PLACEMENT'" in error and "not in SHARDS: {'c1': 'shard2'}" in error
        configure(settings, SHARD_PLACEMENT={True: "shard1"})
        (error,) = setting_errors()
        assert "'SHARD_PLACEMENT'" in error and "keys [True]" in error
        configure(settings, SHARD_PLACEMENT={}, SHARD_NEW_CLASSES="random")
        (error,) = setting_errors()
        assert "must be 'local' or 'hash'" in error
        configure(settings, SHARDS=[], SHARD_NEW_CLASSES="hash")
        (error,) = setting_errors()
        assert "'SHARD_NEW_CLASSES'" in error and "SHARDS is empty" in error
        configure(settings, SHARDS=["shard1"], READ_REPLICAS=["shard1"], SHARD_NEW_CLASSES="local")
        (error,) = setting_errors()
        assert "READ_REPLICAS name the same databases: ['shard1']" in error
        configure(settings, READ_REPLICAS=[], SHARD_PLACEMENT={123: "shard1"})
        assert setting_errors() == []
        assert app_settings.configured_placement("123") == "shard1"


def test_a_shard_alias_must_be_a_plain_name_and_postgresql(settings):
    odd = {"shard-1": entry(CLOSED_PORT), "lite": {"ENGINE": "django.db.backends.sqlite3"}}
    with aliases(odd):
        configure(settings, SHARDS=["shard-1"])
        (error,) = setting_errors()
        assert "letters, digits or underscores" in error and "'shard-1'" in error
        configure(settings, SHARDS=["lite"])
        (error,) = setting_errors()
        assert "not PostgreSQL: ['lite']" in error


# -- placement -----------------------------------------------------------------------


@pytest.mark.django_db
def test_placement_is_local_by_default_and_recorded_once(two_shards, settings):
    assert placement.shard_of("c1") == "local"
    assert placement.placement_of("c1").decided_by == "default"
    # Recorded: turning on hashing later does not move it.
    configure(settings, SHARD_NEW_CLASSES="hash")
    assert placement.shard_of("c1") == "local"
    assert placement.shard_of("c2") == hashed_shard("c2", ["shard1", "shard2"])
    assert placement.placement_of("c2").decided_by == "hash"


@pytest.mark.django_db
def test_explicit_placement_by_setting_and_by_place(two_shards, settings):
    configure(settings, SHARD_PLACEMENT={"c1": "shard2", 7: "shard1"})
    assert placement.shard_of("c1") == "shard2"
    assert placement.shard_of(7) == "shard1"
    assert placement.placement_of("7").decided_by == "setting"
    assert placement.place("c3", "shard1").decided_by == "place"
    assert placement.shard_of("c3") == "shard1"
    assert placement.place("c3", "local").shard == "local"  # no partitions: may change
    with pytest.raises(PlacementError, match="not a shard of"):
        placement.place("c3", "shard9")


@pytest.mark.django_db
def test_a_class_with_partitions_stays_local_and_cannot_be_placed(two_shards, settings):
    make_lms(class_ids=("123",))
    create.plan(all_terms=True).apply()
    configure(settings, SHARD_PLACEMENT={"123": "shard1"})
    assert placement.shard_of("123") == "local"
    # create_partitions asked first (it places a class before making its partitions),
    # when SHARD_PLACEMENT did not name it: local by default, and recorded.
    assert placement.placement_of("123").decided_by == "default"
    with pytest.raises(PlacementError, match="move_class 123 --to shard2"):
        placement.place("123", "shard2")
    assert placement.place("123", "local").shard == "local"
    # The setting disagrees with what is recorded: the health check says so.
    (found,) = shards.placement_findings()
    assert found.code == "activity_grades.E035"
    assert "'123'" in found.problem and "'shard1'" in found.problem


@pytest.mark.django_db
def test_placement_is_stable_when_a_third_shard_is_added(two_shards, settings):
    configure(settings, SHARD_NEW_CLASSES="hash")
    classes = [f"class-{i}" for i in range(30)]
    before = {c: placement.shard_of(c) for c in classes}
    assert set(before.values()) == {"shard1", "shard2"}
    configure(settings, SHARDS=["shard1", "shard2", "shard3"])
    three = ["shard1", "shard2", "shard3"]
    # The rule alone would move some of them to shard3; the record keeps them.
    assert any(hashed_shard(c, three) != before[c] for c in classes)
    assert {c: placement.shard_of(c) for c in classes} == before
    new = {placement.shard_of(f"new-{i}") for i in range(30)}
    assert "shard3" in new
    # Dropping a shard that holds placed classes is reported.
    configure(settings, SHARDS=["shard1", "shard3"])
    unknown = shards.placement_findings()
    assert unknown and all(p.code == "activity_grades.E036" for p in unknown)
    assert all("'shard2'" in p.problem for p in unknown)


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_placement_waits_and_agrees(two_shards, settings):
    configure(settings, SHARD_NEW_CLASSES="hash")
    dsn = connection.get_connection_params()
    dsn = {k: dsn[k] for k in ("dbname", "user", "host", "port", "password") if k in dsn}
    results: list[str] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            results.append(placement.shard_of("contested"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    other = "shard1" if hashed_shard("contested", ["shard1", "shard2"]) == "shard2" else "shard2"
    try:
        with psycopg.connect(**dsn) as holder:
            # Another process holds the class's placement lock and decides otherwise than
            # the hash would: both threads must wait, then read its decision.
            holder.execute(
                "SELECT pg_advisory_xact_lock(hashtext('activity_grades_placement'), "
                "hashtext('contested'))"
            )
            threads = [threading.Thread(target=ask) for _ in range(2)]
            for t in threads:
                t.start()
            while True:
                waiting = holder.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()
                if waiting and waiting[0] == 2:
                    break
            holder.execute(
                "INSERT INTO activity_grades_placement (class_id, shard, decided_by) "
                "VALUES ('contested', %s, 'place')",
                [other],
            )
            holder.commit()
            for t in threads:
                t.join()
        assert errors == []
        assert results == [other, other]
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM activity_grades_placement")
            assert cur.fetchone()[0] == 1
    finally:
        with connection.cursor() as cur:
            cur.execute("DELETE FROM activity_grades_placement")


# -- setup_shards --------------------------------------------------------------------


def test_setup_shards_with_no_shards_has_nothing_to_do(db):
    assert "Nothing to do: ACTIVITY_GRADES['SHARDS'] is empty." in run()


@shard_test
def test_setup_shards_dry_run_prints_the_statements_and_changes_nothing(shards_up, settings):
    settings.DATABASES["shard1"]["PASSWORD"] = "s3cret'pw"
    out = run("--dry-run")
    assert "s3cret" not in out
    assert 'CREATE EXTENSION IF NOT EXISTS "postgres_fdw"' in out
    port = settings.DATABASES["shard1"]["PORT"]
    assert (
        'CREATE SERVER "activity_grades_shard_shard1" FOREIGN DATA WRAPPER "postgres_fdw" '
        f"OPTIONS (\"host\" '127.0.0.1', \"port\" '{port}', \"dbname\" 'grades')" in out
    )
    assert (
        'CREATE USER MAPPING FOR CURRENT_USER SERVER "activity_grades_shard_shard1" '
        "OPTIONS (\"user\" 'postgres', \"password\" '********')" in out
    )
    assert "shard2: create the empty activity_grades parent on shard 'shard2'" in out
    assert server_options(server_name("shard1")) is None
    with connections["shard1"].cursor() as cur:
        cur.execute("SELECT to_regclass('activity_grades')")
        assert cur.fetchone()[0] is None


@shard_test
def test_setup_shards_sets_up_is_idempotent_and_follows_a_changed_port(shards_up, settings):
    out = run()
    assert "Ran 7 step(s)" in out, out  # extension, 2 x (server, mapping, shard parent)
    for alias in ("shard1", "shard2"):
        port = settings.DATABASES[alias]["PORT"]
        assert server_options(server_name(alias)) == {
            "host": "127.0.0.1",
            "port": port,
            "dbname": SHARD_DATABASE,
        }
        with connections[alias].cursor() as cur:
            cur.execute(
                "SELECT obj_description('activity_grades'::regclass, 'pg_class'), "
                "array_agg(attname::text ORDER BY attnum) FROM pg_attribute "
                "WHERE attrelid = 'activity_grades'::regclass AND attnum > 0"
            )
            marker, columns = cur.fetchone()
        assert marker == "activity_grades:shard-parent"
        with connection.cursor() as cur:
            cur.execute(
                "SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute "
                "WHERE attrelid = 'activity_grades'::regclass AND attnum > 0 AND NOT attisdropped"
            )
            assert columns == cur.fetchone()[0]
    assert "Nothing to do. (2 shard(s) set up)" in run()
    # Another port in DATABASES: the server's option is set, nothing else changes.
    settings.DATABASES["shard1"]["PORT"] = "6543"
    # Nothing listens there, so the shard itself is reported unreachable, but the
    # coordinator's side is planned all the same.
    out = run_failing("--dry-run")
    assert 'ALTER SERVER "activity_grades_shard_shard1" OPTIONS (SET "port" \'6543\')' in out
    assert "Would run 1 step(s)" in out
    assert "activity_grades.E030 shard 'shard1' (127.0.0.1:6543/grades) is unreachable" in out
    shards.plan(shards=["shard2"]).apply()  # shard2 alone: nothing to do
    plan = shards.plan()
    assert [s.code for s in plan.steps] == ["activity_grades.E032"]
    plan.apply()
    assert server_options(server_name("shard1"))["port"] == "6543"


def run_failing(*args: str) -> str:
    out = StringIO()
    with pytest.raises(CommandError, match="cannot fix itself"):
        call_command("setup_shards", *args, stdout=out)
    return out.getvalue()


@shard_test
def test_a_foreign_table_made_by_hand_reads_and_writes_the_shard(shards_up, settings):
    run()
    with connections["shard1"].cursor() as cur:
        cur.execute("CREATE TABLE e2e_leaf () INHERITS (activity_grades)")
    try:
        with connection.cursor() as cur:
            cur.execute(
                "IMPORT FOREIGN SCHEMA public LIMIT TO (e2e_leaf) "
                "FROM SERVER activity_grades_shard_shard1 INTO public "
                "OPTIONS (import_default 'true')"
            )
            cur.execute(
                "INSERT INTO e2e_leaf (id, activity_id, student_id, status, submitted_at, "
                "class_id, term_id) VALUES ('g1', 'c9/a1', 's1', 'graded', now(), 'c9', 't1')"
            )
            cur.execute("UPDATE e2e_leaf SET points = 7 WHERE id = 'g1'")
            cur.execute("SELECT id, points FROM e2e_leaf")
            assert cur.fetchall() == [("g1", 7)]
        with connections["shard1"].cursor() as cur:
            cur.execute("SELECT id, points, created_at IS NOT NULL FROM activity_grades")
            assert cur.fetchall() == [("g1", 7, True)]
        # A foreign table can be a child in the coordinator's tree (what the next step
        # builds on); shown in a transaction that is rolled back.
        with connection.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("ALTER FOREIGN TABLE e2e_leaf INHERIT activity_grades")
            cur.execute("SELECT id FROM activity_grades WHERE class_id = 'c9'")
            assert cur.fetchall() == [("g1",)]
            cur.execute("ROLLBACK")
    finally:
        with connection.cursor() as cur:
            cur.execute("DROP FOREIGN TABLE IF EXISTS e2e_leaf")


# -- health --------------------------------------------------------------------------


@shard_test
def test_check_partitions_finds_and_fixes_drift_of_the_setup(shards_up, settings):
    run()
    assert problems() == []
    with connection.cursor() as cur:
        cur.execute("ALTER SERVER \"activity_grades_shard_shard1\" OPTIONS (SET port '1')")
        cur.execute('DROP USER MAPPING FOR CURRENT_USER SERVER "activity_grades_shard_shard2"')
    with connections["shard2"].cursor() as cur:
        cur.execute("DROP TABLE activity_grades")
    found = {p.id: p for p in problems()}
    assert set(found) == {"activity_grades.E032", "activity_grades.E033", "activity_grades.E034"}
    assert "port set to" in found["activity_grades.E032"].message
    assert all(p.fixable for p in found.values())
    out = StringIO()
    with pytest.raises(CommandError, match="3 problem"):
        call_command("check_partitions", stdout=out)
    assert "activity_grades.E033 the coordinator's user has no user mapping" in out.getvalue()
    out = StringIO()
    call_command("check_partitions", "--fix", stdout=out)
    assert "fixed: alter the options of the foreign server" in out.getvalue()
    assert problems() == []
    # Without the extension (and so without its servers) every step is found again.
    with connection.cursor() as cur:
        cur.execute("DROP EXTENSION postgres_fdw CASCADE")
    ids = sorted(p.id for p in problems())
    assert (
        ids
        == ["activity_grades.E031"] + ["activity_grades.E032"] * 2 + ["activity_grades.E033"] * 2
    )
    repair.plan().apply()
    assert problems() == []


@shard_test
def test_a_stopped_shard_is_reported_by_check_partitions(shards_up, settings):
    run()
    assert problems() == []
    shards_up[1].stop()
    (found,) = problems()
    assert found.id == "activity_grades.E030" and not found.fixable
    port = shards_up[1].port
    assert f"shard 'shard2' (127.0.0.1:{port}/grades) is unreachable" in found.message
    out = StringIO()
    with pytest.raises(CommandError, match="1 problem"):
        call_command("check_partitions", stdout=out)
    assert "activity_grades.E030" in out.getvalue()
    # The other shard and the coordinator keep working.
    with connections["shard1"].cursor() as cur:
        cur.execute("SELECT count(*) FROM activity_grades")
        assert cur.fetchone()[0] == 0
    with pytest.raises(ShardError, match="not in ACTIVITY_GRADES"):
        shards.plan(shards=["shard9"])


# -- the migration -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_unapplying_0014_refuses_to_forget_classes_placed_on_shards(two_shards):
    placement.place("c1", "shard1")
    try:
        with pytest.raises(DatabaseError, match="forgets where 1 class"):
            call_command("migrate", "activity_grades", "0013", verbosity=0)
        assert placement.shard_of("c1") == "shard1"  # nothing changed
        placement.place("c1", "local")
        call_command("migrate", "activity_grades", "0013", verbosity=0)
        with connection.cursor() as cur:
            cur.execute("SELECT to_regclass('activity_grades_placement')")
            assert cur.fetchone()[0] is None
    finally:
        call_command("migrate", "activity_grades", verbosity=0)
        with connection.cursor() as cur:
            cur.execute("DELETE FROM activity_grades_placement")


@shard_test
def test_unapplying_0014_drops_the_foreign_servers_setup_made(shards_up):
    run()
    try:
        call_command("migrate", "activity_grades", "0013", verbosity=0)
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_foreign_server")
            assert cur.fetchone()[0] == 0
            cur.execute("SELECT count(*) FROM pg_user_mappings")
            assert cur.fetchone()[0] == 0
    finally:
        call_command("migrate", "activity_grades", verbosity=0)
    assert shards.plan().steps and "Ran 4 step(s)" in run()  # servers and mappings again
