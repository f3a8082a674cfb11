"""PostgreSQL servers a test starts and stops itself (Debian's PostgreSQL 15 binaries).

PostgreSQL refuses to run as root: when the tests run as root, each server runs as an
unprivileged user. ``own_server()`` initialises and starts one on a free port;
``standby_of()`` clones a running one with ``pg_basebackup -R`` into a streaming
standby. Both stop (immediately) and remove their files on exit.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
UNPRIVILEGED = "nobody"
HAVE_SERVER_BINARIES = (PG_BIN / "initdb").exists() and (PG_BIN / "pg_basebackup").exists()
SKIP_REASON = f"no PostgreSQL 15 server binaries in {PG_BIN}"


@dataclass(frozen=True)
class Server:
    port: int
    data: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start it again after ``stop()`` (same port, no extra settings)."""
        _start(self.data, self.data.parent, self.port, {})

    def stop(self) -> None:
        """Stop at once; nothing happens if it is already stopped."""
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
        as_server_user(pg_ctl, check=False)


def as_server_user(cmd: list[str], check: bool = True) -> None:
    kwargs: dict = {}
    if os.geteuid() == 0:
        user = pwd.getpwnam(UNPRIVILEGED)
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    subprocess.run(cmd, check=check, capture_output=True, **kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _base(prefix: str) -> Path:
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)
    if os.geteuid() == 0:
        user = pwd.getpwnam(UNPRIVILEGED)
        os.chown(base, user.pw_uid, user.pw_gid)
    return base


def _start(data: Path, base: Path, port: int, settings: dict[str, str]) -> None:
    options = " ".join(
        [f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"]
        + [f"-c {k}={v}" for k, v in settings.items()]
    )
    as_server_user(
        [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-o", options]
        + ["-w", "start"]
    )


@contextmanager
def own_server(prefix: str = "ag-pg-", **settings: str) -> Iterator[Server]:
    """A new server (trust auth, replication allowed from 127.0.0.1) with ``settings``."""
    base = _base(prefix)
    data = base / "data"
    as_server_user(
        [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"]
    )
    server = Server(_free_port(), data)
    _start(data, base, server.port, settings)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def standby_of(primary: Server, prefix: str = "ag-standby-") -> Iterator[Server]:
    """A hot standby streaming from ``primary`` (``pg_basebackup -R``)."""
    base = _base(prefix)
    data = base / "data"
    as_server_user(
        [str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port)]
        + ["-U", "postgres", "-D", str(data), "-R", "-X", "stream", "--no-sync"]
    )
    server = Server(_free_port(), data)
    _start(data, base, server.port, {"hot_standby": "on"})
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
