"""Set up the shards of ``ACTIVITY_GRADES['SHARDS']`` (``manage.py setup_shards``).

``plan()`` compares what the settings ask for with what exists and lists the steps that
would make them agree, each with its statements, and what setup cannot do by itself
(``blockers``: a shard that does not answer, a server of the same name the app did not
make, a shard's table that differs). ``apply()`` runs the steps, each in its own
transaction on the database it changes. A second run finds nothing to do.

On the coordinator (the database ``using``): the ``postgres_fdw`` extension, per shard a
foreign server (host, port and dbname from the alias's ``DATABASES`` entry; other options
a DBA added are left alone) and a user mapping for the connection's user (user and
password from the same entry). On each shard: an empty ``activity_grades`` parent with
the coordinator's columns. The health checks (``operations.repair``, E030-E036) are the
same comparison: each step is a finding that ``check_partitions --fix`` repairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, connections

from ..core.constants import SHARD_PARENT_MARKER
from ..core.exceptions import ActivityGradesError, ShardError
from ..core.settings import app_settings
from ..core.shards import LOCAL, server_name
from ..db import placement as recorded_placement
from ..db import shards as fdw
from ..db.connection import atomic, cursor
from ..db.shards import Statement
from .base import Plan, Progress, Result, Stopwatch, each

__all__ = [
    "COORDINATOR",
    "Blocker",
    "SetupPlan",
    "SetupResult",
    "SetupStep",
    "placement_findings",
    "plan",
]

COORDINATOR = "coordinator"
"""``SetupStep.where`` of a step run on the coordinator (``using``)."""

# Health ids (stable; docs/admin.md and operations/repair.py list them).
UNREACHABLE = "activity_grades.E030"
EXTENSION = "activity_grades.E031"
SERVER = "activity_grades.E032"
MAPPING = "activity_grades.E033"
SHARD_PARENT = "activity_grades.E034"
PLACEMENT_SETTING = "activity_grades.E035"
PLACEMENT_UNKNOWN = "activity_grades.E036"


@dataclass(frozen=True)
class SetupStep:
    """One thing to create or change: ``problem`` says what is wrong, ``what`` the remedy."""

    code: str
    shard: str | None  # the alias it is for (None: the extension, for every shard)
    where: str  # COORDINATOR, or the shard alias whose database runs the statements
    problem: str
    what: str
    statements: tuple[Statement, ...]


@dataclass(frozen=True)
class Blocker:
    """Something setup cannot put right by itself, and what to do instead."""

    code: str
    shard: str | None
    problem: str
    hint: str


@dataclass
class SetupResult(Result):
    done: list[str] = field(default_factory=list)  # each step's ``what``


@dataclass
class SetupPlan(Plan[SetupStep, SetupResult]):
    """The steps (``items``) that would make every shard as configured, and the blockers."""

    blockers: list[Blocker] = field(default_factory=list)

    @property
    def steps(self) -> list[SetupStep]:
        return self.items

    def apply(self, progress: Progress | None = None) -> SetupResult:
        """Run every step, each in one transaction on its database; stop at the first error.

        Raises:
            ShardError: a step failed (nothing of that step changed; the ones before it
                stay done), with the statement's error and, for privileges, what to grant.
        """
        clock = Stopwatch()
        result = SetupResult()
        for _ in each(self.items, lambda s: self._run(s, result), progress):
            pass
        result.seconds = clock.seconds
        return result

    def _run(self, step: SetupStep, result: SetupResult) -> None:
        alias = self.using if step.where == COORDINATOR else step.where
        try:
            with atomic(alias), cursor(alias) as cur:
                fdw.run(cur, step.statements)
        except DatabaseError as exc:
            raise ShardError(f"{step.what} failed on {alias!r}: {_why(exc)}") from exc
        result.done.append(step.what)


def _why(exc: DatabaseError) -> str:
    text = str(exc).strip()
    if getattr(exc.__cause__, "sqlstate", None) == "42501":  # insufficient_privilege
        text += (
            " (privileges: docs/sharding.md; postgres_fdw is not a trusted extension: a "
            "superuser creates it once; a shard's table needs CREATE on its schema)"
        )
    return text


# -- what the settings ask for ---------------------------------------------------------


def _entry(alias: str) -> dict[str, Any]:
    return connections[alias].settings_dict


def wanted_server_options(alias: str) -> dict[str, str | None]:
    """host, port and dbname of the shard's DATABASES entry (None: leave unset)."""
    entry = _entry(alias)
    return {
        "host": str(entry.get("HOST") or "") or None,
        "port": str(entry.get("PORT") or "") or None,
        "dbname": str(entry.get("NAME") or "") or None,
    }


def wanted_mapping_options(alias: str) -> dict[str, str | None]:
    entry = _entry(alias)
    return {
        "user": str(entry.get("USER") or "") or None,
        "password": str(entry.get("PASSWORD") or "") or None,
    }


def _present(options: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in options.items() if v is not None}


def _describe(changes: list[fdw.OptionChange]) -> str:
    return ", ".join(
        f"{c.key} {c.action.lower()}"
        + ("" if c.value is None or c.key in fdw.SECRET_OPTIONS else f" to {c.value!r}")
        for c in changes
    )


# -- the plan --------------------------------------------------------------------------


def plan(using: str = "default", shards: Sequence[str] | None = None) -> SetupPlan:
    """What setting up ``shards`` (default: every alias of SHARDS) would do. Changes nothing.

    Raises:
        ShardError: a name in ``shards`` that SHARDS does not list.
    """
    app_settings.require_valid("SHARDS", "READ_REPLICAS")
    aliases = list(app_settings.shards if shards is None else shards)
    unknown = [a for a in aliases if a not in app_settings.shards]
    if unknown:
        raise ShardError(
            f"not in ACTIVITY_GRADES['SHARDS'] {list(app_settings.shards)!r}: {unknown!r}"
        )
    out = SetupPlan([], using=using)
    if not aliases:
        return out
    with cursor(using) as cur:
        if not fdw.fdw_installed(cur):
            if fdw.fdw_available(cur):
                out.items.append(
                    SetupStep(
                        EXTENSION,
                        None,
                        COORDINATOR,
                        "the postgres_fdw extension is not installed on the coordinator",
                        "create the postgres_fdw extension on the coordinator",
                        (fdw.create_extension(),),
                    )
                )
            else:
                out.blockers.append(
                    Blocker(
                        EXTENSION,
                        None,
                        "the coordinator's PostgreSQL server has no postgres_fdw extension "
                        "to install",
                        "install PostgreSQL's contrib modules on the coordinator's server "
                        "(Debian: postgresql-<version>; elsewhere postgresql-contrib)",
                    )
                )
        columns = fdw.parent_columns(cur)
        for alias in aliases:
            _coordinator_steps(cur, alias, out)
    for alias in aliases:
        _shard_steps(alias, columns, out)
    return out


def _coordinator_steps(cur: Any, alias: str, out: SetupPlan) -> None:
    name = server_name(alias)
    want = wanted_server_options(alias)
    state = fdw.server_state(cur, name)
    if state is None:
        out.items.append(
            SetupStep(
                SERVER,
                alias,
                COORDINATOR,
                f"the foreign server {name} of shard {alias!r} does not exist",
                f"create the foreign server {name}",
                tuple(fdw.create_server(name, _present(want))),
            )
        )
    elif not state.ours or state.wrapper != fdw.FDW:
        out.blockers.append(
            Blocker(
                SERVER,
                alias,
                f"a foreign server {name} exists but was not made by setup_shards "
                f"(wrapper {state.wrapper}, comment {state.comment!r})",
                f"rename or drop that server (ALTER SERVER {name} RENAME TO ...), then "
                "manage.py setup_shards",
            )
        )
        return
    else:
        changes = fdw.option_changes(state.options, want)
        if changes:
            out.items.append(
                SetupStep(
                    SERVER,
                    alias,
                    COORDINATOR,
                    f"the foreign server {name} disagrees with DATABASES[{alias!r}]: "
                    + _describe(changes),
                    f"alter the options of the foreign server {name}",
                    (fdw.alter_server(name, changes),),
                )
            )
    mapping = None if state is None else fdw.user_mapping(cur, name)
    want_user = wanted_mapping_options(alias)
    if mapping is None:
        out.items.append(
            SetupStep(
                MAPPING,
                alias,
                COORDINATOR,
                f"the coordinator's user has no user mapping on the foreign server {name}",
                f"create the user mapping of the current user on {name}",
                (fdw.create_user_mapping(name, _present(want_user)),),
            )
        )
        return
    changes = fdw.option_changes(mapping, want_user)
    if changes:
        out.items.append(
            SetupStep(
                MAPPING,
                alias,
                COORDINATOR,
                f"the user mapping on {name} disagrees with DATABASES[{alias!r}]: "
                + _describe(changes),
                f"alter the user mapping of the current user on {name}",
                (fdw.alter_user_mapping(name, changes),),
            )
        )


def _shard_steps(alias: str, columns: list[fdw.Column], out: SetupPlan) -> None:
    error = fdw.probe(alias)
    if error is not None:
        entry = _entry(alias)
        out.blockers.append(
            Blocker(
                UNREACHABLE,
                alias,
                f"shard {alias!r} ({entry.get('HOST') or 'local socket'}:"
                f"{entry.get('PORT') or 5432}/{entry.get('NAME')}) is unreachable: {error}",
                f"start that server or correct DATABASES[{alias!r}]; requests for the classes "
                "placed there fail until it answers",
            )
        )
        return
    with cursor(alias) as cur:
        schema = app_settings.SCHEMA or fdw.current_schema(cur)
        parent = fdw.shard_parent(cur, schema)
    where = f"shard {alias!r} ({schema}.activity_grades)"
    if parent is None:
        out.items.append(
            SetupStep(
                SHARD_PARENT,
                alias,
                alias,
                f"{where} has no activity_grades parent",
                f"create the empty activity_grades parent on shard {alias!r}",
                tuple(fdw.create_shard_parent(schema, columns)),
            )
        )
    elif parent.comment != SHARD_PARENT_MARKER:
        out.blockers.append(
            Blocker(
                SHARD_PARENT,
                alias,
                f"{where} holds a table activity_grades not made by setup_shards "
                f"(comment {parent.comment!r})",
                "a shard's database must be the app's alone: point the alias at an empty database",
            )
        )
    elif _shape(parent.columns) != _shape(columns):
        out.blockers.append(
            Blocker(
                SHARD_PARENT,
                alias,
                f"{where} has other columns than the coordinator's activity_grades",
                "bring its columns in line by hand (ALTER TABLE on the shard), as the "
                "coordinator's migrations changed them",
            )
        )


def _shape(columns: list[fdw.Column]) -> list[tuple[str, str, bool]]:
    return [(c.name, c.type, c.not_null) for c in columns]


# -- placements against the settings ---------------------------------------------------


def placement_findings(using: str = "default") -> list[Blocker]:
    """Recorded placements that SHARD_PLACEMENT contradicts, or on shards SHARDS lacks."""
    out: list[Blocker] = []
    if not recorded_placement.exists(using):
        return out  # migration 0014 not applied yet
    for p in recorded_placement.all_placements(using):
        if p.shard != LOCAL and p.shard not in app_settings.shards:
            out.append(
                Blocker(
                    PLACEMENT_UNKNOWN,
                    p.shard,
                    f"class {p.class_id!r} is placed on shard {p.shard!r}, which "
                    "ACTIVITY_GRADES['SHARDS'] does not list: its grades cannot be reached",
                    f"add {p.shard!r} back to SHARDS (and DATABASES)",
                )
            )
            continue
        configured = app_settings.configured_placement(p.class_id)
        if configured is not None and configured != p.shard:
            out.append(
                Blocker(
                    PLACEMENT_SETTING,
                    p.shard,
                    f"SHARD_PLACEMENT puts class {p.class_id!r} on {configured!r}, but it was "
                    f"placed on {p.shard!r} ({p.decided_by}, {p.placed_at:%Y-%m-%d %H:%M}) "
                    "and placement never changes by itself",
                    f"set SHARD_PLACEMENT[{p.class_id!r}] = {p.shard!r}; to really move the "
                    f"class: manage.py move_class {p.class_id} --to {configured} (not built "
                    "yet); a class without partitions: placement.place()",
                )
            )
    return out


def require_answers(
    aliases: Iterable[str], doing: str, error: type[ActivityGradesError] = ShardError
) -> None:
    """Connect to each shard (not ``'local'``) before anything changes: one that does not
    answer is named in ``error``.

    Raises:
        error: a shard does not answer.
    """
    for alias in dict.fromkeys(a for a in aliases if a != LOCAL):
        failed = fdw.probe(alias)
        if failed is not None:
            raise error(
                f"shard {alias!r} does not answer ({failed}): cannot {doing}; nothing was changed"
            )
