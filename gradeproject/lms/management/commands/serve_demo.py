"""Serve the demo site in a browser, with a demo login (``python3 scripts/dev.py serve``).

Demo only: this command belongs to the demo project, not to ``activity_grades``, and it is
the only place the demo login is made. In order it

1. refuses when the database has no demo data (``python3 scripts/dev.py demo`` loads it);
2. collects the static files into ``STATIC_ROOT`` (``collectstatic``), from where the
   WhiteNoise middleware serves them with ``DEBUG`` off, as on a production site;
3. creates the superuser ``demo`` (or resets its password) with a new random password,
   and prints the address of the partition dashboard, the user and the password;
4. runs Django's server on ``ADDRPORT`` without its reloader and without its own static
   file handler (``runserver --noreload --nostatic``): WhiteNoise serves them.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gradeproject.lms.models import Activity

DEMO_USER = "demo"
DASHBOARD = "admin/activity_grades/partition/"


class Command(BaseCommand):
    help = "Serve the demo site (static files by WhiteNoise, DEBUG off) with a demo login."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "addrport", nargs="?", default="127.0.0.1:8000", help="default 127.0.0.1:8000"
        )

    def handle(self, *args, **opts) -> None:
        if not Activity.objects.exists():
            raise CommandError(
                "This database has no demo data: run `python3 scripts/dev.py demo` first."
            )
        call_command("collectstatic", interactive=False, verbosity=0)
        password = self._demo_login()
        host, _, port = opts["addrport"].rpartition(":")
        url = f"http://{host or '127.0.0.1'}:{port}/"
        debug = "on" if settings.DEBUG else "off"
        self.stdout.write(
            self.style.SUCCESS(f"Partition dashboard: {url}{DASHBOARD}")
            + f"\nUser: {DEMO_USER}   Password: {password}   (demo login; new each run)"
            + f"\nStatic files: collected into {settings.STATIC_ROOT}, served by WhiteNoise"
            + f" with DEBUG {debug}, as on a production site; the server is Django's own,"
            + " for this demo.\n"
        )
        call_command("runserver", opts["addrport"], use_reloader=False, use_static_handler=False)

    def _demo_login(self) -> str:
        """The demo superuser with a new password (the old one is never shown, so reset it)."""
        password = secrets.token_urlsafe(12)
        user = User.objects.filter(username=DEMO_USER).first()
        if user is None:
            User.objects.create_superuser(DEMO_USER, "demo@example.invalid", password)
        else:
            user.is_active = user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
        return password
