"""The SQL files in activity_grades/sql: released text never changes, and it is what
migrated databases hold.

- Every .sql file matches MANIFEST.sha256 and is listed there, and every one is loaded
  by a migration.
- The newest version file of each function (those generated from settings aside)
  creates, in a scratch schema, exactly what the migrated test database holds:
  ``prosrc``, arguments, result, language, volatility, strictness.
- The catalog the migrations produce equals the snapshot of the newest migration
  (``tests/fixtures/catalog_0018.json``); migrated back to 0017 it equals
  ``catalog_0017.json``, back to 0016 it equals
  ``catalog_0016.json``, back to 0015 it equals
  ``catalog_0015.json``, back to 0014 it equals
  ``catalog_0014.json``, back to 0013 it equals
  ``catalog_0013.json``, back to 0012 it equals
  ``catalog_0012.json``, back to 0011 it equals
  ``catalog_0011.json``, back to 0009 it equals
  ``catalog_0009.json``, back to 0008
  ``catalog_0008.json``, back to 0007
  ``catalog_0007.json``, back to 0006
  ``catalog_0006.json``, back to 0005 ``catalog_0005.json`` and back to 0002
  ``catalog_0002.json`` (the last two taken from the migrations as they were before
  their SQL moved into files), and forward again the newest snapshot once more.

``catalog_0002.json`` and ``catalog_0005.json`` were recorded at commit
f84deabb7d2416ea3946e7cf1231557f296c3ad6 (their ``generated_from_commit``), from a
checkout of that commit with this module added, by ``catalog()`` below::

    ACTIVITY_GRADES_WRITE_CATALOG=1 TEST_DATABASE_NAME=test_sqlfiles \\
        DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m pytest tests/test_sql_files.py -k "migrate_forward or back_to"

Recording them against the embedded server (PostgreSQL 16, no DATABASE_URL) gave the
same files byte for byte. A migration that deliberately changes an installed object
records new snapshots the same way: ``catalog_0006.json`` was recorded by
``-k migrate_forward`` when 0006 was the newest migration, ``catalog_0007.json`` (the
uniqueness key, 0007) the same way once 0007 existed, ``catalog_0008.json`` (the
conversion's state, 0008) once 0008 existed, ``catalog_0009.json`` (the functions'
search_path, 0009) once 0009 existed, ``catalog_0011.json`` (the write rule of issue 12,
0011) once 0011 existed, ``catalog_0012.json`` (the compressed archive, 0012) once 0012
existed, ``catalog_0013.json`` (readable timestamps on UPDATE, 0013) once 0013 existed,
``catalog_0014.json`` (the shards' placement table, 0014) once 0014 existed,
``catalog_0015.json`` (monthly partitions, 0015) once 0015 existed,
``catalog_0016.json`` (the row-level key-index functions of foreign partitions, 0016)
once 0016 existed, ``catalog_0017.json`` (ensure_partition v4, 0017) once 0017 existed,
``catalog_0018.json`` (move_class's record, log and capture function, 0018) once 0018
existed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RunPython, RunSQL
from psycopg import sql

from activity_grades import sql as app_sql

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
# The functions triggers call and the two that create tables: 0009 (and 0016 for its two)
# sets their search_path.
SEARCH_PATH_FUNCTIONS = {
    f"activity_grades_{n}"
    for n in (
        *("route", "move", "keys_insert", "keys_delete", "keys_update", "no_truncate"),
        *("ensure_partition", "archive_year", "ensure_month"),
        "readable",  # 0013
        *("key_insert_row", "key_delete_row"),  # 0016: key index of foreign partitions
        "move_capture",  # 0018: move_class's capture trigger
    )
}
CATALOG_0007 = FIXTURES / "catalog_0007.json"
CATALOG_0008 = FIXTURES / "catalog_0008.json"
CATALOG_0009 = FIXTURES / "catalog_0009.json"
CATALOG_0011 = FIXTURES / "catalog_0011.json"
CATALOG_0012 = FIXTURES / "catalog_0012.json"
CATALOG_0013 = FIXTURES / "catalog_0013.json"
CATALOG_0014 = FIXTURES / "catalog_0014.json"
CATALOG_0015 = FIXTURES / "catalog_0015.json"
CATALOG_0016 = FIXTURES / "catalog_0016.json"
CATALOG_0017 = FIXTURES / "catalog_0017.json"
CATALOG_LATEST = FIXTURES / "catalog_0018.json"  # migrated to the newest migration
CATALOG_0006 = FIXTURES / "catalog_0006.json"  # migrated back to 0006
CATALOG_0005 = FIXTURES / "catalog_0005.json"  # migrated back to 0005
CATALOG_0002 = FIXTURES / "catalog_0002.json"  # migrated back to 0002
# Set to record the snapshots instead of comparing with them (see above).
WRITE_SNAPSHOTS = bool(os.environ.get("ACTIVITY_GRADES_WRITE_CATALOG"))
SCRATCH = "activity_grades_sql_files_scratch"

# Installed after every migrate by the app's post_migrate handler from ACTIVITY_GRADES
# settings and the partition registry (the migrations install stubs of some): their
# bodies, and for the stubs even the language, depend on the project, so only their
# signatures are compared with the snapshot, and their files are not compared with
# the database.
GENERATED_FUNCTIONS = frozenset(
    {
        "activity_grades_class_of",
        "activity_grades_term_at",
        "activity_grades_term_bounds",
        "activity_grades_locate",
        "activity_grades_terms",
        "activity_grades_class_ids",
        "activity_grades_insert_into",
        "activity_grades_granularity",
        "activity_grades_month_bounds",
    }
)

# Objects of the app: every name starts with one of these prefixes (the LMS demo's and
# Django's own tables do not).
APP_NAME_PATTERN = r"^(archived_)?activity_grades"

FUNCTION_FILE = re.compile(r"^functions/(?P<name>[a-z0-9_]+)/v(?P<version>[1-9][0-9]*)\.sql$")
SCHEMA_FILE = re.compile(r"^schema/[0-9]{4}_[a-z0-9_]+(\.reverse)?\.sql$")


def function_versions() -> dict[str, list[int]]:
    """``{function name: [1, 2, ...]}`` from the files under functions/."""
    versions: dict[str, list[int]] = {}
    for relative in app_sql.sql_files():
        match = FUNCTION_FILE.match(relative)
        if match:
            versions.setdefault(match["name"], []).append(int(match["version"]))
    return {name: sorted(found) for name, found in versions.items()}


# --- the files ---------------------------------------------------------------------


def test_every_sql_file_matches_the_manifest_and_is_listed():
    listed = app_sql.read_manifest()
    on_disk = app_sql.sql_files()
    assert sorted(listed) == on_disk, "run: python -m activity_grades.sql --write-manifest"
    digests = {
        relative: hashlib.sha256((app_sql.SQL_DIR / relative).read_bytes()).hexdigest()
        for relative in on_disk
    }
    changed = [relative for relative in on_disk if digests[relative] != listed[relative]]
    # A released file is never edited (activity_grades/sql/README.md): a change is a new
    # version file and a new migration.
    assert not changed


def test_the_sql_folder_holds_only_named_sql_files():
    others = sorted(
        p.relative_to(app_sql.SQL_DIR).as_posix()
        for p in app_sql.SQL_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert set(others) - set(app_sql.sql_files()) == {
        "MANIFEST.sha256",
        "README.md",
        "__init__.py",
        "__main__.py",
        "guard.py",  # RefuseDataLoss, the migrations' refusal to drop grades
    }
    for relative in app_sql.sql_files():
        assert FUNCTION_FILE.match(relative) or SCHEMA_FILE.match(relative), relative
    for name, versions in function_versions().items():
        assert versions == list(range(1, len(versions) + 1)), name
        for version in versions:
            text = app_sql.read(app_sql.function(name, version))
            # One function per file, created or replaced, named after its folder.
            assert re.findall(r"CREATE (?:OR REPLACE )?FUNCTION (\w+)\(", text) == [name], (
                name,
                version,
            )
            assert f"CREATE OR REPLACE FUNCTION {name}(" in text, (name, version)


def test_every_sql_file_is_loaded_by_a_migration():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    operations = [
        operation
        for (app, _), migration in loader.disk_migrations.items()
        if app == "activity_grades"
        for operation in migration.operations
    ]
    scripts = [
        script
        for operation in operations
        if isinstance(operation, RunSQL)
        for script in (operation.sql, operation.reverse_sql)
        if isinstance(script, str)
    ] + [  # run_in_batches: the query files of a RunPython
        step.text
        for operation in operations
        if isinstance(operation, RunPython)
        for step in (operation.code, operation.reverse_code)
    ]
    unused = [
        relative
        for relative in app_sql.sql_files()
        if not any(app_sql.read(relative) in script for script in scripts)
    ]
    assert not unused


def test_the_loader_refuses_paths_outside_the_folder():
    for bad in ["../models.py", "/etc/passwd.sql", "functions/../../x.sql", "README.md"]:
        with pytest.raises(ValueError):
            app_sql.read(bad)
    with pytest.raises(FileNotFoundError):
        app_sql.read(app_sql.function("activity_grades_route", 99))


# --- the files against the database ------------------------------------------------

_FUNCTION = """
SELECT pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.prosrc,
       l.lanname, p.provolatile::text, p.proisstrict, p.prosecdef, p.proparallel::text,
       p.proconfig
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = %s::regnamespace AND p.proname = %s
"""


@contextlib.contextmanager
def scratch_schema(cursor) -> Iterator[None]:
    """An empty schema first on search_path (then the current one), rolled back on exit.

    An unqualified CREATE FUNCTION creates in the first schema of search_path, so a
    file runs there without touching what the migrations installed; types and the
    functions it calls still resolve in the current schema.
    """
    with transaction.atomic():
        cursor.execute("SELECT current_schema()")
        (current,) = cursor.fetchone()
        cursor.execute(f"CREATE SCHEMA {SCRATCH}")
        cursor.execute(
            sql.SQL("SET LOCAL search_path TO {}, {}")
            .format(sql.Identifier(SCRATCH), sql.Identifier(current))
            .as_string(cursor.connection)
        )
        try:
            yield
        finally:
            transaction.set_rollback(True)


def definitions(cursor, schema: str, name: str) -> list[tuple]:
    cursor.execute(_FUNCTION, [schema, name])
    return cursor.fetchall()


def assert_functions_match_files(versions: dict[str, int]) -> None:
    """Every function in ``versions`` is, in public, what its file of that version creates."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        (public,) = cursor.fetchone()
        for name, version in sorted(versions.items()):
            installed = definitions(cursor, public, name)
            assert len(installed) == 1, (name, installed)
            if name in SEARCH_PATH_FUNCTIONS and installed[0][-1] is not None:
                # Migration 0009 gives these their setting (the test below checks it).
                assert installed[0][-1] == [f"search_path={public}, pg_temp"], name
                installed = [(*installed[0][:-1], None)]
            with scratch_schema(cursor):
                cursor.execute(app_sql.read(app_sql.function(name, version)))
                assert definitions(cursor, SCRATCH, name) == installed, (name, version)


@pytest.mark.django_db
def test_the_functions_triggers_call_run_with_the_apps_schema_on_search_path():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname, proconfig FROM pg_proc WHERE pronamespace = "
            "current_schema()::regnamespace AND proconfig IS NOT NULL AND proname ~ %s",
            [APP_NAME_PATTERN],
        )
        configured = dict(cursor.fetchall())
        cursor.execute("SELECT current_schema()")
        (schema,) = cursor.fetchone()
    assert configured == dict.fromkeys(SEARCH_PATH_FUNCTIONS, [f"search_path={schema}, pg_temp"])


@pytest.mark.django_db
def test_the_newest_file_of_each_function_is_what_migrated_databases_hold():
    newest = {
        name: versions[-1]
        for name, versions in function_versions().items()
        if name not in GENERATED_FUNCTIONS
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT proname FROM pg_proc "
            "WHERE pronamespace = current_schema()::regnamespace AND proname ~ %s",
            [APP_NAME_PATTERN],
        )
        installed = {name for (name,) in cursor.fetchall()} - GENERATED_FUNCTIONS
    assert installed == set(newest)
    assert_functions_match_files(newest)


@pytest.mark.django_db
def test_every_version_of_a_function_keeps_its_signature():
    # CREATE OR REPLACE of the previous version is the reverse of a migration: it
    # only replaces (rather than adds an overload or fails) with the same signature.
    with connection.cursor() as cursor:
        for name, versions in function_versions().items():
            signatures = set()
            for version in versions:
                with scratch_schema(cursor):
                    cursor.execute(app_sql.read(app_sql.function(name, version)))
                    cursor.execute(
                        "SELECT proname, pg_get_function_arguments(oid), "
                        "pg_get_function_result(oid) FROM pg_proc "
                        "WHERE pronamespace = %s::regnamespace",
                        [SCRATCH],
                    )
                    created = cursor.fetchall()
                assert len(created) == 1 and created[0][0] == name, (name, version, created)
                signatures.add(created[0][1:])
            assert len(signatures) == 1, (name, signatures)


# --- the catalog against the snapshot ----------------------------------------------

_FUNCTION_ATTRIBUTES = (
    "prosrc",
    "volatility",
    "strict",
    "language",
    "security_definer",
    "parallel",
    "config",
)
_FUNCTIONS = """
SELECT p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
       p.prosrc, p.provolatile::text, p.proisstrict, l.lanname, p.prosecdef,
       p.proparallel::text, p.proconfig
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = current_schema()::regnamespace AND p.proname ~ %s
 ORDER BY 1, 2
"""

# Partitions and archive tables are data, not schema: children in the inheritance or
# declarative tree, or tables carrying the marker comment of one, are left out.
_TABLES = """
SELECT c.oid, c.relname, c.relkind::text, pg_get_partkeydef(c.oid), c.reloptions,
       obj_description(c.oid, 'pg_class')
  FROM pg_class c
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
   AND c.relname ~ %s
   AND NOT c.relispartition
   AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
   AND coalesce(obj_description(c.oid, 'pg_class'), '')
       NOT IN ('activity_grades:partition', 'activity_grades:archive')
 ORDER BY c.relname
"""

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""

# contype 'n' (NOT NULL rows, PostgreSQL 18+) repeats attnotnull: left out so the
# snapshot reads the same on every server version.
_CONSTRAINTS = """
SELECT conname, contype::text, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = %s AND contype <> 'n' ORDER BY conname
"""

_INDEXES = """
SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = %s ORDER BY c.relname
"""

_TRIGGERS = """
SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger
 WHERE tgrelid = %s AND NOT tgisinternal ORDER BY tgname
"""


def catalog(cursor) -> dict:
    """What the app's migrations installed, as plain JSON-able data.

    Functions: signature, body (``prosrc``), volatility, strictness, language and other
    attributes; for GENERATED_FUNCTIONS the signature only. Tables (parents only, see
    ``_TABLES``): kind, partition key, options, comment, columns (type, NOT NULL, default),
    constraints, indexes and triggers, each as the server's own definition text.
    Column compression is left out: whether lz4 exists depends on how the server was
    built (the PostgreSQL 15 server has it, the embedded one does not).
    """
    functions: dict[str, dict] = {}
    cursor.execute(_FUNCTIONS, [APP_NAME_PATTERN])
    for name, args, result, *attributes in cursor.fetchall():
        entry: dict = {"name": name, "arguments": args, "result": result}
        if name not in GENERATED_FUNCTIONS:
            entry |= dict(zip(_FUNCTION_ATTRIBUTES, attributes, strict=True))
        functions[f"{name}({args})"] = entry
    tables: dict[str, dict] = {}
    cursor.execute(_TABLES, [APP_NAME_PATTERN])
    for oid, name, kind, partkey, options, comment in cursor.fetchall():
        cursor.execute(_COLUMNS, [oid])
        columns = [
            {"name": n, "type": t, "not_null": nn, "default": d, "identity": i, "generated": g}
            for n, t, nn, d, i, g in cursor.fetchall()
        ]
        cursor.execute(_CONSTRAINTS, [oid])
        constraints = {n: {"type": t, "definition": d} for n, t, d in cursor.fetchall()}
        cursor.execute(_INDEXES, [oid])
        indexes = dict(cursor.fetchall())
        cursor.execute(_TRIGGERS, [oid])
        triggers = dict(cursor.fetchall())
        tables[name] = {
            "kind": kind,
            "partition_key": partkey,
            "options": options,
            "comment": comment,
            "columns": columns,
            "constraints": constraints,
            "indexes": indexes,
            "triggers": triggers,
        }
    return {"functions": functions, "tables": tables}


def _write_snapshot(path: Path, snapshot: dict) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    path.parent.mkdir(exist_ok=True)
    data = {"generated_from_commit": commit, **snapshot}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def assert_catalog_is_the_snapshot(path: Path) -> None:
    """The app's catalog now equals the snapshot in ``path`` (or is recorded there)."""
    with connection.cursor() as cursor:
        now = catalog(cursor)
    if WRITE_SNAPSHOTS:
        _write_snapshot(path, now)
        return
    expected = json.loads(path.read_text())
    expected.pop("generated_from_commit")
    # One object at a time, so a failure names the object.
    assert sorted(now["functions"]) == sorted(expected["functions"])
    for key, definition in expected["functions"].items():
        assert now["functions"][key] == definition, key
    assert sorted(now["tables"]) == sorted(expected["tables"])
    for name, definition in expected["tables"].items():
        assert now["tables"][name] == definition, name


@pytest.mark.django_db
def test_existing_databases_migrate_forward_with_no_change_to_any_installed_object():
    assert_catalog_is_the_snapshot(CATALOG_LATEST)
    if WRITE_SNAPSHOTS:
        pytest.skip(f"wrote {CATALOG_LATEST.relative_to(ROOT)}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("target", "snapshot"),
    [
        # 0018's reverse drops move_class's record, log and capture function and the
        # placement's 'move'.
        ("0017", CATALOG_0017),
        # 0017's reverse loads ensure_partition v3 and 0009's search_path again.
        ("0016", CATALOG_0016),
        # 0016's reverse drops the row-level key-index functions of foreign partitions.
        ("0015", CATALOG_0015),
        # 0015's reverse drops the month registry, the granularity column, ensure_month,
        # month_bounds and granularity, and loads route v4, move v3 and 0009's search_path.
        ("0014", CATALOG_0014),
        # 0014's reverse drops the placement table (and setup_shards' foreign servers).
        ("0013", CATALOG_0013),
        # 0013's reverse drops the trigger activity_grades_readable from every partition (in
        # batches), loads partition_ddl v2 and drops the function.
        ("0012", CATALOG_0012),
        # 0012's reverse drops the compressed archive (chunks, view, registry), renames the
        # row archive back and loads archive_year v1.
        ("0011", CATALOG_0011),
        # 0011's reverse loads route v3, move v2, ensure_partition v2 and 0009's search_path
        # again, and drops check_timestamps and check_placement.
        ("0009", CATALOG_0009),
        # 0009's reverse resets the search_path of the six functions triggers call.
        ("0008", CATALOG_0008),
        # 0008's reverse drops the conversion's two state tables.
        ("0007", CATALOG_0007),
        # 0007's reverse drops activity_grades_unique_key() and loads partition_ddl v1.
        ("0006", CATALOG_0006),
        # 0006's reverse loads the route v2 and move v1 files again.
        ("0005", CATALOG_0005),
    ],
)
def test_back_one_step_restores_exactly_what_that_migration_installed(target, snapshot):
    try:
        call_command("migrate", "activity_grades", target, verbosity=0)
        if not WRITE_SNAPSHOTS:
            assert_catalog_is_the_snapshot(snapshot)
    finally:
        call_command("migrate", "activity_grades", verbosity=0)
    if not WRITE_SNAPSHOTS:
        assert_catalog_is_the_snapshot(CATALOG_LATEST)


@pytest.mark.django_db(transaction=True)
def test_back_to_0002_and_forward_again_installs_the_same_objects():
    # 0002 is the last step before the SQL of 0003-0005: their reverses load every
    # previous version's file (ensure_partition, partition_name and route v1).
    try:
        call_command("migrate", "activity_grades", "0002", verbosity=0)
        assert_catalog_is_the_snapshot(CATALOG_0002)
        if not WRITE_SNAPSHOTS:
            # archive_year came with 0003, unique_key with 0007, the checks with 0011
            later = {
                "activity_grades_archive_year",
                "activity_grades_unique_key",
                "activity_grades_check_timestamps",
                "activity_grades_check_placement",
                "activity_grades_readable",
                "activity_grades_ensure_month",
                "activity_grades_key_insert_row",
                "activity_grades_key_delete_row",
                "activity_grades_move_capture",
            }
            at_0002 = {
                name for name in function_versions() if name not in GENERATED_FUNCTIONS | later
            }
            assert_functions_match_files(dict.fromkeys(at_0002, 1))
    finally:
        call_command("migrate", "activity_grades", verbosity=0)
    assert_catalog_is_the_snapshot(CATALOG_LATEST)
    if WRITE_SNAPSHOTS:
        pytest.skip(f"wrote {CATALOG_0002.relative_to(ROOT)}, {CATALOG_LATEST.relative_to(ROOT)}")
