"""Shared bits of the archive/restore/retention commands (not a command itself)."""

from __future__ import annotations


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def confirm(command, question: str, noinput: bool) -> bool:
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
