"""Moving a class between servers: ``manage.py move_class CLASS --to SHARD`` (issue 16).

Local -> shard, shard -> shard and shard -> local, online: the class's grades stay
readable and writable on the source until one short swap. The steps, each resumable
(the move's record, ``activity_grades_move_state``, says how far it got):

1. **start** (coordinator): the move's record, and the capture trigger on each of the
   class's tables there (local or foreign), which notes every id written from then on
   (``activity_grades_move_log``); then the target's tables (on the target shard under the
   partitions' names, marked as partitions but pointed at by nothing yet; locally, tables
   named ``activity_grades_moving_<registry id>`` outside the tree);
2. **copy**: each table's rows in batches in id order up to the greatest id it held when
   its copy began (later rows are in the log), read on the source's server and COPYed
   into the target's (never through a foreign table), each batch committed with its
   progress; an interrupted copy resumes after the last id recorded;
3. **catch up**: the ids the log noted, copied again (deleted on the target, then the
   source's current row, if any, written), in rounds of what was logged when each began,
   until few are left;
4. **swap**, one coordinator transaction: the source's tables locked against writes
   (reads go on: ``SHARE ROW EXCLUSIVE``, on the shard for a shard's tables), the rest
   of the log applied, every table's count and checksum compared, source with target,
   both servers reading at once (a difference is copied again whole, then compared
   again; still different: nothing changes, the error says which table), then the
   source's tables on the coordinator dropped (marker checked) and the target's made
   partitions under the same names (foreign tables for a shard, the staging tables
   renamed and attached for local), the placement recorded (``decided_by = 'move'``).
   Writers that waited on the lock resume against the new table of the same name;
5. **drop** (a shard source): its tables there dropped in the shard transaction that
   locked them, after the coordinator's commit. An interruption in between leaves the
   record in phase ``'dropping'`` (``activity_grades.E040``): the next ``move_class`` or
   ``check_partitions --fix`` drops them.

``abort`` undoes a move still copying: the capture triggers, the target's tables and the
record go; the source was never changed.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, connections

from ..core.constants import LOGGER_NAME, PARENT, PARTITION_MARKER, Granularity
from ..core.exceptions import MoveError
from ..core.ids import as_text
from ..core.settings import app_settings
from ..core.shards import LOCAL, alias_of_server, server_name
from ..db import archive as sql_archive
from ..db import catalog, ddl, drift, months
from ..db import moves as sql_moves
from ..db import placement as recorded_placement
from ..db import shard_partitions as remote
from ..db.archive import Checksum
from ..db.connection import Cursor, atomic, cursor, execute, lock_timeout_errors, set_lock_timeout
from ..db.moves import Move, Where
from ..partitions import shard_schema
from .problems import Problem
from .shards import require_answers

__all__ = [
    "UNFINISHED_MOVE",
    "MoveResult",
    "Progress",
    "Table",
    "abort",
    "findings",
    "move_class",
    "plan",
]

logger = logging.getLogger(LOGGER_NAME)

UNFINISHED_MOVE = "activity_grades.E040"
CATCH_UP_ROUNDS = 20  # at most; the swap applies what is left
SWAP_BACKLOG = 1000  # catch up until at most this many ids wait for the swap

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Table:
    """One of the moving class's tables: its registry row and both ends of its copy."""

    name: str
    registry_id: int
    term_id: str | None
    parent: str
    source: Where
    target: Where

    @property
    def only(self) -> bool:
        # The class table's own rows only: its terms are tables of their own. A local term
        # table is read with its month tables, which move into the one target table.
        return self.term_id is None


@dataclass
class MoveResult:
    class_id: str
    source: str
    target: str
    tables: list[str] = field(default_factory=list)
    rows: int = 0
    copied_again: list[str] = field(default_factory=list)
    seconds: float = 0.0
    done: str = ""


# -- where the class is -------------------------------------------------------------------


def _where_now(cur: Cursor, table: str) -> str:
    """'local' or the shard alias whose foreign table ``table`` is."""
    target = remote.foreign_target(cur, table)
    if target is None:
        return LOCAL
    alias = alias_of_server(target[0])
    if alias is None or alias not in app_settings.shards:
        raise MoveError(
            f"{table} is a foreign table of server {target[0]!r}, which is no shard of "
            "ACTIVITY_GRADES['SHARDS']: refusing to move it"
        )
    return alias


def _tables(using: str, class_id: str, source: str, target: str) -> list[Table]:
    schemas: dict[str, str] = {}
    out = []
    with cursor(using) as cur:
        for registry_id, name, term_id, parent in sql_moves.live(cur, class_id):
            on_target = name if target != LOCAL else sql_moves.staging_name(registry_id)
            src_alias = using if source == LOCAL else source
            dst_alias = using if target == LOCAL else target
            out.append(
                Table(
                    name,
                    registry_id,
                    term_id,
                    parent,
                    Where(src_alias, None if source == LOCAL else _schema(source, schemas), name),
                    Where(
                        dst_alias, None if target == LOCAL else _schema(target, schemas), on_target
                    ),
                )
            )
    return out


def _schema(alias: str, schemas: dict[str, str]) -> str:
    if alias not in schemas:
        schemas[alias] = shard_schema(alias)
    return schemas[alias]


def _source_of(using: str, class_id: str) -> str | None:
    """Where the class's tables are now (None: it has none); one place for all of them."""
    with cursor(using) as cur:
        places = {_where_now(cur, name) for _, name, _, _ in sql_moves.live(cur, class_id)}
    if len(places) > 1:
        raise MoveError(
            f"class {class_id!r} has partitions in several places ({sorted(places)}): "
            "move_class moves a class that is whole on one server; see check_partitions"
        )
    return places.pop() if places else None


def _check_target(to: str) -> None:
    if not app_settings.shards:
        raise MoveError("ACTIVITY_GRADES['SHARDS'] is empty: there is nowhere to move a class")
    if to != LOCAL and to not in app_settings.shards:
        raise MoveError(
            f"{to!r} is not a shard of ACTIVITY_GRADES['SHARDS'] {list(app_settings.shards)!r} "
            f"nor {LOCAL!r}"
        )


# -- the API ------------------------------------------------------------------------------


def plan(class_id: object, to: str, using: str = "default") -> list[str]:
    """What ``move_class`` would do (``--dry-run``): one line per table, with its rows."""
    cid = as_text(class_id, "class_id")
    _check_target(to)
    with cursor(using) as cur:
        pending = sql_moves.read(cur, cid)
    if pending is not None:
        return [
            f"finish the unfinished move of class {cid!r} ({pending.source} -> {pending.target}, "
            f"phase {pending.phase!r})"
        ]
    source = _source_of(using, cid)
    if source is None or source == to:
        return [_placement_line(cid, source, to)]
    require_answers([source, to], f"move class {cid!r}", MoveError)
    lines = []
    for t in _tables(using, cid, source, to):
        with cursor(t.source.alias) as cur:
            rows = sql_moves.count(cur, t.source, t.only)
        lines.append(f"copy {t.source} ({rows} rows) to {t.target}, then swap {t.name}")
    if source != LOCAL:
        lines.append(f"drop the {len(lines)} tables of class {cid!r} on shard {source!r}")
    lines.append(f"record class {cid!r} as placed on {to!r}")
    return lines


def _placement_line(class_id: str, source: str | None, to: str) -> str:
    if source is None:
        return f"class {class_id!r} has no partitions: record it as placed on {to!r}"
    return f"class {class_id!r} is on {to!r} already: nothing to do"


def move_class(
    class_id: object,
    to: str,
    *,
    using: str = "default",
    batch_size: int = 5000,
    progress: Progress | None = None,
) -> MoveResult:
    """Move a class's partitions to ``to`` (a shard alias or ``'local'``); see the module.

    Resumes an unfinished move of the class to the same place.

    Raises:
        MoveError: an unknown target, a move of the class elsewhere unfinished, a shard
            that does not answer, tables that failed verification twice (the source is
            untouched and serves the class; the move stays resumable).
    """
    if batch_size < 1:
        raise MoveError(f"batch size must be at least 1, not {batch_size}")
    cid = as_text(class_id, "class_id")
    _check_target(to)
    if not sql_moves.try_lock_run(using, cid):
        raise MoveError(f"another move_class of class {cid!r} is running: nothing was changed")
    try:
        return _move(cid, to, using, batch_size, progress or (lambda _line: None))
    finally:
        with suppress(DatabaseError):  # a lost connection has released it already
            sql_moves.unlock_run(using, cid)


def _move(cid: str, to: str, using: str, batch_size: int, say: Progress) -> MoveResult:
    started = time.monotonic()
    with cursor(using) as cur:
        pending = sql_moves.read(cur, cid)
    if pending is not None and pending.target != to:
        raise MoveError(
            f"class {cid!r} has an unfinished move to {pending.target!r} (phase "
            f"{pending.phase!r}): run move_class {cid} --to {pending.target} to finish it"
            + (", or --abort" if pending.phase == "copying" else "")
        )
    if pending is not None and pending.phase == "dropping":
        done = _drop_source(using, pending)
        return MoveResult(cid, pending.source, to, done=done, seconds=time.monotonic() - started)
    source = pending.source if pending is not None else _source_of(using, cid)
    result = MoveResult(cid, source or LOCAL, to)
    if source is None or source == to:
        _record_placement(using, cid, to)
        result.done = _placement_line(cid, source, to)
        return result
    require_answers([source, to], f"move class {cid!r}", MoveError)
    move = pending or _start(using, cid, source, to)
    tables = _tables(using, cid, source, to)
    for t in tables:
        _prepare(using, move, t)
    for t in tables:
        result.rows += _copy(using, move, t, batch_size, say)
    # Rounds while the log shrinks: writers faster than the catch-up would keep it going
    # for ever, and then the swap (writers waiting) takes the rest.
    before = None
    for _ in range(CATCH_UP_ROUNDS):
        waiting = _catch_up(using, cid, tables, batch_size, say)
        if waiting <= SWAP_BACKLOG or (before is not None and waiting >= before):
            break
        before = waiting
    result.copied_again = _swap(using, move, batch_size, say)
    with cursor(using) as cur:
        result.tables = [name for _, name, _, _ in sql_moves.live(cur, cid)]
    if source != LOCAL:
        with cursor(using) as cur:
            finished = sql_moves.read(cur, cid)
        if finished is not None:
            _drop_source(using, finished)
    result.seconds = time.monotonic() - started
    result.done = (
        f"moved class {cid!r} from {source!r} to {to!r}: {len(result.tables)} tables, "
        f"counts and checksums equal"
    )
    return result


def _record_placement(using: str, class_id: str, to: str) -> None:
    with atomic(using), cursor(using) as cur:
        recorded_placement.lock_class(cur, class_id)
        now = recorded_placement.read(cur, class_id)
        if now is None or now.shard != to:
            recorded_placement.record(cur, class_id, to, "move")


# -- 1. start -----------------------------------------------------------------------------


def _start(using: str, class_id: str, source: str, to: str) -> Move:
    """The record and the capture triggers, in one transaction (``CREATE TRIGGER`` waits
    for each table's writers, so every write after it is noted)."""
    with atomic(using), cursor(using) as cur:
        set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
        recorded_placement.lock_class(cur, class_id)
        with lock_timeout_errors(
            f"starting the move of class {class_id!r}", app_settings.LOCK_TIMEOUT
        ):
            for table in _coordinator_tables(cur, class_id):
                sql_moves.install_capture(cur, table, class_id)
        move = sql_moves.start(cur, class_id, source, to)
    logger.info("move of class %s from %s to %s started", class_id, source, to)
    return move


def _coordinator_tables(cur: Cursor, class_id: str) -> list[str]:
    """The class's tables on the coordinator: its partitions and their month tables."""
    names = [name for _, name, _, _ in sql_moves.live(cur, class_id)]
    return names + (sql_moves.live_months(cur, class_id) if months.installed(cur) else [])


def _prepare(using: str, move: Move, t: Table) -> None:
    """The target table of ``t``, made once (an earlier run's, unrecorded, is emptied)."""
    if t.name in move.progress:
        return
    with cursor(using) as cur:
        bounds = remote.bounds(cur, t.term_id)
        names = remote.index_names(cur, t.name)
        unique = remote.unique_key_on(cur)
    target = t.target
    with atomic(target.alias), cursor(target.alias) as cur:
        if target.schema is None:
            statements = remote.staging_ddl(
                target.table,
                move.class_id,
                t.term_id,
                bounds,
                names,
                unique,
                sql_moves.STAGING_MARKER,
            )
            exists = remote.relkind(cur, target.table) is not None
        else:
            statements = remote.remote_ddl(
                target.schema, target.table, move.class_id, t.term_id, bounds, names, unique
            )
            exists = target.table in remote.remote_tables(cur, target.schema)
        if exists:
            _check_target_marker(cur, target)
            sql_moves.delete_all(cur, target)
        else:
            remote.run(cur, statements)
    with atomic(using), cursor(using) as cur:
        sql_moves.record_progress(cur, move.class_id, t.name, None)
    move.progress[t.name] = None


def _check_target_marker(cur: Cursor, target: Where) -> None:
    if target.schema is None:
        marker = catalog.marker_of(cur, target.table)
        wanted = sql_moves.STAGING_MARKER
    else:
        marker = remote.remote_tables(cur, target.schema).get(target.table)
        wanted = PARTITION_MARKER
    if marker != wanted:
        raise MoveError(f"{target} exists and is not marked {wanted!r} ({marker!r}): not touched")


# -- 2. copy ------------------------------------------------------------------------------


def _copy(using: str, move: Move, t: Table, batch_size: int, say: Progress) -> int:
    """Copy ``t`` batch by batch from where the record says; return the rows copied.

    Up to the greatest id it holds now: every row written after the capture triggers
    were made is in the log, so the copy does not chase rows inserted meanwhile (they
    would be copied twice)."""
    with cursor(using) as cur:
        cols = catalog.grade_columns(cur)
    after = move.progress.get(t.name)
    with cursor(t.source.alias) as cur:
        upto = sql_moves.max_id(cur, t.source, t.only)
    copied = 0
    while upto is not None:
        with cursor(t.source.alias) as cur:
            rows = sql_moves.read_batch(cur, t.source, cols, t.only, after, batch_size, upto)
        if not rows:
            return copied
        _write(t.target, cols, rows)
        after = str(rows[-1][cols.index("id")])
        with atomic(using), cursor(using) as cur:
            sql_moves.record_progress(cur, move.class_id, t.name, after)
        move.progress[t.name] = after
        copied += len(rows)
        say(f"{t.name}: {copied} rows copied to {t.target}")
    return copied


def _write(target: Where, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Rows into a target table, replacing any of the same id (a resumed batch)."""
    ids = [str(r[cols.index("id")]) for r in rows]
    with atomic(target.alias), cursor(target.alias) as cur:
        sql_moves.delete_ids(cur, target, ids)
        sql_moves.copy_in(cur, target, cols, rows)


# -- 3. catch up --------------------------------------------------------------------------


def _catch_up(
    using: str, class_id: str, tables: list[Table], batch_size: int, say: Progress
) -> int:
    """Copy again the ids logged so far (not those logged meanwhile: writers faster than
    this would keep it going); return how many entries there were."""
    with cursor(using) as cur:
        waiting, last = sql_moves.waiting(cur, class_id)
    if waiting:
        _apply_log(using, class_id, tables, batch_size, upto_seq=last)
        say(f"class {class_id}: {waiting} writes made during the copy copied again")
    return waiting


def _apply_log(
    using: str, class_id: str, tables: list[Table], batch_size: int, upto_seq: int | None = None
) -> None:
    """Each logged id (up to ``upto_seq``; None: all): deleted from every target table,
    the source's row (if any) written to its term's. The entries read are deleted after
    the target's commit, so a write noted while this runs is copied by the next batch."""
    with cursor(using) as cur:
        cols = catalog.grade_columns(cur)
    by_term = {t.term_id: t for t in tables}
    source = _class_source(tables)
    while True:
        with cursor(using) as cur:
            entries = sql_moves.logged(cur, class_id, batch_size, upto_seq)
        if not entries:
            return
        ids = list(dict.fromkeys(i for _, i in entries))
        with cursor(source.alias) as cur:
            rows = sql_moves.read_ids(cur, source, cols, False, ids, class_id)
        groups: dict[str | None, list[tuple[Any, ...]]] = defaultdict(list)
        for row in rows:
            groups[row[cols.index("term_id")]].append(row)
        for target_alias in {t.target.alias for t in tables}:
            with atomic(target_alias), cursor(target_alias) as cur:
                for t in tables:
                    if t.target.alias != target_alias:
                        continue
                    sql_moves.delete_ids(cur, t.target, ids)
                    if groups.get(t.term_id):
                        sql_moves.copy_in(cur, t.target, cols, groups[t.term_id])
        missing = set(groups) - set(by_term)
        if missing:
            # A term made after the move started: the swap copies its table whole.
            logger.info(
                "class %s: rows of terms %s wait for the swap", class_id, sorted(map(str, missing))
            )
        with atomic(using), cursor(using) as cur:
            sql_moves.forget_logged(cur, [seq for seq, _ in entries])


def _class_source(tables: list[Table]) -> Where:
    """The whole class on the source's server: the local class table read with its
    terms, or a shard's parent (its tables are flat children there)."""
    first = tables[0]
    if first.source.schema is None:
        class_table = next(t for t in tables if t.term_id is None)
        return class_table.source
    return Where(first.source.alias, first.source.schema, PARENT)


# -- 4. swap ------------------------------------------------------------------------------


def _swap(using: str, move: Move, batch_size: int, say: Progress) -> list[str]:
    """Lock, finish, verify, swap (module docstring, step 4); return the tables copied
    again whole because their checksums differed."""
    class_id = move.class_id
    with cursor(using) as cur:
        cols = catalog.grade_columns(cur)
    again: list[str] = []
    with ExitStack() as stack:
        held = None
        if move.source != LOCAL:
            held = stack.enter_context(_shard_transaction(move.source))
        reader = _Reader()
        stack.callback(reader.close)
        stack.enter_context(atomic(using))
        cur = stack.enter_context(cursor(using))
        set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
        recorded_placement.lock_class(cur, class_id)
        with lock_timeout_errors(
            f"locking class {class_id!r} for the swap", app_settings.LOCK_TIMEOUT
        ):
            coordinator_tables = _coordinator_tables(cur, class_id)
            for table in coordinator_tables:
                _lock_against_writes(cur, table, class_id)
            tables = _tables(using, class_id, move.source, move.target)
            if held is not None:
                for t in tables:
                    assert t.source.schema is not None
                    remote.lock_remote(held, t.source.schema, t.name, "SHARE ROW EXCLUSIVE")
        late = [t for t in tables if t.name not in move.progress]
        for t in late:  # made after the move started: copied whole, under the lock
            _prepare(using, move, t)
        say(f"class {class_id}: writes paused, applying the last changes and verifying")
        _apply_log(using, class_id, tables, batch_size)
        say(f"class {class_id}: last changes applied, verifying {len(tables)} tables")
        for t in tables:
            if t in late or _checksums(t, cols, held, cur, reader) is not None:
                if t not in late:
                    again.append(t.name)
                    logger.warning(
                        "%s: checksums differ from %s, copying it again", t.target, t.source
                    )
                _recopy(t, cols, batch_size, held, cur)
                differ = _checksums(t, cols, held, cur, reader)
                if differ is not None:
                    raise MoveError(
                        f"{t.name}: {t.target} does not match {t.source} after copying it "
                        f"again (source {differ[0]}, target {differ[1]}): nothing was swapped, "
                        f"class {class_id!r} stays on {move.source!r}"
                    )
        say(f"class {class_id}: verified, swapping")
        _swap_tables(cur, move, tables)
        recorded_placement.record(cur, class_id, move.target, "move")
        if move.source == LOCAL:
            sql_moves.forget(cur, class_id)
        else:
            sql_moves.set_phase(cur, class_id, "dropping")
    say(f"class {class_id}: swapped to {move.target}")
    return again


@contextmanager
def _shard_transaction(alias: str) -> Iterator[Cursor]:
    with atomic(alias), cursor(alias) as cur:
        set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
        yield cur


def _lock_against_writes(cur: Cursor, table: str, class_id: str) -> None:
    """Writers of ``table`` wait, readers do not (``SHARE ROW EXCLUSIVE``). A foreign
    table cannot be locked with ``LOCK TABLE``; ``DISABLE TRIGGER`` takes the same lock
    (and the capture trigger has nothing left to note)."""
    if remote.relkind(cur, table) == "f":
        sql_moves.install_capture(cur, table, class_id)
        sql_moves.disable_capture(cur, table)
    else:
        ddl.lock_table(cur, table, "SHARE ROW EXCLUSIVE")


def _checksums(
    t: Table, cols: list[str], held: Cursor | None, here: Cursor, reader: _Reader
) -> tuple[Checksum, Checksum] | None:
    """None when ``t``'s source and target agree, else (source's, target's).

    The two servers read at once: the side on a shard (its rows committed, its writers
    locked out) in the reader's thread, the other in this thread's transaction."""
    if t.target.schema is not None:
        other = reader.checksum(t.target, cols, only=True)
        src = _checksum(_cursor_for(t.source, held, here), t.source, cols, t.only)
        dst = other.result()
    else:  # a local target, filled in this transaction; the source is then a shard
        other = reader.checksum(t.source, cols, only=t.only)
        dst = _checksum(here, t.target, cols, True)
        src = other.result()
    return None if src == dst else (src, dst)


class _Reader:
    """One more thread, with connections of its own, for :func:`_checksums`."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="move-class")

    def checksum(self, where: Where, cols: list[str], *, only: bool) -> Future[Checksum]:
        return self._pool.submit(_checksum_here, where, cols, only)

    def close(self) -> None:
        self._pool.submit(connections.close_all).result()  # that thread's connections
        self._pool.shutdown()


def _checksum_here(where: Where, cols: list[str], only: bool) -> Checksum:
    with cursor(where.alias) as cur:
        return _checksum(cur, where, cols, only)


def _checksum(cur: Cursor, where: Where, cols: list[str], only: bool) -> Checksum:
    """The archive's checksum of a table, read on its own server."""
    return sql_archive.checksum_leaf(cur, cols, where.table, only=only, schema=where.schema)


def _cursor_for(where: Where, held: Cursor | None, here: Cursor) -> Cursor:
    """The swap's own transactions: the coordinator's, or the source shard's that holds
    its tables locked (the copy must be read under that lock)."""
    return here if where.schema is None else held or here


def _recopy(t: Table, cols: list[str], batch_size: int, held: Cursor | None, here: Cursor) -> None:
    """``t`` copied again whole, read under the swap's locks."""
    source = _cursor_for(t.source, held, here)
    target_cur = here if t.target.schema is None else None
    with ExitStack() as stack:
        if target_cur is None:
            stack.enter_context(atomic(t.target.alias))
            target_cur = stack.enter_context(cursor(t.target.alias))
        sql_moves.delete_all(target_cur, t.target)
        after: str | None = None
        while rows := sql_moves.read_batch(source, t.source, cols, t.only, after, batch_size):
            sql_moves.copy_in(target_cur, t.target, cols, rows)
            after = str(rows[-1][cols.index("id")])


def _swap_tables(cur: Cursor, move: Move, tables: list[Table]) -> None:
    """The source's tables out of the coordinator's tree, the target's in, same names."""
    for table in reversed(_coordinator_tables(cur, move.class_id)):  # months, terms, class
        marker = catalog.marker_of(cur, table)
        if marker != PARTITION_MARKER:
            raise MoveError(f"{table} is not marked {PARTITION_MARKER!r} ({marker!r}): not dropped")
        if remote.relkind(cur, table) == "f":
            remote.drop_foreign_table(cur, table)
        else:
            ddl.drop_table(cur, table)
    if months.installed(cur):
        sql_moves.forget_months(cur, move.class_id)
    for t in tables:  # class first: the terms go under it
        if move.target == LOCAL:
            _attach_local(cur, t)
        else:
            assert t.target.schema is not None
            bounds = remote.bounds(cur, t.term_id)
            remote.run(
                cur,
                remote.foreign_ddl(
                    cur,
                    t.name,
                    t.parent,
                    server_name(move.target),
                    t.target.schema,
                    move.class_id,
                    t.term_id,
                    bounds,
                ),
            )
        if t.term_id is not None and months.installed(cur):
            # By term on the target: a shard's term table is a leaf, and a local one is
            # split by month again by create_partitions --regranulate.
            months.set_granularity(cur, move.class_id, t.term_id, Granularity.TERM)


def _attach_local(cur: Cursor, t: Table) -> None:
    """The filled staging table becomes partition ``t.name``: renamed, attached under its
    parent, given the partition's triggers and marker."""
    execute(cur, sql_moves.rename(t.target.table, t.name))
    execute(cur, sql_moves.inherit(t.name, t.parent))
    for trigger in drift.ddl_triggers(cur):
        drift.create_trigger(cur, t.name, trigger)
    execute(cur, sql_moves.mark(t.name, PARTITION_MARKER))


# -- 5. drop the source shard's tables ----------------------------------------------------


def _drop_source(using: str, move: Move) -> str:
    """After the swap: the source shard's tables of the class, dropped (marker checked,
    and only those no foreign table of the coordinator points at any more)."""
    require_answers([move.source], f"drop class {move.class_id!r}'s old tables", MoveError)
    with cursor(using) as cur:
        still = {
            p.table_name
            for p in remote.foreign_partitions(cur)
            if p.server == server_name(move.source)
        }
    schema = shard_schema(move.source)
    dropped = []
    with atomic(move.source), cursor(move.source) as cur:
        set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
        have = remote.remote_tables(cur, schema)
        for name in move.progress:
            if name not in have or name in still:
                continue
            if have[name] != PARTITION_MARKER:
                raise MoveError(
                    f"{schema}.{name} on shard {move.source!r} is not marked "
                    f"{PARTITION_MARKER!r} ({have[name]!r}): not dropped"
                )
            remote.lock_remote(cur, schema, name, "ACCESS EXCLUSIVE")
            remote.drop_remote(cur, schema, name)
            dropped.append(name)
    with atomic(using), cursor(using) as cur:
        sql_moves.forget(cur, move.class_id)
    logger.info(
        "move of class %s: dropped %d tables on shard %s", move.class_id, len(dropped), move.source
    )
    return f"dropped {len(dropped)} tables of class {move.class_id!r} on shard {move.source!r}"


# -- abort --------------------------------------------------------------------------------


def abort(class_id: object, using: str = "default") -> str:
    """Undo a move still copying: capture triggers, the target's tables, the record.

    Raises:
        MoveError: no such move, or one already swapped (phase 'dropping': finish it).
    """
    cid = as_text(class_id, "class_id")
    with cursor(using) as cur:
        move = sql_moves.read(cur, cid)
    if move is None:
        raise MoveError(f"class {cid!r} has no unfinished move")
    if move.phase != "copying":
        raise MoveError(
            f"the move of class {cid!r} to {move.target!r} has swapped already: run "
            f"move_class {cid} --to {move.target} to finish it"
        )
    require_answers([move.target], f"undo the move of class {cid!r}", MoveError)
    tables = {t.name: t for t in _tables(using, cid, move.source, move.target)}
    dropped = 0
    for name in move.progress:
        t = tables.get(name)
        if t is None:
            continue
        with atomic(t.target.alias), cursor(t.target.alias) as cur:
            if _target_exists(cur, t.target):
                _check_target_marker(cur, t.target)
                execute(cur, sql_moves.drop(t.target))
                dropped += 1
    with atomic(using), cursor(using) as cur:
        set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
        for table in _coordinator_tables(cur, cid):
            sql_moves.drop_capture(cur, table)
        sql_moves.forget(cur, cid)
    return f"aborted the move of class {cid!r} to {move.target!r}: dropped {dropped} target tables"


def _target_exists(cur: Cursor, target: Where) -> bool:
    if target.schema is None:
        return remote.relkind(cur, target.table) is not None
    return target.table in remote.remote_tables(cur, target.schema)


# -- health -------------------------------------------------------------------------------


def findings(using: str = "default") -> list[Problem]:
    """E040: an unfinished move; one that swapped already is fixable (the drop)."""
    out = []
    for move in sql_moves.all_moves(using):
        if move.phase == "dropping":
            out.append(
                Problem(
                    UNFINISHED_MOVE,
                    f"class {move.class_id!r} was moved to {move.target!r}, but its old tables "
                    f"on shard {move.source!r} were not dropped (interrupted after the swap)",
                    f"manage.py check_partitions --fix, or move_class {move.class_id} --to "
                    f"{move.target}, drops them",
                    fix=_dropper(using, move),
                )
            )
        else:
            out.append(
                Problem(
                    UNFINISHED_MOVE,
                    f"the move of class {move.class_id!r} from {move.source!r} to "
                    f"{move.target!r} (started {move.started_at:%Y-%m-%d %H:%M}) is unfinished: "
                    "the class is served from its source, its writes are noted for the copy",
                    f"manage.py move_class {move.class_id} --to {move.target} resumes it; "
                    "--abort undoes it",
                )
            )
    return out


def _dropper(using: str, move: Move) -> Callable[[], str]:
    def fix() -> str:
        try:
            return _drop_source(using, move)
        except DatabaseError as exc:
            raise MoveError(f"shard {move.source!r}: {exc}") from exc

    return fix
