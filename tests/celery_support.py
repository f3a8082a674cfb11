"""A real Celery worker for the task tests: a child process on the machine's broker.

The broker is Redis at 127.0.0.1:6379 (database 13) or, when Redis does not answer,
RabbitMQ at 127.0.0.1:5672 (guest/guest); ``CELERY_TEST_BROKER_URL`` picks another.
Each worker gets a queue and a node name of its own, so parallel runs on one broker
never take each other's tasks. Its database is this test run's (``DATABASE_URL`` of the
child points at it, with ``application_name`` so tests can find its sessions).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from .archive_support import ROOT, database_url

REDIS = "redis://127.0.0.1:6379/13"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
WORKER_APP = "ag_celery_worker"


def _answers(url: str) -> str | None:
    """None when a broker answers at ``url``; otherwise why not."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=3):
            pass
    except OSError as exc:
        return f"{parts.scheme} at {parts.hostname}:{parts.port}: {exc}"
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        return f"{url}: {type(exc).__name__}: {exc}"
    return None


def find_broker() -> tuple[str, str, str | None]:
    """(broker URL, result backend URL, None) or ("", "", why no broker answers)."""
    chosen = os.environ.get("CELERY_TEST_BROKER_URL")
    candidates = [chosen] if chosen else [REDIS, RABBITMQ]
    reasons = []
    for url in candidates:
        problem = _answers(url)
        if problem is None:
            backend = url if url.startswith("redis") else "rpc://"
            return url, backend, None
        reasons.append(problem)
    return "", "", "no Celery broker answers: " + "; ".join(reasons)


class Worker:
    """``celery -A gradeproject.celery worker`` on a queue of its own, 2 threads."""

    def __init__(self, broker: str, backend: str) -> None:
        self.queue = f"ag-test-{uuid.uuid4().hex[:12]}"
        self.log = Path(tempfile.mkstemp(prefix="ag-celery-", suffix=".log")[1])
        env = dict(os.environ)
        env.pop("TEST_DATABASE_NAME", None)
        env.update(
            DATABASE_URL=database_url(WORKER_APP),
            DJANGO_SETTINGS_MODULE=settings.SETTINGS_MODULE,
            CELERY_BROKER_URL=broker,
            CELERY_RESULT_BACKEND=backend,
            CELERY_RESULT_EXPIRES="600",  # the tests' results leave the broker in 10 minutes
        )
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "gradeproject.celery",
                    "worker",
                    "-Q",
                    self.queue,
                    "-n",
                    f"{self.queue}@%h",
                    "-P",
                    "threads",
                    "-c",
                    "2",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-l",
                    "INFO",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def forget_queue(self, app) -> None:
        """Delete the worker's queue from the broker (on Redis, its binding keys too)."""
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(self.queue)
        if app.conf.broker_url.startswith("redis"):
            import redis

            client = redis.Redis.from_url(app.conf.broker_url)
            for key in client.scan_iter(match=f"*{self.queue}*"):
                client.delete(key)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.log.unlink(missing_ok=True)


def wait_for(check, timeout: float, what: str, worker: Worker | None = None):
    """Poll ``check()`` until it returns something true; fail (not hang) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if worker is not None and worker.process.poll() is not None:
            raise AssertionError(f"the worker exited while waiting for {what}:\n{worker.output()}")
        time.sleep(0.1)
    log = worker.output() if worker else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log}")
