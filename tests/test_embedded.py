"""The embedded PostgreSQL (no DATABASE_URL) starts for a normal user, not only for root.

As root, pgserver runs the server as its own system user: the whole suite runs that way
in CI's second pass. This starts a second, throw-away server in a temporary folder as a
normal user (``nobody`` when the tests run as root), connects, and stops it.

As root, the child process starts as root and gives up root for good (supplementary
groups, group and user id) before it touches pgserver, rather than being started with
``su nobody``: the interpreter may live where ``nobody`` cannot read it (pyenv's under
``/root``, mode 0700), and then ``su nobody -c python`` cannot even start it. Everything
the child needs is imported first; from then on it is a process of ``nobody``, and
pgserver takes its normal-user path (initdb and pg_ctl run as that user, no ``su``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NORMAL_USER = "nobody"

SCRIPT = """
import os, pwd, sys, warnings
from pathlib import Path
sys.path.insert(0, {root!r})
import psycopg
import gradeproject.embedded_db as embedded
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pgserver  # loads what pgserver needs while the interpreter's files are readable
    import pgserver._commands
if os.geteuid() == 0:
    user = pwd.getpwnam({user!r})
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    assert (os.getuid(), os.geteuid(), os.getgroups()) == (user.pw_uid, user.pw_uid, [])
os.mkdir(os.environ["XDG_RUNTIME_DIR"], 0o700)  # as a login session makes /run/user/<uid>
# pgserver decides at import whose runtime directory holds its lock: import it again,
# now as the normal user (its own files are in the venv, which that user can read).
for name in [name for name in sys.modules if name.split(".")[0] == "pgserver"]:
    del sys.modules[name]
embedded.PGDATA = Path({pgdata!r})
url = embedded.database_url()
try:
    with psycopg.connect(url) as conn:
        print(conn.execute("SELECT 6 * 7").fetchone()[0])
        print(conn.execute("SELECT current_setting('data_directory')").fetchone()[0])
finally:
    embedded.stop()
"""


def test_embedded_server_starts_for_a_normal_user():
    pytest.importorskip("pgserver", reason="pgserver has no wheel for this Python")
    home = tempfile.mkdtemp(prefix="ag-embedded-")
    try:
        if os.geteuid() == 0:  # the normal user's own folder, as a home would be
            user = pwd.getpwnam(NORMAL_USER)
            os.chown(home, user.pw_uid, user.pw_gid)
        pgdata = f"{home}/pgdata"
        code = SCRIPT.format(root=str(ROOT), pgdata=pgdata, user=NORMAL_USER)
        # The normal user's own home and runtime directory (pgserver's lock file goes
        # there), as a login session sets them; root's /tmp/runtime-0 is not theirs.
        env = {**os.environ, "HOME": home, "XDG_RUNTIME_DIR": f"{home}/runtime"}
        env.pop("DATABASE_URL", None)
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=home,
        )
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        assert out.stdout.splitlines()[:2] == ["42", pgdata]  # then pg_ctl stop's messages
        if os.geteuid() == 0:  # the server's files belong to the normal user, not pgserver
            assert Path(pgdata, "PG_VERSION").owner() == NORMAL_USER
    finally:
        shutil.rmtree(home, ignore_errors=True)
