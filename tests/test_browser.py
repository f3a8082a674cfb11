"""The partition dashboard in a real headless Chromium (Debian's), driven by Playwright.

Skipped only when /usr/bin/chromium is absent. Never runs ``playwright install``:
the browser is the system one. The screenshot lands in tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from .admin_support import make_grades, staff
from .helpers import leaf

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium"),
]


def png_pixels(path: Path) -> tuple[int, int, set[bytes]]:
    """(width, height, distinct colours) of a screenshot, read with Pillow."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    # Every 2nd pixel of every 4th row (nearest: no blended colours): plenty to tell a
    # blank page.
    sample = rgb.resize((rgb.width // 2, rgb.height // 4), Image.Resampling.NEAREST)
    data = sample.tobytes()
    return rgb.width, rgb.height, {data[i : i + 3] for i in range(0, len(data), 3)}


@pytest.fixture
def site(committed_lms, live_server):
    make_grades()
    staff("root", superuser=True)
    return live_server.url, leaf("123", "2023_fall"), leaf("456", None), leaf("456", "2023_fall")


def test_partitions_page_in_chromium(site):
    # Not importorskip: with chromium present, a missing playwright package is a failure.
    from playwright import sync_api

    base, biggest, class_456, leaf_456 = site
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "partitions.png"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(f"{base}/admin/login/?next=/admin/activity_grades/partition/")
            page.fill("#id_username", "root")
            page.fill("#id_password", "pw")
            page.click("input[type=submit]")
            page.wait_for_selector("#ag-partitions")
            assert page.inner_text("#ag-total-partitions") == "5"
            assert page.is_visible("#ag-term-chart")
            assert page.is_visible("#ag-create-upcoming")  # superuser action

            # sort by total size, largest first (click twice: ascending, then descending)
            page.click("a[data-sort=total_bytes]")
            page.wait_for_url("**o=total_bytes*")
            page.click("a[data-sort=total_bytes]")
            page.wait_for_url("**o=-total_bytes*")
            rows = page.eval_on_selector_all(
                "#ag-partitions tbody tr", "els => els.map(e => e.dataset.table)"
            )
            assert rows[0] == biggest and len(rows) == 5

            # filter by class through the form
            page.select_option("select[name=class]", "123")
            page.click("#ag-filter-form input[type=submit]")
            page.wait_for_url("**class=123*")
            rows = page.eval_on_selector_all(
                "#ag-partitions tbody tr", "els => els.map(e => e.dataset.table)"
            )
            assert len(rows) == 3 and all("123" in r for r in rows)

            # drill down from class 456 to its terms
            page.goto(f"{base}/admin/activity_grades/partition/")
            page.click(f"tr[data-table='{leaf_456}'] a.ag-drill")
            page.wait_for_url("**class=456*")
            assert "Class 456" in page.inner_text(".breadcrumbs")
            rows = page.eval_on_selector_all(
                "#ag-partitions tbody tr", "els => els.map(e => e.dataset.table)"
            )
            assert set(rows) == {class_456, leaf_456}

            page.goto(f"{base}/admin/activity_grades/partition/?o=-total_bytes")
            page.wait_for_selector("#ag-term-chart rect")
            page.screenshot(path=str(shot), full_page=True)

            # Issue 12, item 14: at 1,900 px the page is no wider than the admin header.
            page.set_viewport_size({"width": 1900, "height": 1000})
            page.goto(f"{base}/admin/activity_grades/partition/")
            page.wait_for_selector("#ag-partitions")
            widths = page.evaluate(
                "() => [document.documentElement.scrollWidth,"
                " document.querySelector('#header').getBoundingClientRect().width]"
            )
            assert widths[0] <= widths[1] <= 1900, widths
        finally:
            browser.close()
    width, height, colours = png_pixels(shot)
    assert width >= 1000 and height >= 500
    assert len(colours) > 20, "the screenshot looks blank"
