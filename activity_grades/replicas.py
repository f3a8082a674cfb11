"""Reporting reads on read replicas: which replica may serve a read, and read-your-writes.

``ACTIVITY_GRADES['READ_REPLICAS']`` names Django database aliases of streaming standbys
of the primary (``default``). A read may go to the first of them that answers and lags
at most ``REPLICA_MAX_LAG`` seconds; each replica's state is asked again after
``REPLICA_CHECK_SECONDS`` (one small query), and a change (lagging, unreachable, back) is
logged once, not per query. Otherwise, and for ``READ_YOUR_WRITES_SECONDS`` after this
context wrote grades (``note_write()``: the router's ``db_for_write``, the service's
writes), reads go to the primary, so whoever saved a grade reads it back.
``ReadYourWritesMiddleware`` carries that window to the next requests of the same
browser (a cookie); ``read_primary()`` pins a block of code to the primary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from .core.constants import LOGGER_NAME
from .core.settings import app_settings
from .db import replicas as standby

__all__ = [
    "ReplicaHealth",
    "health",
    "note_write",
    "pin_primary_until",
    "primary_pinned",
    "primary_until",
    "read_primary",
    "reader",
    "replica_states",
    "unpin",
]

log = logging.getLogger(LOGGER_NAME)

# Wall-clock time (time.time()) until which this context reads the primary.
_primary_until: ContextVar[float] = ContextVar("activity_grades_primary_until", default=0.0)


@dataclass(frozen=True)
class ReplicaHealth:
    """A replica as last asked: fit to read, its lag, or why not."""

    alias: str
    ok: bool
    lag_seconds: float | None
    lag_bytes: int | None
    problem: str | None  # None when ok
    checked_at: float  # time.monotonic()

    def sentence(self) -> str:
        lag = "unknown" if self.lag_seconds is None else f"{self.lag_seconds:.1f} s"
        behind = "" if self.lag_bytes is None else f", {self.lag_bytes:,} bytes of WAL"
        state = "reads go to it" if self.ok else f"reads go to the primary: {self.problem}"
        return f"replica {self.alias!r}: lag {lag}{behind}; {state}"


_health: dict[str, ReplicaHealth] = {}
# alias -> when its lag was first seen above REPLICA_MAX_LAG (time.monotonic()).
_over_since: dict[str, float] = {}
_lock = threading.Lock()

# A lag above the limit counts once it has been seen on asks this far apart: after an
# idle spell, the first write the standby has received but not yet replayed makes the
# time since its last replayed transaction look like lag for a moment.
CONFIRM_SECONDS = 1.0


def _ask(alias: str, in_bytes: bool) -> ReplicaHealth:
    now = time.monotonic()
    try:
        state = standby.standby_state(alias)
    except DatabaseError as exc:
        connections[alias].close()  # the next ask connects again
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ReplicaHealth(alias, False, None, None, f"unreachable ({first})", now)
    behind = None
    if in_bytes and state.replay_lsn is not None:
        # Reports only: routing never queries the primary (it may be mid-transaction).
        primary = standby.primary_lsn(DEFAULT_DB_ALIAS)
        behind = None if primary is None else max(primary - state.replay_lsn, 0)
    limit = float(app_settings.REPLICA_MAX_LAG)
    if not state.in_recovery:
        return ReplicaHealth(alias, True, None, None, None, now)  # not a standby: lag unknown
    if state.lag_seconds is None:
        return ReplicaHealth(alias, False, None, behind, "has replayed nothing yet", now)
    if state.lag_seconds <= limit:
        _over_since.pop(alias, None)
        return ReplicaHealth(alias, True, state.lag_seconds, behind, None, now)
    since = _over_since.setdefault(alias, now)
    if now - since < CONFIRM_SECONDS:
        return ReplicaHealth(alias, True, state.lag_seconds, behind, None, now)
    problem = f"lags {state.lag_seconds:.1f} s (REPLICA_MAX_LAG is {limit:g} s)"
    return ReplicaHealth(alias, False, state.lag_seconds, behind, problem, now)


def health(alias: str, *, fresh: bool = False) -> ReplicaHealth:
    """The replica's state, asked again when older than REPLICA_CHECK_SECONDS (or
    ``fresh``: then with its lag in bytes too, from the primary). A change of fitness is
    logged once."""
    with _lock:
        known = _health.get(alias)
    if (
        known is not None
        and not fresh
        and time.monotonic() - known.checked_at < app_settings.REPLICA_CHECK_SECONDS
    ):
        return known
    now = _ask(alias, in_bytes=fresh)
    with _lock:
        before = _health.get(alias)
        _health[alias] = now
    if before is None or before.ok != now.ok:
        if now.ok:
            log.info("%s", now.sentence())
        else:
            log.warning("%s", now.sentence())
    return now


def replica_states(*, fresh: bool = True) -> list[ReplicaHealth]:
    """Every configured replica's state (asked now by default: for reports)."""
    return [health(alias, fresh=fresh) for alias in app_settings.READ_REPLICAS]


def primary_until() -> float:
    return _primary_until.get()


def pin_primary_until(until: float) -> object:
    """Read the primary until ``until`` (time.time()); a token for ``unpin``."""
    return _primary_until.set(max(until, _primary_until.get()))


def unpin(token: object) -> None:
    _primary_until.reset(token)  # type: ignore[arg-type]


def note_write() -> None:
    """This context wrote grades: its reads go to the primary for
    READ_YOUR_WRITES_SECONDS."""
    if app_settings.READ_REPLICAS:
        pin_primary_until(time.time() + float(app_settings.READ_YOUR_WRITES_SECONDS))


def primary_pinned() -> bool:
    return time.time() < _primary_until.get()


@contextmanager
def read_primary() -> Iterator[None]:
    """Every read of the block goes to the primary (a task that must see fresh data)."""
    token = _primary_until.set(float("inf"))
    try:
        yield
    finally:
        _primary_until.reset(token)


def reader(using: str = DEFAULT_DB_ALIAS) -> str:
    """Where a reporting read meant for ``using`` goes: a fit replica when ``using`` is
    the primary and no write of this context is recent (a transaction that wrote
    included); else ``using``."""
    replicas = app_settings.READ_REPLICAS
    if using != DEFAULT_DB_ALIAS or not replicas or primary_pinned():
        return using
    for alias in replicas:
        if health(alias).ok:
            return alias
    return using
