"""Shared bits of the archive/restore/retention commands (not a command itself)."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.management.base import BaseCommand


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def confirm(command: BaseCommand, question: str, noinput: bool) -> bool:
    """Ask (y/N) unless --noinput; anything but y/yes is a no."""
    if noinput:
        return True
    try:
        answer = input(f"{question} (y/N) ")
    except EOFError:  # no terminal (cron, CI): a no
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        command.stdout.write("Aborted: nothing was changed.")
        return False
    return True


def review(
    command: BaseCommand,
    header: str,
    lines: Iterable[str],
    *,
    dry_run: bool,
    question: str,
    noinput: bool,
) -> bool:
    """Print a plan, one indented line per item; True when it should run.

    A dry run stops here; otherwise the user confirms (y/N) unless --noinput.
    """
    command.stdout.write(header)
    for line in lines:
        command.stdout.write(f"  {line}")
    if dry_run:
        command.stdout.write("Dry run: nothing was changed.")
        return False
    return confirm(command, question, noinput)
