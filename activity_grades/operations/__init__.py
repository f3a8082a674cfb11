"""Operations on the tree, each a plan first and then its application.

Every operation module has ``plan(...)``, which reads and changes nothing, and returns a
plan whose ``apply(progress=None)`` carries it out, one short transaction per item:

- ``create``: partitions for classes and terms (``create_partitions``);
- ``regranulate``: move a term's grades between its term table and its month tables
  (``create_partitions --regranulate``);
- ``archive`` and ``restore``: whole (class, term) partitions into the archive and back;
- ``compress``: convert the archive between rows (before migration 0012) and chunks;
- ``retention``: drop archived academic years past the policy;
- ``repair``: find drift in the tree (``check_partitions``) and repair what is safe
  (``month_checks``: the month tables' own checks; ``problems``: what a check reports);
- ``maintenance``: the periodic job that runs create, archive, retention, ANALYZE.
"""
