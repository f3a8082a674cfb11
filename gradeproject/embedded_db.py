"""Start (or reuse) an embedded PostgreSQL server when DATABASE_URL is not set.

The server comes from the ``pgserver`` pip package and lives in ``.pgdata/`` at the
project root (git-ignored). It keeps running after the process exits so the next run
reuses it in well under a second; ``python -m gradeproject.embedded_db stop`` stops it.
As root, pgserver runs the server as a dedicated ``pgserver`` system user.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

PGDATA = Path(__file__).resolve().parent.parent / ".pgdata"


def database_url() -> str:
    """Return a URL for the embedded server, starting it if needed.

    The URL is exported as ``DATABASE_URL`` so that child processes (tests that
    spawn writers, ``manage.py`` subprocesses) connect to the same server instead
    of starting their own.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root in containers).
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(PGDATA, cleanup_mode=None)
    url = server.get_uri()
    os.environ["DATABASE_URL"] = url
    return url


def stop() -> None:
    """Stop the embedded server if it runs."""
    import subprocess

    from pgserver._commands import POSTGRES_BIN_PATH

    if (PGDATA / "postmaster.pid").exists():
        cmd = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(PGDATA), "-m", "fast", "stop"]
        if os.geteuid() == 0:
            cmd = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(cmd)]
        subprocess.run(cmd, check=False)


if __name__ == "__main__":
    if sys.argv[1:] == ["stop"]:
        stop()
    else:
        print(database_url())
