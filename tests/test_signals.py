"""The signals an LMS hooks: each sent once per event, after the commit, never on rollback
or dry run. The receivers look from a second connection, so "after commit" is what another
session sees, not what this one does."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction

from activity_grades import signals
from activity_grades.core.constants import MAINTENANCE_LOCK_KEY
from activity_grades.operations import archive, create, maintenance, restore, retention

from .archive_support import add_current_term, add_grades, connect, drop_archive


class Rollback(Exception):
    pass


class Heard:
    """Records each sending of one signal, and whether another session saw the change then."""

    def __init__(self, signal, visible_query=None):
        self.signal, self.visible_query, self.calls = signal, visible_query, []

    def __enter__(self):
        self.signal.connect(self.receive)
        return self

    def __exit__(self, *exc):
        self.signal.disconnect(self.receive)

    def receive(self, sender, **kwargs):
        seen = None
        if self.visible_query:
            with connect() as other:
                seen = other.execute(*self.visible_query(kwargs)).fetchone()[0]
        self.calls.append({**kwargs, "sender": sender, "seen_by_another_session": seen})


def table_exists(kwargs):
    return "SELECT to_regclass(%s) IS NOT NULL", [kwargs["table"]]


def quiet(*args, **options):
    call_command(*args, stdout=StringIO(), **options)


@pytest.fixture
def clean(committed_lms):
    drop_archive()
    yield
    drop_archive()


def test_partition_created_once_each_after_commit(clean):
    with Heard(signals.partition_created, table_exists) as heard:
        result = create.plan(all_terms=True).apply()
        create.plan(all_terms=True).apply()  # nothing new: nothing sent
    assert len(result.created) == 8  # 2 class tables + 2 x 3 terms
    assert sorted(c["table"] for c in heard.calls) == sorted(result.created)
    assert all(c["seen_by_another_session"] for c in heard.calls)
    assert {c["sender"] for c in heard.calls} == {"activity_grades"}
    assert {(c["class_id"], c["term_id"]) for c in heard.calls} >= {
        ("123", None),
        ("456", "2024_fall"),
    }
    assert {c["using"] for c in heard.calls} == {"default"}


def test_partition_created_waits_for_the_callers_commit_and_not_on_rollback(clean):
    with Heard(signals.partition_created, table_exists) as heard:
        with pytest.raises(Rollback), transaction.atomic():
            create.plan(["123"], ["2023_fall"]).apply()
            raise Rollback
        assert heard.calls == []
        with transaction.atomic():
            create.plan(["123"], ["2023_fall"]).apply()
            assert heard.calls == []  # not yet: the caller's transaction is open
        assert len(heard.calls) == 2 and all(c["seen_by_another_session"] for c in heard.calls)


def test_dry_runs_send_nothing(clean):
    add_current_term()
    create.plan(["123"], ["2023_fall"]).apply()
    add_grades("123/a0", "2023-09-01", 5, "g-")
    every = [
        signals.partition_created,
        signals.term_archived,
        signals.term_restored,
        signals.retention_dropped_year,
        signals.maintenance_finished,
    ]
    hearers = [Heard(s) for s in every]
    for h in hearers:
        h.__enter__()
    try:
        quiet("create_partitions", "--all-terms", "--dry-run")
        quiet("archive_grades", "--term", "2023_fall", "--dry-run")
        quiet("archive_grades", "--term", "2023_fall", "--noinput")
        quiet("restore_grades", "--term", "2023_fall", "--dry-run")
        quiet("apply_retention", "--years", "1", "--dry-run")
    finally:
        for h in hearers:
            h.__exit__()
    heard = {
        s: len(h.calls)
        for s, h in zip(
            ("created", "archived", "restored", "retention", "maintenance"), hearers, strict=True
        )
    }
    assert heard == {"created": 0, "archived": 1, "restored": 0, "retention": 0, "maintenance": 0}


def test_term_archived_and_restored_once_after_commit(clean):
    add_grades("123/a0", "2023-09-01", 7, "a-")
    add_grades("456/a0", "2023-09-02", 3, "b-")
    gone = lambda k: ("SELECT to_regclass(%s) IS NULL", [k["table"]])  # noqa: E731
    with Heard(signals.term_archived, gone) as archived:
        quiet("archive_grades", "--term", "2023_fall", "--noinput")
        quiet("archive_grades", "--term", "2023_fall", "--noinput")  # nothing left: no signal
    assert sorted((c["class_id"], c["term_id"], c["rows"]) for c in archived.calls) == [
        ("123", "2023_fall", 7),
        ("456", "2023_fall", 3),
    ]
    assert all(c["seen_by_another_session"] for c in archived.calls)
    assert {c["academic_year"] for c in archived.calls} == {"2023-2024"}
    assert {c["detached"] for c in archived.calls} == {False}

    count = lambda k: (  # noqa: E731
        "SELECT count(*) FROM activity_grades WHERE tableoid = to_regclass(%s)",
        [k["table"]],
    )
    with Heard(signals.term_restored, count) as restored, Heard(signals.partition_created) as made:
        quiet("restore_grades", "--term", "2023_fall", "--class", "123", "--noinput")
    assert [(c["class_id"], c["rows"], c["seen_by_another_session"]) for c in restored.calls] == [
        ("123", 7, 7)
    ]
    assert [c["table"] for c in made.calls] == [restored.calls[0]["table"]]  # the leaf again


def test_archive_rolled_back_by_the_caller_sends_nothing(clean):
    add_grades("123/a0", "2023-09-01", 4, "r-")
    with Heard(signals.term_archived) as heard:
        with pytest.raises(Rollback), transaction.atomic():
            archive.plan(["2023_fall"]).apply()
            raise Rollback
    assert heard.calls == []
    with connect() as other:
        assert other.execute("SELECT count(*) FROM activity_grades").fetchone()[0] == 4


def test_retention_dropped_year_once_after_commit(clean):
    add_current_term(year="2099-2100")
    add_grades("123/a0", "2023-09-01", 6, "old-")
    quiet("archive_grades", "--term", "2023_fall", "--noinput")
    gone = lambda k: ("SELECT to_regclass(%s) IS NULL", [k["table"]])  # noqa: E731
    with Heard(signals.retention_dropped_year, gone) as heard:
        quiet("apply_retention", "--years", "1", "--noinput")
        quiet("apply_retention", "--years", "1", "--noinput")
    assert [(c["academic_year"], c["rows"], c["seen_by_another_session"]) for c in heard.calls] == [
        ("2023-2024", 6, True)
    ]


def test_maintenance_finished_with_counts_once_and_not_when_locked_out(clean):
    add_current_term()
    finished = lambda k: (  # noqa: E731
        "SELECT summary->>'created' IS NOT NULL FROM activity_grades_maintenance_run",
        [],
    )
    with Heard(signals.maintenance_finished, finished) as heard:
        quiet("run_partition_maintenance")
        with connect() as other:
            other.execute("SELECT pg_advisory_lock(%s)", [MAINTENANCE_LOCK_KEY])
            assert maintenance.run().ran is False
            other.execute("SELECT pg_advisory_unlock(%s)", [MAINTENANCE_LOCK_KEY])
    assert len(heard.calls) == 1
    call = heard.calls[0]
    assert call["seen_by_another_session"] is True
    assert len(call["summary"]["created"]) == 4 and call["summary"]["ran"] is True
    assert call["result"].created == call["summary"]["created"]
    assert call["summary"]["origin"] == "command"


def test_a_failing_receiver_is_logged_and_stops_nothing(clean, caplog):
    def broken(sender, **kwargs):
        raise RuntimeError("the LMS's hook is broken")

    signals.partition_created.connect(broken)
    try:
        with Heard(signals.partition_created) as heard, caplog.at_level("ERROR", "activity_grades"):
            result = create.plan(["123"], ["2023_fall", "2024_spring"]).apply()
    finally:
        signals.partition_created.disconnect(broken)
    assert len(result.created) == 3 and len(heard.calls) == 3  # the other receiver still ran
    failures = [r for r in caplog.records if "receiver of an activity_grades signal" in r.message]
    assert len(failures) == 3 and "the LMS's hook is broken" in str(failures[0].exc_info[1])


def test_restore_retention_and_maintenance_rolled_back_send_nothing(clean):
    add_current_term(year="2099-2100")
    add_grades("123/a0", "2023-09-01", 4, "x-")
    quiet("archive_grades", "--term", "2023_fall", "--noinput")
    hearers = [
        Heard(s)
        for s in (
            signals.term_restored,
            signals.retention_dropped_year,
            signals.maintenance_finished,
            signals.partition_created,
        )
    ]
    for h in hearers:
        h.__enter__()
    try:
        for work in (
            lambda: restore.plan(["2023_fall"]).apply(),
            lambda: retention.plan(years=1).apply(),
            lambda: maintenance.run(),
        ):
            with pytest.raises(Rollback), transaction.atomic():
                work()
                raise Rollback
    finally:
        for h in hearers:
            h.__exit__()
    assert [len(h.calls) for h in hearers] == [0, 0, 0, 0]
    with connect() as other:  # and nothing of it was committed
        assert other.execute("SELECT count(*) FROM archived_activity_grades").fetchone()[0] == 4
