"""The admin: partition dashboard (permissions, content, actions) and the grade list."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.urls import reverse

from activity_grades.admin.listing import PER_PAGE
from activity_grades.models import ActivityGrade, Partition
from tests.helpers import assert_tree_consistent, leaf

from .admin_support import (
    FALL_2023,
    add_upcoming_terms,
    grade,
    make_grades,
    staff,
)

pytestmark = pytest.mark.django_db

URL = "/admin/activity_grades/partition/"
CREATE_URL = "/admin/activity_grades/partition/create-upcoming/"


@pytest.fixture
def data(lms):
    make_grades()


@pytest.fixture
def viewer(client):
    client.force_login(staff("viewer", "view_partition", "view_activitygrade"))
    return client


@pytest.fixture
def superuser(client):
    client.force_login(staff("root", superuser=True))
    return client


def rows_of(response) -> list[str]:
    return re.findall(r'<tr data-table="([^"]+)"', response.content.decode())


# -- permissions ---------------------------------------------------------------


def test_urls_are_the_admin_ones():
    assert reverse("admin:activity_grades_partition_changelist") == URL
    assert reverse("admin:activity_grades_partition_create") == CREATE_URL


def test_anonymous_is_sent_to_login(client, data):
    for url in (URL, CREATE_URL, URL + "health/"):
        response = client.get(url)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]


def test_staff_without_view_permission_is_refused(client, data):
    client.force_login(staff("nobody"))
    assert client.get(URL).status_code == 403
    assert client.get(URL + "health/").status_code == 403
    assert client.get(CREATE_URL).status_code == 403
    # and the app is not offered on the index
    assert "Activity grade partitions" not in client.get("/admin/").content.decode()


def test_non_staff_user_is_refused(client, data):
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("student", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_partition"))
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_viewer_sees_the_page_read_only(viewer, data):
    response = viewer.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert leaf("123", "2023_fall") in rows_of(response)
    assert "ag-create-upcoming" not in body and "ag-archive-term" not in body
    assert viewer.get(CREATE_URL).status_code == 403
    assert viewer.post(CREATE_URL).status_code == 403
    # linked from the admin index under the app
    index = viewer.get("/admin/").content.decode()
    assert URL in index
    # the registry cannot be changed through the admin
    part = Partition.objects.get(table_name=leaf("123", "2023_fall"))
    change = viewer.post(f"{URL}{part.pk}/change/", {"status": "archived"})
    assert change.status_code == 403
    part.refresh_from_db()
    assert part.status == "live"
    assert viewer.get(f"{URL}add/").status_code == 403


def test_superuser_sees_actions_and_creates_upcoming_partitions(superuser, data):
    upcoming = add_upcoming_terms()
    body = superuser.get(URL).content.decode()
    assert "ag-create-upcoming" in body
    confirm = superuser.get(CREATE_URL)
    assert confirm.status_code == 200
    text = confirm.content.decode()
    for term_id in upcoming:
        assert f"activity_grades_class_123_term_{term_id}" in text
    assert "CREATE TABLE" in text  # the plan shows its SQL
    # nothing was created by looking at the plan
    assert not Partition.objects.filter(term_id__in=upcoming).exists()
    response = superuser.post(CREATE_URL)
    assert response.status_code == 302
    assert set(
        Partition.objects.filter(term_id__in=upcoming).values_list("class_id", "term_id")
    ) == {(c, t) for c in ("123", "456") for t in upcoming}
    # a second run has nothing to do
    assert "Nothing to do" in superuser.get(CREATE_URL).content.decode()


# -- content -------------------------------------------------------------------


def test_totals_and_rows(viewer, data):
    response = viewer.get(URL)
    body = response.content.decode()
    n = Partition.objects.count()
    assert n == 2 + 3  # two class tables, 123/fall, 123/spring, 456/fall
    assert f'id="ag-total-partitions">{n}<' in body
    # estimates after ANALYZE: 30 + 1 + 1 + 1 grades
    assert 'id="ag-total-rows">33<' in body
    assert 'id="ag-rows-in-parent">0<' in body
    assert leaf("123", "2023_fall") in body.split("Largest partition")[1].split("</li>")[0]
    assert len(rows_of(response)) == n
    assert "ag-term-chart" in body and "2023_fall" in body
    # pg_stat_statements is reported either way
    assert "ag-slow-statements" in body or "ag-pgss-missing" in body


def test_sort_by_any_column(viewer, data):
    by_size = rows_of(viewer.get(URL, {"o": "-total_bytes"}))
    assert by_size[0] == leaf("123", "2023_fall")
    by_name = rows_of(viewer.get(URL, {"o": "table_name"}))
    assert by_name == sorted(by_name)
    assert rows_of(viewer.get(URL, {"o": "-table_name"})) == sorted(by_name, reverse=True)
    for key in ("rows", "-dead_rows", "seq_scan", "-last_analyze", "share", "-term_id"):
        assert viewer.get(URL, {"o": key}).status_code == 200
    # an unknown key is ignored, not an error
    assert viewer.get(URL, {"o": "nope; drop"}).status_code == 200


def test_filters_search_and_drill_down(viewer, data):
    page = viewer.get(URL)
    # drill-down link from a class to its terms
    assert 'href="?class=123"' in page.content.decode()
    drilled = viewer.get(URL, {"class": "123"})
    assert set(rows_of(drilled)) == {
        leaf("123", None),
        leaf("123", "2023_fall"),
        leaf("123", "2024_spring"),
    }
    assert "Class 123" in drilled.content.decode()  # breadcrumb
    assert set(rows_of(viewer.get(URL, {"term": "2023_fall"}))) == {
        leaf("123", "2023_fall"),
        leaf("456", "2023_fall"),
    }
    assert set(rows_of(viewer.get(URL, {"term": "-"}))) == {leaf("123", None), leaf("456", None)}
    assert set(rows_of(viewer.get(URL, {"q": "45"}))) == {
        leaf("456", None),
        leaf("456", "2023_fall"),
    }
    Partition.objects.filter(table_name=leaf("456", "2023_fall")).update(status="archived")
    assert rows_of(viewer.get(URL, {"status": "archived"})) == [leaf("456", "2023_fall")]
    assert rows_of(viewer.get(URL, {"status": "detached"})) == []


def test_pagination_with_many_registry_rows(viewer, data):
    # Registry rows without tables (e.g. detached and dropped): rendered as missing.
    Partition.objects.bulk_create(
        Partition(
            class_id=f"c{i:04d}",
            term_id=None,
            table_name=f"gone_{i:04d}",
            parent_table="activity_grades",
            status="detached",
        )
        for i in range(PER_PAGE + 20)
    )
    first = viewer.get(URL, {"o": "table_name"})
    assert len(rows_of(first)) == PER_PAGE
    second = viewer.get(URL, {"o": "table_name", "p": 2})
    assert len(rows_of(second)) == 5 + 20
    assert "Page 2 of 2" in second.content.decode()
    assert "(missing)" in second.content.decode()


def test_page_is_one_catalog_query_whatever_the_partition_count(viewer, data):
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(conn) as few:
        viewer.get(URL)
    Partition.objects.bulk_create(
        Partition(class_id=f"c{i}", table_name=f"gone_{i}", parent_table="x", status="detached")
        for i in range(300)
    )
    with CaptureQueriesContext(conn) as many:
        viewer.get(URL)
    assert len(many.captured_queries) == len(few.captured_queries)


def test_health_page(viewer, data):
    body = viewer.get(URL + "health/").content.decode()
    # 2023/2024 terms are over: no upcoming term, so nothing is missing
    assert "Partition tree OK" in body
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE activity_grades DISABLE TRIGGER activity_grades_route")
    assert "activity_grades.E001" in viewer.get(URL + "health/").content.decode()


def test_superuser_sees_the_archive_action(superuser, data):
    assert "ag-archive-term" in superuser.get(URL).content.decode()


# -- grades --------------------------------------------------------------------

GRADES = "/admin/activity_grades/activitygrade/"


def test_grade_list_shows_partition_filters_and_search(viewer, data):
    response = viewer.get(GRADES)
    assert response.status_code == 200
    body = response.content.decode()
    assert leaf("123", "2023_fall") in body
    assert leaf("456", None) in body  # the grade outside every term
    # filters come from the registry
    assert "?class=456" in body and "?term=2024_spring" in body
    only = viewer.get(GRADES, {"class": "456"}).content.decode()
    assert leaf("456", "2023_fall") in only and leaf("123", "2023_fall") not in only
    term = viewer.get(GRADES, {"term": "2024_spring"}).content.decode()
    # Cells, not substrings: the page's random CSRF token can contain "u1".
    assert ">t1<" in term and leaf("123", "2024_spring") in term and ">u1<" not in term
    found = viewer.get(GRADES, {"q": "u2"}).content.decode()
    assert leaf("456", None) in found and leaf("123", "2023_fall") not in found
    by_activity = viewer.get(GRADES, {"q": "123/a1"})
    assert by_activity.context["cl"].result_count == 15


def test_grade_list_never_counts_the_tree(viewer, data):
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        response = viewer.get(GRADES)
    assert response.status_code == 200
    counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    assert not any('FROM "activity_grades"' in q and "LIMIT" not in q for q in counts), counts
    assert response.context["cl"].result_count == 33  # the estimate (after ANALYZE)


def test_saving_a_grade_through_the_admin_moves_it(superuser, data):
    g = grade("123/a0", "mover", FALL_2023)
    url = f"{GRADES}{g.pk}/change/"
    form = superuser.get(url)
    assert form.status_code == 200
    assert leaf("123", "2023_fall") in form.content.decode()
    data = {
        "activity_id": "456/a0",
        "student_id": "mover",
        "score": "9.5",
        "status": "graded",
        "submitted_at_0": "2023-09-01",
        "submitted_at_1": "12:00:00",
        "created_at_0": "2024-02-01",
        "created_at_1": "12:00:00",
        "content": "null",
        "attachments": "null",
        "commitment_met": "unknown",
    }
    response = superuser.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    moved = ActivityGrade.objects.get(pk=g.pk)
    assert (moved.class_id, moved.term_id, moved.score) == ("456", "2024_spring", 9.5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM activity_grades WHERE id = %s", [g.pk])
        assert cursor.fetchall() == [(leaf("456", "2024_spring"),)]


PARENT_ITSELF = re.compile(r'(FROM|UPDATE|JOIN|INTO)\s+"activity_grades"(\s|$)')


def _grade_form(**over) -> dict:
    return {
        "activity_id": "123/a0",
        "student_id": "s1",
        "score": "9.5",
        "status": "graded",
        "submitted_at_0": "2023-09-01",
        "submitted_at_1": "12:00:00",
        "created_at_0": "2023-09-01",
        "created_at_1": "12:00:00",
        "content": "null",
        "attachments": "null",
        "commitment_met": "unknown",
        **over,
    }


def test_editing_and_deleting_a_grade_never_query_the_parent(superuser, data):
    """Change form, unique check, save and delete read and write the grade's table only
    (a query on the parent plans and locks every partition)."""
    from django.test.utils import CaptureQueriesContext

    g = grade("123/a0", "editor", FALL_2023)
    url = f"{GRADES}{g.pk}/change/"
    with CaptureQueriesContext(connection) as ctx:
        assert superuser.get(url).status_code == 200
        response = superuser.post(url, _grade_form(student_id="editor", score="4"))
        assert response.status_code == 302, response.content.decode()[:2000]
        # The unique (activity, student) check, answered by the key index.
        taken = superuser.post(url, _grade_form(student_id="s1"))
        assert taken.status_code == 200
        assert "Activity id and Student id already exists" in taken.content.decode()
        assert superuser.post(f"{GRADES}{g.pk}/delete/", {"post": "yes"}).status_code == 302
    on_parent = [q["sql"] for q in ctx.captured_queries if PARENT_ITSELF.search(q["sql"])]
    assert on_parent == [], on_parent
    assert not ActivityGrade.objects.filter(pk=g.pk).exists()
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 33


ARCHIVE_URL = "/admin/activity_grades/partition/archive-term/"


def test_archive_a_term_with_confirmation(superuser, data):
    table = leaf("123", "2024_spring")
    choose = superuser.get(ARCHIVE_URL)
    assert choose.status_code == 200 and "2024_spring" in choose.content.decode()
    confirm = superuser.get(ARCHIVE_URL, {"term": "2024_spring"})
    assert table in confirm.content.decode()
    assert Partition.objects.get(table_name=table).status == "live"  # a plan changes nothing
    response = superuser.post(ARCHIVE_URL, {"term": "2024_spring", "confirm": "yes"})
    assert response.status_code == 302
    assert Partition.objects.get(table_name=table).status == "archived"
    listed = superuser.get(URL, {"status": "archived"})
    assert rows_of(listed) == [table]


def test_archive_refused_to_viewer(viewer, data):
    assert viewer.get(ARCHIVE_URL).status_code == 403
    assert viewer.post(ARCHIVE_URL, {"term": "2023_fall", "confirm": "yes"}).status_code == 403


def test_class_filter_reads_the_class_table_only(viewer, data):
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        body = viewer.get(GRADES, {"class": "123", "term": "2023_fall"}).content.decode()
    # Cells, not substrings: "t1" alone can occur in the page's random CSRF token.
    assert leaf("123", "2023_fall") in body and ">s1<" in body and ">t1<" not in body
    grade_queries = [q["sql"] for q in ctx.captured_queries if "score" in q["sql"]]
    assert grade_queries and all(f'FROM "{leaf("123", "2023_fall")}"' in q for q in grade_queries)


def test_large_tree_asks_for_a_class(viewer, data, settings):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "ADMIN_PARENT_PARTITION_LIMIT": 3}
    response = viewer.get(GRADES)
    assert response.status_code == 200
    assert "Choose a class" in response.content.decode()
    assert response.context["cl"].result_count == 0
    assert ">u1<" in viewer.get(GRADES, {"class": "456"}).content.decode()


def test_adding_a_grade_for_an_activity_that_does_not_exist_is_a_form_error(superuser, data):
    response = superuser.post(f"{GRADES}add/", _grade_form(activity_id="no-such", student_id="n"))
    assert response.status_code == 200  # the form again, not a 500
    page = response.content.decode()
    assert "activity_grades: activity &#x27;no-such&#x27; does not exist" in page
    assert not ActivityGrade.objects.for_class("123").filter(student_id="n").exists()
    response = superuser.post(f"{GRADES}add/", _grade_form(student_id="n"))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ActivityGrade.objects.for_class("123").filter(student_id="n").count() == 1
