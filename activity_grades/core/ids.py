"""Ids: the grade ids the app generates, and the LMS's ids as the app stores them.

Grade ids are sortable text keys (ULID layout).

48 bits of milliseconds then 80 random bits, Crockford base32, 26 characters.
Time order keeps each partition's primary-key index appending at its right edge
instead of splitting pages at random, which matters at tens of millions of rows.
"""

from __future__ import annotations

import os
import time
import uuid

from .exceptions import InvalidId

__all__ = ["as_text", "new_grade_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_grade_id() -> str:
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def as_text(value: object, what: str = "id") -> str:
    """An LMS id (str, int or UUID, as Django's primary keys are) as the text the app stores.

    Raises:
        InvalidId: anything else (None, a bool, a float...), naming ``what``.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, int | uuid.UUID) and not isinstance(value, bool):
        return str(value)
    raise InvalidId(f"{what} must be a str, an int or a UUID, not {type(value).__name__} {value!r}")
