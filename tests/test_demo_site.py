"""The demo site as ``python3 scripts/dev.py serve`` serves it, over HTTP and in Chromium.

The site is a real server process: ``manage.py serve_demo`` (what ``dev.py serve`` runs
after ``migrate``) on a free port, against the test database, with ``DEBUG`` off. It
collects the static files into a temporary ``STATIC_ROOT`` (served by WhiteNoise), makes
the demo login and prints its password, which the tests read from its output.

The browser test loads the data with the demo's own commands (160 partitions) and drives
Debian's Chromium (never a downloaded browser; skipped only when it is absent): log in,
the dashboard with the admin stylesheet applied (a computed style), a class drill-down,
the grade list of that class, one grade saved through its change form. Its screenshots
go to tests/artifacts/ (git-ignored); with ``ACTIVITY_GRADES_WRITE_SCREENSHOT=1`` it loads
the demo's full data set (~65k grades, ~25 s; otherwise 10 students a class) and also
writes the README's docs/dashboard.png and docs/dashboard-class.png.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.admin.utils import unquote
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from activity_grades.models import ActivityGrade, Partition

from .archive_support import database_url
from .test_browser import ARGS, ARTIFACTS, CHROMIUM, png_pixels

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
WRITE_SCREENSHOTS = os.environ.get("ACTIVITY_GRADES_WRITE_SCREENSHOT") == "1"
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")


@dataclass
class Site:
    url: str
    user: str
    password: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def load_demo(*sizes: str) -> None:
    """The demo's steps (scripts/dev.py demo), in this process, committed."""
    call_command("load_demo_data", "--skip-grades", *sizes, verbosity=0)
    call_command("create_partitions", "--all-terms", verbosity=0)
    call_command("load_demo_data", "--grades-only", *sizes, verbosity=0)


def start_site(static_root: Path) -> Iterator[Site]:
    """``manage.py serve_demo`` on a free port; yields once it answers, stops it after."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url("demo_site"),
        "STATIC_ROOT": str(static_root),
        "DEBUG": "False",  # wins over a developer's .env (read without overwrite)
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("TEST_DATABASE_NAME", None)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "serve_demo", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:  # a thread: a pipe cannot be read with a timeout
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    output: list[str] = []
    url = f"http://127.0.0.1:{port}"
    try:
        password, deadline = "", time.monotonic() + 120
        while not password and time.monotonic() < deadline:
            assert proc.poll() is None, "serve_demo exited:\n" + "".join(output)
            try:
                output.append(lines.get(timeout=0.2))
            except queue.Empty:
                continue
            if output[-1].startswith("User: demo   Password: "):
                password = output[-1].split()[3]
        while time.monotonic() < deadline:  # it prints, then listens
            assert proc.poll() is None, "serve_demo exited:\n" + "".join(output)
            try:
                get(f"{url}/admin/login/")
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("serve_demo did not start in 120 s:\n" + "".join(output))
        yield Site(url, "demo", password)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def small_site(committed, tmp_path):
    load_demo("--classes", "2", "--activities", "2", "--students", "5", "--per-class", "3")
    yield from start_site(tmp_path / "static")


@pytest.fixture
def demo_site(committed, tmp_path):
    load_demo() if WRITE_SCREENSHOTS else load_demo("--per-class", "10")
    yield from start_site(tmp_path / "static")


@pytest.mark.django_db
def test_serve_demo_needs_the_demo_data():
    with pytest.raises(CommandError, match=r"no demo data: run `python3 scripts/dev.py demo`"):
        call_command("serve_demo")
    assert not User.objects.exists()  # no demo login either


def test_static_files_are_served_with_debug_off(small_site):
    demo = User.objects.get(username="demo")  # made by serve_demo, not by the tests
    assert demo.is_staff and demo.is_superuser and demo.check_password(small_site.password)

    status, headers, body = get(f"{small_site.url}/static/admin/css/base.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert b"--header-bg" in body
    # WhiteNoise, from the collected files: their gzip copies for browsers that take them
    status, headers, _ = get(
        f"{small_site.url}/static/admin/css/base.css", **{"Accept-Encoding": "gzip"}
    )
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    status, _, _ = get(f"{small_site.url}/static/admin/js/theme.js")
    assert status == 200
    # DEBUG is off: a plain 404, not Django's technical page listing the URL patterns
    status, _, body = get(f"{small_site.url}/no-such-page/")
    assert status == 404 and b"URLconf" not in body
    # / leads to the dashboard, through the admin login
    status, _, body = get(f"{small_site.url}/")
    assert status == 200 and b'id="login-form"' in body


@pytest.mark.browser
@needs_chromium
def test_demo_site_in_chromium(demo_site):
    # Not importorskip: with chromium present, a missing playwright package is a failure.
    from playwright import sync_api

    ARTIFACTS.mkdir(exist_ok=True)
    base = demo_site.url
    # Read before the browser starts: no ORM inside Playwright's event loop.
    tables: dict[str, set[str]] = {}
    for class_id, table in Partition.objects.values_list("class_id", "table_name"):
        tables.setdefault(class_id, set()).add(table)
    assert sum(map(len, tables.values())) == 160
    static_responses: list[tuple[str, int]] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, color_scheme="light")
            page.on(
                "response",
                lambda r: "/static/" in r.url and static_responses.append((r.url, r.status)),
            )
            page.goto(f"{base}/")
            page.fill("#id_username", demo_site.user)
            page.fill("#id_password", demo_site.password)
            page.click("input[type=submit]")
            page.wait_for_selector("#ag-partitions")
            assert page.url == f"{base}/admin/activity_grades/partition/"
            check_dashboard(page, total=160)
            check_stylesheet(page, static_responses)
            # The admin's JavaScript works too: its sidebar toggle (room for the table).
            page.click("#toggle-nav-sidebar")
            page.wait_for_selector("#main:not(.shifted)")
            page.evaluate("window.scrollTo(0, 0)")
            screenshot(page, "dashboard.png")

            class_id = drill_down(page, tables)
            screenshot(page, "dashboard-class.png")

            grade_id = open_grade_of_class(page, base, class_id, tables[class_id])
            assert page.input_value("#id_score") != "87.5"
            page.fill("#id_score", "87.5")
            page.click("input[name=_save]")
            page.wait_for_selector(".messagelist .success")
            assert "was changed successfully" in page.inner_text(".messagelist")
        finally:
            browser.close()
    saved = ActivityGrade.objects.for_class(class_id).get(pk=grade_id)  # in that class
    assert saved.score == 87.5


def check_dashboard(page, total: int) -> None:
    assert page.inner_text("#ag-total-partitions") == str(total)
    assert page.inner_text("#ag-rows-in-parent") == "0"
    assert page.is_visible("#ag-term-chart")
    assert page.locator("#ag-term-chart rect").count() >= 3  # one bar a term at least


def check_stylesheet(page, static_responses: list[tuple[str, int]]) -> None:
    """The admin's CSS is applied: the header has the colour base.css gives it."""
    header, expected, variable = page.evaluate(
        """() => {
            const probe = document.createElement('div');
            probe.style.backgroundColor = 'var(--header-bg)';
            document.body.appendChild(probe);
            const expected = getComputedStyle(probe).backgroundColor;
            probe.remove();
            return [
                getComputedStyle(document.querySelector('#header')).backgroundColor,
                expected,
                getComputedStyle(document.documentElement).getPropertyValue('--header-bg'),
            ];
        }"""
    )
    assert variable.strip(), "--header-bg is not defined: the admin CSS did not load"
    assert header == expected and header not in ("rgba(0, 0, 0, 0)", "transparent"), header
    assert page.evaluate(
        "() => getComputedStyle(document.querySelector('#content')).paddingLeft"
    ) not in ("0px", "")  # base.css's layout, too
    assert any(url.endswith("/static/admin/css/base.css") for url, _ in static_responses)
    assert [r for r in static_responses if r[1] not in (200, 304)] == []


def drill_down(page, tables: dict[str, set[str]]) -> str:
    """Click the first row's class: that class's table and its term tables."""
    link = page.locator("#ag-partitions tbody tr a.ag-drill").first
    class_id = link.inner_text()
    link.click()
    page.wait_for_url(f"**class={class_id}*")
    assert f"Class {class_id}" in page.inner_text(".breadcrumbs")
    shown = page.eval_on_selector_all(
        "#ag-partitions tbody tr", "els => els.map(e => e.dataset.table)"
    )
    assert set(shown) == tables[class_id]
    assert len(shown) == 4  # the class table and one table a term
    return class_id


def open_grade_of_class(page, base: str, class_id: str, class_tables: set[str]) -> str:
    """The grade list filtered by the class, then the first grade's change form."""
    page.goto(f"{base}/admin/activity_grades/activitygrade/?class={class_id}")
    page.wait_for_selector("#result_list")
    partitions = page.eval_on_selector_all(
        "#result_list tbody td.field-partition", "els => els.map(e => e.innerText)"
    )
    assert partitions and set(partitions) <= class_tables, partitions
    page.click("#result_list tbody tr th a")
    page.wait_for_selector("#activitygrade_form")
    path = urllib.parse.urlsplit(page.url).path  # .../activitygrade/<id>/change/?filters
    return unquote(path.rstrip("/").split("/")[-2])  # the admin's own quoting of pks


def screenshot(page, name: str) -> None:
    shot = ARTIFACTS / name
    page.screenshot(path=str(shot))
    width, height, colours = png_pixels(shot)
    assert width >= 1000 and height >= 500
    assert len(colours) > 20, "the screenshot looks blank"
    if WRITE_SCREENSHOTS:
        shutil.copyfile(shot, DOCS / name)
