"""Shards: the names the app derives from a shard's alias, and the rule that places a class.

Pure functions (no database): ``db.placement`` records what ``placement.shard_of``
decides with them, once per class.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

__all__ = [
    "ALIAS_PATTERN",
    "LOCAL",
    "MAX_ALIAS_LENGTH",
    "alias_of_server",
    "hashed_shard",
    "server_name",
]

LOCAL = "local"
"""The placement of a class whose partitions stay on the coordinator (the default)."""

SERVER_PREFIX = "activity_grades_shard_"
# A foreign server's name is the prefix and the alias: it must fit PostgreSQL's 63 bytes
# and read the same everywhere (psql, the health checks, the docs), so aliases are plain.
MAX_ALIAS_LENGTH = 63 - len(SERVER_PREFIX)
ALIAS_PATTERN = re.compile(rf"[A-Za-z0-9_]{{1,{MAX_ALIAS_LENGTH}}}")


def server_name(alias: str) -> str:
    """The foreign server (``CREATE SERVER``) on the coordinator for the shard ``alias``."""
    return SERVER_PREFIX + alias


def alias_of_server(name: str) -> str | None:
    """The shard alias a foreign server ``server_name`` made, or None (not one of ours)."""
    return name.removeprefix(SERVER_PREFIX) if name.startswith(SERVER_PREFIX) else None


def _weight(class_id: str, alias: str) -> bytes:
    return hashlib.sha256(f"{alias}\x00{class_id}".encode()).digest()


def hashed_shard(class_id: str, shards: Sequence[str]) -> str:
    """The shard of ``shards`` a class hashes to (rendezvous hashing).

    The shard with the highest hash of (alias, class) wins: the answer does not depend
    on the order of ``shards``, and adding a shard changes it only for the classes the
    new shard wins (about 1/n). Placement is recorded when first decided, so even that
    never moves a placed class; the rule only spreads classes not placed yet.
    """
    if not shards:
        return LOCAL
    return max(shards, key=lambda alias: _weight(class_id, alias))
