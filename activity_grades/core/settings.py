"""Settings of activity_grades: one typed object over ``settings.ACTIVITY_GRADES``.

Every key is optional; the defaults are the seed design's names, so an LMS whose
tables are named otherwise only overrides what differs::

    ACTIVITY_GRADES = {"ACTIVITIES_TABLE": "courses_activity", "ACTIVITY_CLASS_COLUMN": "course_id"}

Read ``app_settings.<NAME>``: values are read on every access, so ``override_settings``
works. ``validate()`` lists what is wrong (unknown keys, wrong types, impossible
combinations); the system check ``activity_grades.E100`` reports it at start-up.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import zoneinfo
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar, overload

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from .exceptions import SettingsError
from .shards import ALIAS_PATTERN, LOCAL, MAX_ALIAS_LENGTH

__all__ = ["GRANULARITIES", "UNIQUE_KEY_COLUMNS", "AppSettings", "TermYearSource", "app_settings"]

T = TypeVar("T")

# PostgreSQL durations (lock_timeout, statement_timeout): "5s", "300ms", "1min", "250".
_DURATION = re.compile(r"^\d+(\.\d+)?\s*(us|ms|s|min|h|d)?$")

# Where a term's academic year comes from (AppSettings.term_year_source).
TermYearSource = Literal["column", "table", "rule"]

# Keys that only mean something with TERM_YEAR_TABLE set.
_YEAR_TABLE_COLUMNS = ("TERM_YEAR_TABLE_ID_COLUMN", "TERM_YEAR_TABLE_LABEL_COLUMN")


def _non_negative(value: int) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def _aliases(value: list[str] | tuple[str, ...]) -> str | None:
    unknown = [a for a in value if a not in settings.DATABASES]
    if unknown:
        return f"names databases not in DATABASES: {unknown!r}"
    if DEFAULT_DB_ALIAS in value:
        return f"must not name the primary {DEFAULT_DB_ALIAS!r}"
    return None


def _shards(value: list[str] | tuple[str, ...]) -> str | None:
    if not all(isinstance(a, str) for a in value):
        return f"must list database aliases (str), not {value!r}"
    if len(set(value)) != len(value):
        return f"names an alias twice: {sorted(a for a in set(value) if value.count(a) > 1)!r}"
    if LOCAL in value:
        return f"must not name an alias {LOCAL!r}: it means the coordinator itself"
    odd = [a for a in value if not ALIAS_PATTERN.fullmatch(a)]
    if odd:
        return (
            f"names aliases that are not 1 to {MAX_ALIAS_LENGTH} letters, digits or "
            f"underscores (the foreign server is named after them): {odd!r}"
        )
    if problem := _aliases(value):
        return problem
    engines = [a for a in value if "postgresql" not in settings.DATABASES[a].get("ENGINE", "")]
    if engines:
        return f"names databases that are not PostgreSQL: {engines!r}"
    return None


def _placement_map(value: dict[Any, Any]) -> str | None:
    keys = [k for k in value if isinstance(k, bool) or not isinstance(k, str | int)]
    if keys:
        return f"must map class ids (str or int) to a shard alias or {LOCAL!r}: keys {keys!r}"
    values = [v for v in value.values() if not isinstance(v, str)]
    if values:
        return f"must map class ids to a shard alias or {LOCAL!r} (str), not {values!r}"
    return None


def _new_classes(value: str) -> str | None:
    return None if value in (LOCAL, "hash") else f"must be {LOCAL!r} or 'hash', not {value!r}"


def _positive(value: int | None) -> str | None:
    return None if value is None or value >= 1 else "must be 1 or more"


def _identifier(value: str) -> str | None:
    return None if value.strip() else "must name a table or column"


def _optional_identifier(value: str | None) -> str | None:
    return None if value is None else _identifier(value)


def _month_day(value: str | None) -> str | None:
    """'MM-DD' of a day every year has (so not 02-29)."""
    if value is None:
        return None
    found = re.fullmatch(r"(\d\d)-(\d\d)", value)
    try:
        if found:
            dt.date(2001, int(found[1]), int(found[2]))
            return None
    except ValueError:
        pass
    return f"must be a day of the year as 'MM-DD', such as '08-01' (not 02-29), not {value!r}"


# What one leaf of a term holds (issue 15): the whole term, or one calendar month of it.
GRANULARITIES = ("term", "month")


def _granularity(value: str) -> str | None:
    if value in GRANULARITIES:
        return None
    return f"must be one of {GRANULARITIES!r}, not {value!r}"


def _duration(value: str) -> str | None:
    ok = _DURATION.match(value.strip())
    return None if ok else "must be a PostgreSQL duration such as '5s' or '300ms'"


# The one uniqueness key the app knows (the seed's): a grade per (activity, student).
UNIQUE_KEY_COLUMNS = ("activity_id", "student_id")


def _unique_key(value: tuple[str, ...] | list[str] | None) -> str | None:
    if value is None or tuple(value) == UNIQUE_KEY_COLUMNS:
        return None
    return (
        f"must be {UNIQUE_KEY_COLUMNS!r} (one grade per activity and student) or None "
        f"(several attempts), not {value!r}"
    )


def _time_zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {value!r}"
    return None


class Setting(Generic[T]):
    """One key of ``ACTIVITY_GRADES``: default, accepted types, a check, documentation."""

    def __init__(
        self,
        default: T,
        types: type | tuple[type, ...],
        doc: str,
        check: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.default = default
        self.types = types if isinstance(types, tuple) else (types,)
        self.doc = doc
        self.check = check
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Setting[T]: ...
    @overload
    def __get__(self, obj: AppSettings, owner: type) -> T: ...
    def __get__(self, obj: AppSettings | None, owner: type) -> T | Setting[T]:
        if obj is None:
            return self
        value: T = obj.raw().get(self.name, self.default)
        return value

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this setting, or None."""
        # bool is an int: refuse True for a count, accept only real booleans for flags.
        if isinstance(value, bool) and bool not in self.types:
            return f"must be {self._type_names()}, not {value!r}"
        if not isinstance(value, self.types):
            return f"must be {self._type_names()}, not {type(value).__name__} {value!r}"
        return self.check(value) if self.check else None

    def _type_names(self) -> str:
        names = ["None" if t is type(None) else t.__name__ for t in self.types]
        return " or ".join(names)


_NONE = type(None)


class AppSettings:
    """The settings of the app, one documented attribute per key."""

    # Where a grade's class comes from: <ACTIVITIES_TABLE>(<id>, <class>).
    ACTIVITIES_TABLE = Setting[str]("activities", str, "table of the LMS's activities", _identifier)
    ACTIVITY_ID_COLUMN = Setting[str]("id", str, "id column of ACTIVITIES_TABLE", _identifier)
    ACTIVITY_CLASS_COLUMN = Setting[str](
        "class_id", str, "class column of ACTIVITIES_TABLE", _identifier
    )
    # Where terms come from: whole days, end day inclusive, as in the seed. The start and
    # end columns may be date, timestamp or timestamptz; a timestamp counts by its date
    # (a timestamptz's date in TERM_TIME_ZONE), so "23:59:59" and midnight both keep the
    # whole last day.
    TERMS_TABLE = Setting[str]("terms", str, "table of the LMS's terms", _identifier)
    TERM_ID_COLUMN = Setting[str]("id", str, "id column of TERMS_TABLE", _identifier)
    TERM_START_COLUMN = Setting[str](
        "start_date", str, "first day of a term (date, timestamp or timestamptz)", _identifier
    )
    TERM_END_COLUMN = Setting[str](
        "end_date",
        str,
        "last day of a term, inclusive (date, timestamp or timestamptz)",
        _identifier,
    )
    # The academic year: a column of TERMS_TABLE; or, with TERM_YEAR_TABLE, the label of the
    # row of that table TERM_YEAR_COLUMN refers to; or, with TERM_YEAR_STARTS, derived
    # from the term's first day.
    TERM_YEAR_COLUMN = Setting[str | None](
        "academic_year",
        (str, _NONE),
        "academic year of a term, or (with TERM_YEAR_TABLE) the key of its year's row",
        _optional_identifier,
    )
    TERM_YEAR_TABLE = Setting[str | None](
        None,
        (str, _NONE),
        "table of academic years TERM_YEAR_COLUMN refers to",
        _optional_identifier,
    )
    TERM_YEAR_TABLE_ID_COLUMN = Setting[str](
        "id", str, "column of TERM_YEAR_TABLE that TERM_YEAR_COLUMN refers to", _identifier
    )
    TERM_YEAR_TABLE_LABEL_COLUMN = Setting[str](
        "name", str, "column of TERM_YEAR_TABLE with the year's name", _identifier
    )
    TERM_YEAR_STARTS = Setting[str | None](
        None,
        (str, _NONE),
        "'MM-DD' the academic year starts: the year is 'YYYY-YYYY' of the term's first day",
        _month_day,
    )
    TERM_TIME_ZONE = Setting[str | None](
        None, (str, _NONE), "zone of term dates (None: settings.TIME_ZONE)", _time_zone
    )
    UPCOMING_TERMS = Setting[int](
        1, int, "create_partitions: terms after the current one", _non_negative
    )
    PARTITION_GRANULARITY = Setting[str](
        "term",
        str,
        "leaves of terms created from now on: 'term' (one per class and term) or 'month' (one "
        "per class and calendar month of the term, clipped to its bounds); existing terms "
        "keep theirs until create_partitions --regranulate",
        _granularity,
    )
    FAST_ROUTE_PARTITIONS = Setting[int](
        2000, int, "leaves the trigger's fast path covers (0: off)", _non_negative
    )
    METRICS_TOKEN = Setting[str | None](
        None, (str, _NONE), "bearer token of the metrics endpoint (None: login only)"
    )
    METRICS_TOP_PARTITIONS = Setting[int](
        20,
        int,
        "Prometheus: per-partition series only for this many largest partitions (0: none)",
        _non_negative,
    )
    METRICS_TOP_CLASSES = Setting[int | None](
        100,
        (int, _NONE),
        "Prometheus: per-class series for this many largest classes, the rest summed as "
        'class="_other" (None: every class)',
        lambda v: None if v is None else _non_negative(v),
    )
    PROMETHEUS_REGISTER = Setting[bool](
        False,
        bool,
        "register the collector in prometheus_client's default REGISTRY at start-up, so the "
        "project's own /metrics (django-prometheus, ...) shows the app's metrics",
    )
    ROUTING_PARTITION_LIMIT = Setting[int | None](
        None,
        (int, _NONE),
        "above this many partitions a default-manager query that pins none is refused "
        "(None: a slice of the server's lock table, see models/routing.py)",
        _non_negative,
    )
    SCHEMA = Setting[str | None](
        None,
        (str, _NONE),
        "schema of the app's tables and functions (None: the first on search_path); "
        "it must be on the database connection's search_path",
        _optional_identifier,
    )
    MAINTENANCE_RUNS_TABLE = Setting[str](
        "activity_grades_maintenance_run", str, "where maintenance runs are recorded", _identifier
    )
    ADMIN_PARENT_PARTITION_LIMIT = Setting[int | None](
        1000, (int, _NONE), "admin grade list: ask for a class above this many", _non_negative
    )
    ARCHIVE_KEEP_DETACHED = Setting[bool](False, bool, "keep archived leaves as detached tables")
    LOCK_TIMEOUT = Setting[str](
        "5s",
        str,
        "lock_timeout of the transactions of create, archive, restore, retention, repair",
        _duration,
    )
    ARCHIVE_LOCK_TIMEOUT = Setting[str | None](
        None,
        (str, _NONE),
        "archive/restore/retention lock_timeout (None: LOCK_TIMEOUT)",
        lambda v: None if v is None else _duration(v),
    )
    ARCHIVE_CHUNK_ROWS = Setting[int](
        1000, int, "grades per chunk of the compressed archive (docs/archiving.md)", _positive
    )
    RETENTION_YEARS = Setting[int | None](
        None, (int, _NONE), "academic years of archive to keep (None: forever)", _positive
    )
    RETENTION_EXPORT_DIR = Setting[str | None](
        None,
        (str, _NONE),
        "apply_retention writes each year it drops to Parquet files here first (None: no)",
    )
    # One grade per (activity, student) across the tree, or None for LMSs that keep several
    # attempts; id is unique either way. The database follows it through
    # manage.py apply_unique_key (check --database default reports a mismatch).
    UNIQUE_KEY = Setting[tuple[str, ...] | list[str] | None](
        UNIQUE_KEY_COLUMNS,
        (tuple, list, _NONE),
        "('activity_id', 'student_id'): one grade per activity and student; None: several",
        _unique_key,
    )
    MAINTENANCE_CREATE = Setting[bool](True, bool, "maintenance creates partitions")
    MAINTENANCE_ARCHIVE = Setting[bool](False, bool, "maintenance archives past years")
    MAINTENANCE_RETENTION = Setting[bool](False, bool, "maintenance applies retention")
    MAINTENANCE_ANALYZE = Setting[bool](True, bool, "maintenance analyzes new partitions")
    # Read replicas for reporting (activity_grades.routers.ReplicaRouter, docs/replicas.md).
    READ_REPLICAS = Setting[list[str] | tuple[str, ...]](
        [], (list, tuple), "aliases in DATABASES of read replicas for reporting reads", _aliases
    )
    REPLICA_MAX_LAG = Setting[int | float](
        30, (int, float), "seconds a replica may lag before reads go to the primary", _non_negative
    )
    REPLICA_CHECK_SECONDS = Setting[int | float](
        5,
        (int, float),
        "seconds a replica's lag or failure is trusted before asking again",
        _non_negative,
    )
    READ_YOUR_WRITES_SECONDS = Setting[int | float](
        10,
        (int, float),
        "seconds after a write during which its reader reads the primary",
        _non_negative,
    )
    # Shards (docs/sharding.md): servers that hold whole classes, reached from this database
    # (the coordinator) through postgres_fdw. Each is a Django alias: credentials stay in
    # DATABASES. A class's placement is decided once and recorded (activity_grades_placement).
    SHARDS = Setting[list[str] | tuple[str, ...]](
        [], (list, tuple), "aliases in DATABASES of the shard servers (setup_shards)", _shards
    )
    SHARD_PLACEMENT = Setting[dict[str | int, str]](
        {},
        dict,
        f"class id -> shard alias or {LOCAL!r}: where a class goes when it is first placed",
        _placement_map,
    )
    SHARD_NEW_CLASSES = Setting[str](
        LOCAL,
        str,
        f"where a class that SHARD_PLACEMENT does not name goes when first placed: {LOCAL!r} "
        "(the coordinator) or 'hash' (spread over SHARDS; a class that already has "
        "partitions stays local)",
        _new_classes,
    )
    SHARD_STATS_TIMEOUT = Setting[str](
        "5s",
        str,
        "statement_timeout of the statistics queries on each shard (report, admin, metrics): "
        "a shard that answers but hangs is shown as timed out ('0': no limit)",
        _duration,
    )

    # -- derived ---------------------------------------------------------------

    @property
    def time_zone(self) -> str:
        """TERM_TIME_ZONE, or the project's TIME_ZONE when unset."""
        return self.TERM_TIME_ZONE or settings.TIME_ZONE or "UTC"

    @property
    def archive_lock_timeout(self) -> str:
        return self.ARCHIVE_LOCK_TIMEOUT or self.LOCK_TIMEOUT

    @property
    def unique_key_on(self) -> bool:
        """Whether (activity_id, student_id) is unique across the tree (UNIQUE_KEY)."""
        return self.UNIQUE_KEY is not None

    @property
    def shards(self) -> tuple[str, ...]:
        """SHARDS as a tuple of aliases."""
        return tuple(self.SHARDS)

    def configured_placement(self, class_id: str) -> str | None:
        """SHARD_PLACEMENT's shard (or 'local') for a class, keys compared as text; or None."""
        for key, shard in self.SHARD_PLACEMENT.items():
            if str(key) == class_id:
                return shard
        return None

    @property
    def term_year_source(self) -> TermYearSource:
        """Where a term's academic year comes from: a column, a joined table, or the rule."""
        if self.TERM_YEAR_STARTS is not None:
            return "rule"
        return "table" if self.TERM_YEAR_TABLE is not None else "column"

    # -- access and validation ---------------------------------------------------

    @classmethod
    def keys(cls) -> dict[str, Setting[Any]]:
        return {k: v for k, v in vars(cls).items() if isinstance(v, Setting)}

    def raw(self) -> dict[str, Any]:
        value = getattr(settings, "ACTIVITY_GRADES", None) or {}
        if not isinstance(value, dict):
            raise SettingsError("settings.ACTIVITY_GRADES must be a dict")
        return value

    def validate(self) -> list[tuple[str, str]]:
        """(key, what is wrong) for every problem of the current settings."""
        try:
            raw = self.raw()
        except SettingsError as exc:
            return [("", str(exc))]
        known = self.keys()
        out: list[tuple[str, str]] = []
        for key in raw:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                out.append((str(key), f"unknown setting{hint}"))
        for key, setting in known.items():
            if key in raw and (problem := setting.problem(raw[key])):
                out.append((key, problem))
        if raw.get("MAINTENANCE_RETENTION") is True and raw.get("RETENTION_YEARS") is None:
            out.append(("MAINTENANCE_RETENTION", "is on but RETENTION_YEARS is not set"))
        return out + _term_year_problems(raw) + _shard_problems(raw)

    def require_valid(self, *keys: str) -> None:
        """Raise SettingsError for the first problem among ``keys`` (all when empty)."""
        for key, problem in self.validate():
            if not keys or key in keys:
                raise SettingsError(f"ACTIVITY_GRADES[{key!r}] {problem}")


def _term_year_problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """The impossible combinations of the academic-year keys: one source at a time."""
    out: list[tuple[str, str]] = []
    rule, table = raw.get("TERM_YEAR_STARTS"), raw.get("TERM_YEAR_TABLE")
    if rule is not None and table is not None:
        out.append(
            (
                "TERM_YEAR_STARTS",
                "and TERM_YEAR_TABLE exclude each other: the year comes either from the "
                "start date or from the joined table",
            )
        )
    if "TERM_YEAR_COLUMN" in raw and raw["TERM_YEAR_COLUMN"] is None and rule is None:
        out.append(("TERM_YEAR_COLUMN", "may be None only when TERM_YEAR_STARTS is set"))
    if rule is not None and isinstance(raw.get("TERM_YEAR_COLUMN"), str) and table is None:
        # Set on purpose and then ignored: say so rather than guess which one was meant.
        out.append(
            (
                "TERM_YEAR_COLUMN",
                "names a column while TERM_YEAR_STARTS derives the year from the start date: "
                "remove one of them (or set TERM_YEAR_COLUMN to None)",
            )
        )
    if table is None:
        out += [
            (key, "is set but TERM_YEAR_TABLE is not") for key in _YEAR_TABLE_COLUMNS if key in raw
        ]
    return out


def _shard_problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Shard keys that contradict each other (each key's own type is checked first)."""
    shards = raw.get("SHARDS", [])
    if not isinstance(shards, list | tuple):
        return []
    out: list[tuple[str, str]] = []
    replicas = raw.get("READ_REPLICAS", [])
    both = sorted(set(shards) & set(replicas)) if isinstance(replicas, list | tuple) else []
    if both:
        out.append(("SHARDS", f"and READ_REPLICAS name the same databases: {both!r}"))
    placement = raw.get("SHARD_PLACEMENT", {})
    if isinstance(placement, dict):
        unknown = {k: v for k, v in placement.items() if v != LOCAL and v not in shards}
        if unknown:
            out.append(
                (
                    "SHARD_PLACEMENT",
                    f"places classes on shards not in SHARDS: {unknown!r} "
                    f"(add them to SHARDS, or place them {LOCAL!r})",
                )
            )
    if raw.get("SHARD_NEW_CLASSES") == "hash" and not shards:
        out.append(("SHARD_NEW_CLASSES", "is 'hash' but SHARDS is empty"))
    return out


app_settings = AppSettings()
