"""``python -m activity_grades.sql --check | --write-manifest``: the MANIFEST of the SQL files.

``--check`` exits 1 when a file differs from MANIFEST or is not listed in it;
``--write-manifest`` rewrites MANIFEST and names any released file it had to change.
"""

from __future__ import annotations

import argparse
import sys

from . import MANIFEST, manifest_text, read_manifest, write_manifest


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m activity_grades.sql", description=__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="compare the files with MANIFEST")
    action.add_argument("--write-manifest", action="store_true", help="rewrite MANIFEST")
    args = parser.parse_args(argv)
    if args.write_manifest:
        changed = write_manifest()
        print(f"wrote {MANIFEST}")
        for path in changed:
            print(f"warning: released file changed or removed: {path}", file=sys.stderr)
        return 0
    listed, actual = read_manifest(), read_manifest(manifest_text())
    wrong = sorted(p for p in listed.keys() | actual.keys() if listed.get(p) != actual.get(p))
    for path in wrong:
        print(f"differs from MANIFEST: {path}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
