"""What every operation shares: a plan of items, applied one item at a time."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..db.connection import Cursor, atomic, cursor, set_lock_timeout
from . import faults

__all__ = ["Plan", "Progress", "Result", "Stopwatch", "each", "run_steps"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT", bound="Result")

# progress(done, total, item, outcome): called after each item is applied.
Progress = Callable[[int, int, Any, Any], None]


@dataclass
class Result:
    """What applying a plan did; ``seconds`` is wall time."""

    seconds: float = field(default=0.0, kw_only=True)


@dataclass
class Plan(abc.ABC, Generic[ItemT, ResultT]):
    """The items an operation would touch; nothing is changed until ``apply``."""

    items: list[ItemT]
    using: str = field(default="default", kw_only=True)

    @property
    def rows(self) -> int:
        return sum(getattr(item, "rows", 0) for item in self.items)

    @property
    def bytes(self) -> int:
        return sum(getattr(item, "bytes", 0) for item in self.items)

    @abc.abstractmethod
    def apply(self, progress: Progress | None = None) -> ResultT:
        """Carry the plan out, one short transaction per item."""


def each(
    items: Sequence[ItemT], work: Callable[[ItemT], Any], progress: Progress | None
) -> Iterator[tuple[ItemT, Any]]:
    """Apply ``work`` to each item in turn, reporting progress after each."""
    for done, item in enumerate(items, 1):
        outcome = work(item)
        if progress:
            progress(done, len(items), item, outcome)
        yield item, outcome


class Stopwatch:
    """Seconds since creation (monotonic)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def run_steps(
    using: str, lock_timeout: str, steps: Sequence[Callable[[Cursor], bool | None]]
) -> bool:
    """Run ``steps`` in one transaction with ``lock_timeout``; False if a step said stop.

    Each step gets the cursor; one that returns False ends the transaction early (and
    commits nothing it did not do). The crash tests' hook (``faults.pause``) runs after
    each step (``after_<step name>``), before the commit and after it (``between``).
    """
    with atomic(using), cursor(using) as cur:
        set_lock_timeout(cur, lock_timeout)
        for step in steps:
            if step(cur) is False:
                return False
            faults.pause(f"after_{step.__name__.strip('_')}", cur)
        faults.pause("before_commit", cur)
    faults.pause("between")
    return True
