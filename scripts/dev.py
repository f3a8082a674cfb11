#!/usr/bin/env python3
"""Bootstrap and run the project with nothing but Python installed.

    python3 scripts/dev.py demo   # venv + deps, embedded PostgreSQL, migrate, demo data,
                                  # partitions, grades routed, partition report
    python3 scripts/dev.py serve  # after the demo: the demo site for a browser, static files
                                  # served by WhiteNoise (DEBUG off), a demo login printed;
                                  # optional ADDRPORT (default 127.0.0.1:8000)
    python3 scripts/dev.py test   # the whole test suite (extra args go to pytest)
    python3 scripts/dev.py typecheck  # mypy + django-stubs over activity_grades/ (args go
                                      # to mypy); needs no database

Uses DATABASE_URL when it is set, otherwise starts an embedded PostgreSQL (pgserver)
in .pgdata/ and reuses it on the next run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
# The django-stubs plugin imports the demo settings, which only parse DATABASE_URL: a
# dummy one keeps them from starting the embedded server. Nothing connects to it.
TYPECHECK_DATABASE_URL = "postgresql://typecheck@localhost:5432/typecheck"


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    print("$", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_venv() -> None:
    """Create .venv and install requirements.txt; reinstall only when it changed."""
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".requirements.sha256"
    digest = hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        run(PY, "-m", "pip", "install", "--quiet", "-r", ROOT / "requirements.txt")
        stamp.write_text(digest)


def demo() -> None:
    manage = [PY, ROOT / "manage.py"]
    run(*manage, "migrate", "--no-input", "-v", "0")
    run(*manage, "load_demo_data", "--skip-grades")
    run(*manage, "create_partitions", "--all-terms")
    run(*manage, "load_demo_data", "--grades-only")
    run(*manage, "partition_report", "--exact")
    print(
        "\nTo see the partition dashboard in a browser:\n"
        "    python3 scripts/dev.py serve\n"
        "then open http://127.0.0.1:8000/ and log in with the user and password it prints.",
        flush=True,
    )


def serve(args: list[str]) -> None:
    """The demo site on the demo's database (gradeproject/lms/.../serve_demo.py)."""
    manage = [PY, ROOT / "manage.py"]
    run(*manage, "migrate", "--no-input", "-v", "0")
    try:
        run(*manage, "serve_demo", *args)
    except KeyboardInterrupt:  # Ctrl+C stops the server (it exits on its own)
        print("\nServer stopped.")


def typecheck(args: list[str]) -> None:
    """mypy with the settings of pyproject.toml ([tool.mypy], [tool.django-stubs])."""
    probe = subprocess.run([str(PY), "-c", "import mypy, mypy_django_plugin"], cwd=ROOT)
    if probe.returncode:
        sys.exit("typecheck: mypy and django-stubs are not installed (they need Python 3.11+)")
    run(PY, "-m", "mypy", *args, env={**os.environ, "DATABASE_URL": TYPECHECK_DATABASE_URL})


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in {"demo", "serve", "test", "typecheck"}:
        sys.exit(__doc__)
    ensure_venv()
    if sys.argv[1] == "demo":
        demo()
    elif sys.argv[1] == "serve":
        serve(sys.argv[2:])
    elif sys.argv[1] == "typecheck":
        typecheck(sys.argv[2:])
    else:
        run(PY, "-m", "pytest", *sys.argv[2:])


if __name__ == "__main__":
    main()
