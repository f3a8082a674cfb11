"""The SQL of shards (issue 16): postgres_fdw on the coordinator, the parent on a shard.

On the coordinator: the ``postgres_fdw`` extension, one foreign server per shard (named
``core.shards.server_name(alias)``, marked ``activity_grades:shard``) and a user mapping
for the connection's user. On each shard: an empty ``activity_grades`` parent with the
coordinator's columns, marked ``activity_grades:shard-parent``. Statements are built with
``sql.Identifier``/``sql.Literal``; each comes with a copy whose password is masked, which
is the one ``--dry-run`` prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from django.db import connections
from psycopg import sql

from ..core.constants import PARENT, PARENT_CHECK, SHARD_MARKER, SHARD_PARENT_MARKER
from .connection import Cursor, execute

__all__ = [
    "FDW",
    "MASK",
    "SECRET_OPTIONS",
    "Column",
    "OptionChange",
    "ServerState",
    "ShardParent",
    "Statement",
    "alter_server",
    "alter_user_mapping",
    "create_extension",
    "create_server",
    "create_shard_parent",
    "create_user_mapping",
    "current_schema",
    "fdw_available",
    "fdw_installed",
    "option_changes",
    "parent_columns",
    "probe",
    "run",
    "server_state",
    "shard_parent",
    "user_mapping",
]

FDW = "postgres_fdw"
MASK = "********"
SECRET_OPTIONS = frozenset({"password"})
"""Option values never printed (``--dry-run``, logs, health messages)."""

Action = Literal["ADD", "SET", "DROP"]


@dataclass(frozen=True)
class Statement:
    """One statement to run, and the text to show for it (secrets masked)."""

    query: sql.Composed
    shown: sql.Composed

    @property
    def text(self) -> str:
        """The statement as ``--dry-run`` prints it (secrets masked)."""
        return self.shown.as_string(None)


@dataclass(frozen=True)
class OptionChange:
    action: Action
    key: str
    value: str | None = None  # None for DROP


@dataclass(frozen=True)
class ServerState:
    """A foreign server on the coordinator as the catalog has it."""

    name: str
    wrapper: str
    options: dict[str, str]
    comment: str | None

    @property
    def ours(self) -> bool:
        return self.comment == SHARD_MARKER


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(): SQL text from the catalog
    not_null: bool
    default: str | None  # pg_get_expr(): SQL text from the catalog


@dataclass(frozen=True)
class ShardParent:
    """The ``activity_grades`` table of a shard as its catalog has it."""

    comment: str | None
    columns: list[Column]


# -- the coordinator -------------------------------------------------------------------


def fdw_available(cur: Cursor) -> bool:
    """Whether the server can create the extension (its contrib package is installed)."""
    cur.execute("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = %s)", [FDW])
    return bool(cur.fetchone()[0])


def fdw_installed(cur: Cursor) -> bool:
    cur.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = %s)", [FDW])
    return bool(cur.fetchone()[0])


def _options(pairs: Iterable[str] | None) -> dict[str, str]:
    """``['host=db1', 'port=5432']`` (srvoptions, umoptions) as a dict."""
    return dict(pair.split("=", 1) for pair in pairs or [])


def server_state(cur: Cursor, name: str) -> ServerState | None:
    cur.execute(
        "SELECT w.fdwname, s.srvoptions, obj_description(s.oid, 'pg_foreign_server') "
        "FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw "
        "WHERE s.srvname = %s",
        [name],
    )
    row = cur.fetchone()
    if row is None:
        return None
    return ServerState(name, row[0], _options(row[1]), row[2])


def user_mapping(cur: Cursor, server: str) -> dict[str, str] | None:
    """The options of the current user's mapping on ``server``; None without one."""
    cur.execute(
        "SELECT umoptions FROM pg_user_mappings WHERE srvname = %s "
        "AND umuser = (SELECT oid FROM pg_roles WHERE rolname = current_user)",
        [server],
    )
    row = cur.fetchone()
    return None if row is None else _options(row[0])


def option_changes(have: Mapping[str, str], want: Mapping[str, str | None]) -> list[OptionChange]:
    """What turns the options ``have`` into ``want`` (a None value: the option must go)."""
    out: list[OptionChange] = []
    for key, value in want.items():
        if value is None:
            if key in have:
                out.append(OptionChange("DROP", key))
        elif key not in have:
            out.append(OptionChange("ADD", key, value))
        elif have[key] != value:
            out.append(OptionChange("SET", key, value))
    return out


def _value(key: str, value: str, masked: bool) -> sql.Composable:
    return sql.Literal(MASK if masked and key in SECRET_OPTIONS else value)


def _option_list(options: Mapping[str, str], masked: bool) -> sql.Composed:
    return sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(k), _value(k, v, masked)) for k, v in options.items()
    )


def _change_list(changes: Iterable[OptionChange], masked: bool) -> sql.Composed:
    parts = []
    for c in changes:
        if c.action == "DROP":
            parts.append(sql.SQL("DROP {}").format(sql.Identifier(c.key)))
        else:
            assert c.value is not None
            parts.append(
                sql.SQL("{} {} {}").format(
                    sql.SQL(c.action), sql.Identifier(c.key), _value(c.key, c.value, masked)
                )
            )
    return sql.SQL(", ").join(parts)


def _statement(template: str, *args: Any, secret: Any = None) -> Statement:
    """``template`` formatted with ``args`` and, last, ``secret(masked)``."""

    def build(masked: bool) -> sql.Composed:
        extra = [] if secret is None else [secret(masked)]
        return sql.SQL(template).format(*args, *extra)

    return Statement(build(False), build(True))


def create_extension() -> Statement:
    return _statement("CREATE EXTENSION IF NOT EXISTS {}", sql.Identifier(FDW))


def create_server(name: str, options: Mapping[str, str]) -> list[Statement]:
    """``CREATE SERVER`` with ``options``, then its ownership marker."""
    create = _statement(
        "CREATE SERVER {} FOREIGN DATA WRAPPER {} OPTIONS ({})",
        sql.Identifier(name),
        sql.Identifier(FDW),
        secret=lambda masked: _option_list(options, masked),
    )
    comment = _statement(
        "COMMENT ON SERVER {} IS {}", sql.Identifier(name), sql.Literal(SHARD_MARKER)
    )
    return [create, comment]


def alter_server(name: str, changes: list[OptionChange]) -> Statement:
    return _statement(
        "ALTER SERVER {} OPTIONS ({})",
        sql.Identifier(name),
        secret=lambda masked: _change_list(changes, masked),
    )


def create_user_mapping(server: str, options: Mapping[str, str]) -> Statement:
    if not options:
        return _statement("CREATE USER MAPPING FOR CURRENT_USER SERVER {}", sql.Identifier(server))
    return _statement(
        "CREATE USER MAPPING FOR CURRENT_USER SERVER {} OPTIONS ({})",
        sql.Identifier(server),
        secret=lambda masked: _option_list(options, masked),
    )


def alter_user_mapping(server: str, changes: list[OptionChange]) -> Statement:
    return _statement(
        "ALTER USER MAPPING FOR CURRENT_USER SERVER {} OPTIONS ({})",
        sql.Identifier(server),
        secret=lambda masked: _change_list(changes, masked),
    )


_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""


def parent_columns(cur: Cursor) -> list[Column]:
    """The columns of the coordinator's parent ``activity_grades`` (as search_path finds it)."""
    cur.execute("SELECT to_regclass(%s)::oid", [PARENT])
    cur.execute(_COLUMNS, [cur.fetchone()[0]])
    return [Column(*row) for row in cur.fetchall()]


# -- a shard -------------------------------------------------------------------------


def current_schema(cur: Cursor) -> str:
    cur.execute("SELECT current_schema()")
    return str(cur.fetchone()[0])


def shard_parent(cur: Cursor, schema: str) -> ShardParent | None:
    """The shard's ``<schema>.activity_grades``, or None when it has none."""
    cur.execute(
        "SELECT c.oid, obj_description(c.oid, 'pg_class') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        [schema, PARENT],
    )
    row = cur.fetchone()
    if row is None:
        return None
    cur.execute(_COLUMNS, [row[0]])
    return ShardParent(row[1], [Column(*r) for r in cur.fetchall()])


def create_shard_parent(schema: str, columns: list[Column]) -> list[Statement]:
    """The shard's empty parent: the coordinator's columns, holding no rows itself."""
    table = sql.Identifier(schema, PARENT)
    definitions = [
        sql.SQL("{} {}{}{}").format(
            sql.Identifier(c.name),
            sql.SQL(c.type),  # catalog text (format_type), not user input
            sql.SQL(" NOT NULL") if c.not_null else sql.SQL(""),
            # pg_get_expr() text from the coordinator's catalog, not user input
            sql.SQL(" DEFAULT {}").format(sql.SQL(c.default)) if c.default else sql.SQL(""),
        )
        for c in columns
    ]
    definitions.append(
        sql.SQL("CONSTRAINT {} CHECK (false) NO INHERIT").format(sql.Identifier(PARENT_CHECK))
    )
    return [
        _statement("CREATE SCHEMA IF NOT EXISTS {}", sql.Identifier(schema)),
        _statement("CREATE TABLE {} ({})", table, sql.SQL(", ").join(definitions)),
        _statement("COMMENT ON TABLE {} IS {}", table, sql.Literal(SHARD_PARENT_MARKER)),
    ]


# -- running and reaching --------------------------------------------------------------


def run(cur: Cursor, statements: Iterable[Statement]) -> None:
    for statement in statements:
        execute(cur, statement.query)


def probe(alias: str, timeout: int = 5) -> str | None:
    """Connect to ``alias`` directly (its DATABASES entry); None, or why it failed.

    A new connection with ``connect_timeout`` (unless the alias sets one), so a host
    that does not answer costs seconds, not the operating system's TCP timeout.
    """
    params = connections[alias].get_connection_params()
    params.setdefault("connect_timeout", timeout)
    try:
        with psycopg.connect(**params) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None
