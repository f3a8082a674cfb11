"""The database layer: the only code that writes SQL.

- ``connection``: small helpers to run composed SQL and read results.
- ``registry``: (class, term) -> table, and where a grade or a student's grades live.
- ``catalog``: what PostgreSQL's catalog says about the tree (markers, sizes, indexes).
- ``lms``: the LMS's activities and terms, through functions generated from settings.
- ``ddl``: creating and removing the app's tables (partitions, archive years, indexes).
- ``dispatch``: the routing trigger's generated fast path.
- ``runs``: the maintenance job's record of its runs.
"""
