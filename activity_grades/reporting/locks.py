"""Lock-table headroom: what one query through the parent costs the server's lock table.

PostgreSQL's shared lock table has ``max_locks_per_transaction x (max_connections +
max_prepared_transactions)`` slots for the whole server. A query through the parent
locks every table of the tree and every index of them; a few such queries at once can
fill the table, and then every session of the server, other databases included, gets
"out of shared memory". The default manager refuses those queries above
``ROUTING_PARTITION_LIMIT``; this says how close the tree is.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..db import catalog

__all__ = ["CONCURRENT", "Headroom", "headroom"]

# Warn when fewer whole-tree queries than this at once would fill the lock table.
CONCURRENT = 8


@dataclass(frozen=True)
class Headroom:
    tables: int  # the parent and every partition
    locks_per_whole_tree_query: int  # those tables and their indexes
    capacity: int  # slots of the server's lock table

    @property
    def queries_to_fill(self) -> int:
        """How many whole-tree queries at once fill the lock table."""
        return self.capacity // max(self.locks_per_whole_tree_query, 1)

    @property
    def low(self) -> bool:
        return self.queries_to_fill < CONCURRENT

    def sentence(self) -> str:
        return (
            f"a query through the parent locks {self.locks_per_whole_tree_query} relations "
            f"({self.tables} tables and their indexes) of the server's {self.capacity} lock "
            f"slots: {self.queries_to_fill} such queries at once fill them"
        )


def headroom(using: str = "default") -> Headroom:
    tables, relations = catalog.tree_relations(using)
    return Headroom(tables, relations, catalog.lock_capacity(using))
