"""Partition names: safe for any id, at most 63 bytes, one table per (class, term)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from gradeproject.lms.models import Activity, SchoolClass, Term
from tests.helpers import INSERT, assert_tree_consistent

pytestmark = pytest.mark.django_db

HOSTILE = [
    "123",
    "O'Brien",
    "x; DROP TABLE activity_grades; --",
    'quote"inside',
    "with space",
    "Capitals",
    "capitals",
    "Ωμέγα-классы-数学",
    "ü" * 200,
    "a" * 200,
    "a" * 199 + "b",
    "a_term_b",
    "a",
    "",
    "%I %L $1",
]
TERMS = ["2023_fall", "Fall 2023", "fall 2023", "t'; --", "Ω" * 150, "b_term_c", "c"]


def make(class_ids, term_ids):
    for i, term_id in enumerate(term_ids):
        start = dt.date(2000 + i, 1, 1)
        Term.objects.create(
            id=term_id,
            start_date=start,
            end_date=start.replace(month=12, day=31),
            academic_year=str(2000 + i),
        )
    for class_id in class_ids:
        SchoolClass.objects.create(id=class_id, name="x")
        Activity.objects.create(id=f"act:{class_id}", school_class_id=class_id, title="x")


def name_of(class_id, term_id):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM activity_grades_ensure_partition(%s, %s)", [class_id, term_id]
        )
        return cursor.fetchone()[0]


def test_simple_ids_give_readable_names():
    make(["123"], ["2023_fall"])
    assert name_of("123", "2023_fall") == "activity_grades_class_123_term_2023_fall"
    assert name_of("123", None) == "activity_grades_class_123"


def test_hostile_ids_get_distinct_safe_names_and_rows_route():
    make(HOSTILE, TERMS)
    names = {}
    for class_id in HOSTILE:
        for term_id in [None, *TERMS]:
            names[(class_id, term_id)] = name_of(class_id, term_id)
    assert len(set(names.values())) == len(names), "two (class, term) pairs share a table"
    for name in names.values():
        assert len(name.encode()) <= 63
        assert name.startswith("activity_grades_class_")
        assert all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in name)
    with connection.cursor() as cursor:
        # The registry is the map from ids to tables; the tables really exist.
        cursor.execute(
            "SELECT class_id, term_id, table_name, to_regclass(quote_ident(table_name))"
            " FROM activity_grades_partition"
        )
        registry = {(c, t): (n, reg) for c, t, n, reg in cursor.fetchall()}
        assert {k: v[0] for k, v in registry.items()} == names
        assert all(reg is not None for _, reg in registry.values())
        # A grade for each pair lands in that pair's table.
        for i, class_id in enumerate(HOSTILE):
            for j, _term_id in enumerate(TERMS):
                cursor.execute(
                    INSERT, [f"g{i}-{j}", f"act:{class_id}", f"s{j}", f"{2000 + j}-06-01 12:00+00"]
                )
        assert assert_tree_consistent(cursor) == len(HOSTILE) * len(TERMS)
        cursor.execute("SELECT to_regclass('activity_grades')")  # still there after the injection
        assert cursor.fetchone()[0] == "activity_grades"


def test_ambiguous_readable_names_do_not_collide():
    make(["a_term_b", "a"], ["c", "b_term_c"])
    first = name_of("a_term_b", "c")
    second = name_of("a", "b_term_c")
    assert first == "activity_grades_class_a_term_b_term_c"
    assert second != first and len(second) <= 63


def test_case_variants_are_different_tables():
    make(["Capitals", "capitals"], [])
    assert name_of("Capitals", None) != name_of("capitals", None)


def test_index_names_fit_and_are_unique_for_long_tables():
    make(["a" * 200, "a" * 199 + "b"], ["Ω" * 150])
    tables = [name_of("a" * 200, "Ω" * 150), name_of("a" * 199 + "b", "Ω" * 150)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text FROM pg_index "
            "WHERE indrelid = ANY(ARRAY[%s, %s]::regclass[])",
            tables,
        )
        indexes = [r[0] for r in cursor.fetchall()]
    assert len(indexes) == 8 and len(set(indexes)) == 8
    assert all(len(i) <= 63 for i in indexes)


def _partition_name(cursor, class_id, term_id):
    cursor.execute("SELECT activity_grades_partition_name(%s, %s)", [class_id, term_id])
    return cursor.fetchone()[0]


def test_name_of_an_existing_partition_is_its_own_name():
    """Asking again (a planner racing a creator) gives the registered name, no error."""
    make(["123", "O'Brien"], ["2023_fall", "t'; --"])
    with connection.cursor() as cursor:
        for class_id, term_id in [("123", "2023_fall"), ("O'Brien", "t'; --"), ("123", None)]:
            assert _partition_name(cursor, class_id, term_id) == name_of(class_id, term_id)


def test_a_table_outside_the_registry_is_never_claimed():
    make(["O'Brien"], [])
    with connection.cursor() as cursor:
        taken = _partition_name(cursor, "O'Brien", None)
        cursor.execute(f'CREATE TABLE "{taken}" (x int)')
        with pytest.raises(Exception, match="is taken"):
            _partition_name(cursor, "O'Brien", None)


@pytest.mark.django_db(transaction=True)
def test_racing_creators_of_one_readable_name_both_succeed(committed):
    """Class 'a_term_b' and (class 'a', term 'b') want the same readable name at once."""
    import threading

    from tests.helpers import connect

    make(["a_term_b", "a"], ["b"])
    name_of("a", None)  # the class table of 'a' exists; only the two contested names remain
    first = connect(autocommit=False)
    first.execute("SELECT * FROM activity_grades_ensure_partition('a_term_b', NULL)")
    result: dict = {}

    def second() -> None:
        try:
            with connect() as conn:
                row = conn.execute(
                    "SELECT table_name FROM activity_grades_ensure_partition('a', 'b')"
                ).fetchone()
                result["table"] = row[0]
        except Exception as exc:  # noqa: BLE001 - asserted below
            result["error"] = exc

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive(), "the second creator did not wait for the first"
    first.commit()
    first.close()
    thread.join(30)
    assert "error" not in result, result
    assert name_of("a_term_b", None) == "activity_grades_class_a_term_b"
    assert result["table"] != "activity_grades_class_a_term_b"
    assert len(result["table"]) <= 63
