"""Progress of the long commands: a tqdm bar on a terminal, plain lines otherwise.

On a terminal the bar redraws in place (count, rate, elapsed and ETA). When the output
is not a terminal (cron mail, CI logs, ``call_command(stdout=StringIO())``) there is no
bar: one plain line each time another twentieth of the work is done, and one at the end,
each with the count, percentage, elapsed time and ETA (tqdm's ``format_meter``). With
``-v 2`` each item also gets a line of its own (above the bar on a terminal).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand
from tqdm import tqdm

LINE = (
    "{desc}: {n_fmt}/{total_fmt}{unit} ({percentage:.0f}%), {elapsed} elapsed, "
    "ETA {remaining}, {rate_fmt}"
)
STEPS = 20  # plain lines per run when not on a terminal


class Progress:
    """A ``Progress`` callback (``operations.base``) for one command's ``plan.apply()``.

    Args:
        command: the command (its ``stdout`` and ``style``).
        what: what is being done, e.g. ``"Creating partitions"``.
        unit: what is counted, e.g. ``"partitions"``.
        verbosity: the command's ``-v``; 0 shows nothing, 2 adds a line per item.
        detail: the per-item line at ``-v 2`` from (item, outcome); None: none.
        tty: force the terminal mode on or off (default: whether stdout is a terminal).
        minimum: at ``-v 1`` show nothing for less work than this (a quick run stays quiet).

    Use it as a context manager, so the bar ends on a terminal even when the work fails.
    """

    def __init__(
        self,
        command: BaseCommand,
        what: str,
        unit: str,
        verbosity: int,
        detail: Callable[[Any, Any], str] | None = None,
        tty: bool | None = None,
        minimum: int = 0,
    ) -> None:
        self.command = command
        self.what = what
        self.unit = f" {unit}"
        self.verbosity = verbosity
        self.detail = detail
        self.tty = command.stdout.isatty() if tty is None else tty
        # The stream under Django's OutputWrapper: tqdm redraws with "\r", no newline added.
        self.stream = cast(TextIO, command.stdout._out)
        self.bar: tqdm[Any] | None = None
        self.started = time.monotonic()
        self.step = -1
        self.minimum = minimum

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, done: int, total: int, item: Any = None, outcome: Any = None) -> None:
        if self.verbosity < 1:
            return
        if self.verbosity >= 2 and self.detail is not None:
            self._write(f"  [{done}/{total}] {self.detail(item, outcome)}")
        if total < self.minimum:
            return
        if self.tty:
            self._draw(done, total)
        else:
            self._line(done, total)

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            self.command.stdout.write(text)

    def _draw(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(
                total=total,
                desc=self.what,
                unit=self.unit,
                file=self.stream,
                dynamic_ncols=True,
                leave=True,
            )
        self.bar.total = total
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def _line(self, done: int, total: int) -> None:
        step = done * STEPS // max(total, 1)
        if step == self.step and done < total:
            return
        self.step = step
        self.command.stdout.write(
            "  "
            + tqdm.format_meter(
                done,
                total,
                time.monotonic() - self.started,
                prefix=self.what,
                unit=self.unit,
                bar_format=LINE,
            )
        )

    def close(self) -> None:
        """End the bar (at the last item, or when the work stops early)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
