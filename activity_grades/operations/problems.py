"""One problem a health check found (``operations.repair``, ``operations.month_checks``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Problem"]


@dataclass
class Problem:
    """One thing wrong with the tree; ``fix`` repairs it when that is safe."""

    id: str
    message: str
    hint: str = ""
    table: str | None = None
    fix: Callable[[], str] | None = field(default=None, repr=False, compare=False)

    @property
    def fixable(self) -> bool:
        return self.fix is not None
