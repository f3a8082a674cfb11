"""Progress of the long commands: a real bar on a terminal (a pty), plain lines otherwise."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from .archive_support import ROOT, add_grades, database_url, drop_archive
from .conftest import make_lms

CLASSES = [f"c{i:03d}" for i in range(120)]
PLAIN = re.compile(
    r"^  Creating partitions: (\d+)/(\d+) partitions \((\d+)%\), \d\d:\d\d elapsed, "
    r"ETA (\d\d:\d\d|\?), .* partitions/s$"
)


def run(*args) -> str:
    out = StringIO()
    call_command("create_partitions", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_plain_lines_when_not_a_terminal():
    make_lms(class_ids=CLASSES[:60], activities_per_class=1)
    out = run("--all-terms")
    assert "\r" not in out and "\x1b" not in out
    lines = [line for line in out.splitlines() if PLAIN.match(line)]
    # One line per twentieth of the work, plus the first: 21 for 240 partitions.
    assert len(lines) == 21, out
    counts = [int(PLAIN.match(line)[1]) for line in lines]
    assert counts == sorted(counts) and counts[-1] == 240
    assert lines[-1].startswith("  Creating partitions: 240/240 partitions (100%)")
    assert out.splitlines()[-1].startswith("Created 240 partitions, 0 existing, in ")
    assert set(out.splitlines()) - set(lines) == {out.splitlines()[-1]}  # nothing else


@pytest.mark.django_db
def test_verbosity_zero_is_quiet_and_two_names_each_item():
    make_lms(class_ids=CLASSES[:30], activities_per_class=1)
    quiet = run("--term", "2023_fall", "-v", "0")
    assert [line for line in quiet.splitlines() if line.strip()] == [quiet.strip()]
    assert quiet.startswith("Created 60 partitions")  # below 100: no progress at -v 1 either
    out = run("--term", "2024_spring", "-v", "2")
    items = [line for line in out.splitlines() if line.startswith("  [")]
    assert len(items) == 30 and items[0].startswith("  [1/30] activity_grades_class_c000_term_")


def test_archive_progress_lines(committed_lms):
    drop_archive()
    try:
        add_grades("123/a0", "2023-09-01", 3, "p-")
        add_grades("456/a0", "2023-09-01", 2, "q-")
        out = StringIO()
        call_command("archive_grades", "--term", "2023_fall", "--noinput", stdout=out)
        lines = [x for x in out.getvalue().splitlines() if x.startswith("  Archiving: ")]
        assert [x.split(" (")[0] for x in lines] == [
            "  Archiving: 1/2 partitions",
            "  Archiving: 2/2 partitions",
        ]
        assert all("ETA" in x for x in lines)
    finally:
        drop_archive()


def _manage(args: list[str], tty: bool) -> str:
    """manage.py in a child process, its output a terminal (a pty) or a pipe."""
    env = dict(os.environ)
    env.pop("TEST_DATABASE_NAME", None)
    env.update(
        DATABASE_URL=database_url("progress_test"),
        DJANGO_SETTINGS_MODULE=settings.SETTINGS_MODULE,
        COLUMNS="100",
    )
    command = [sys.executable, str(ROOT / "manage.py"), *args]
    if not tty:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return done.stdout
    leader, follower = pty.openpty()
    # A terminal 100 columns wide (a new pty is 0 x 0).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=follower, stderr=follower)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif child.poll() is not None:
            break
    os.close(leader)
    assert child.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_a_bar_and_a_pipe_gets_lines(committed):
    make_lms(class_ids=CLASSES, activities_per_class=1)
    on_tty = _manage(["create_partitions", "--term", "2023_fall"], tty=True)
    # tqdm's bar: redrawn in place with "\r", bar glyphs, "[elapsed<ETA, rate]".
    assert "\r" in on_tty and "Creating partitions:" in on_tty
    assert re.search(r"\|[█▏▎▍▌▋▊▉ #0-9]*\| *240/240 \[\d\d:\d\d<\d\d:\d\d, ", on_tty), on_tty
    assert "Created 240 partitions, 0 existing" in on_tty

    piped = _manage(["create_partitions", "--term", "2024_spring"], tty=False)
    assert "\r" not in piped and "█" not in piped
    assert "  Creating partitions: 120/120 partitions (100%)" in piped
    assert sum(1 for line in piped.splitlines() if PLAIN.match(line)) == 21
