"""activity_grades: PostgreSQL table-inheritance partitioning of activity grades for Django.

The public API is ``activity_grades.api`` (its ``__all__``); every name there can be
imported from the package itself once Django is set up::

    from activity_grades import ActivityGradeService, archive

The names are resolved on first use (PEP 562), so listing the app in ``INSTALLED_APPS``
does not import its models before Django's app registry is ready.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import *  # noqa: F403

__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        # A submodule not imported yet (``from . import replicas``): the import system
        # loads it once this says it is not an attribute; the API may not be ready.
        raise AttributeError(name)
    api = importlib.import_module(f"{__name__}.api")
    if name in api.__all__:
        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *importlib.import_module(f"{__name__}.api").__all__])
