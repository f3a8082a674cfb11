"""The embedded PostgreSQL (no DATABASE_URL) starts for a normal user, not only for root.

As root, pgserver runs the server as its own system user: the whole suite runs that way
in CI's second pass. This starts a second, throw-away server in a temporary folder as a
normal user (``nobody`` when the tests run as root), connects, and stops it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
import psycopg
import gradeproject.embedded_db as embedded
embedded.PGDATA = Path({pgdata!r})
url = embedded.database_url()
try:
    print(psycopg.connect(url).execute("SELECT 6 * 7").fetchone()[0])
finally:
    embedded.stop()
"""


def test_embedded_server_starts_for_a_normal_user():
    home = tempfile.mkdtemp(prefix="ag-embedded-")
    try:
        os.chmod(home, 0o777)  # writable by the unprivileged user below
        code = SCRIPT.format(root=str(ROOT), pgdata=f"{home}/pgdata")
        cmd = [sys.executable, "-c", code]
        if os.geteuid() == 0:
            if shutil.which("su") is None:
                pytest.skip("running as root without su: cannot switch to a normal user")
            cmd = ["su", "nobody", "-s", "/bin/sh", "-c", shlex.join(cmd)]
        env = {**os.environ, "HOME": home}
        env.pop("DATABASE_URL", None)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=home)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[0] == "42"
    finally:
        shutil.rmtree(home, ignore_errors=True)
