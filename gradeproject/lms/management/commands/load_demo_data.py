"""Fill the demo LMS with terms, classes, activities, students and grades.

Terms are laid out around today (fall, spring and summer terms with gaps between
them), so "the current term and the next" means something. Grades go through the
``activity_grades`` parent with the ORM's ``bulk_create``: the routing trigger puts
each one in its (class, term) partition. A few grades are back-dated into the gaps
between terms to show where those go (the class table).
"""

from __future__ import annotations

import datetime as dt
import random
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from activity_grades.models import ActivityGrade
from gradeproject.lms.models import Activity, SchoolClass, Student, Term

# (name, start month/day, end month/day, year offset of the start from the fall's year)
SEASONS = [
    ("fall", (8, 20), (12, 20), 0),
    ("spring", (1, 10), (5, 20), 1),
    ("summer", (6, 5), (7, 31), 1),
]


def term_calendar(count: int, today: dt.date) -> list[tuple[str, dt.date, dt.date, str]]:
    """``count`` consecutive terms, the last one being the first that starts after today."""
    terms = []
    for year in range(today.year - count, today.year + 2):
        for name, (sm, sd), (em, ed), offset in SEASONS:
            start = dt.date(year + offset, sm, sd)
            end = dt.date(year + offset, em, ed)
            terms.append((f"{start.year}_{name}", start, end, f"{year}-{year + 1}"))
    terms.sort(key=lambda t: t[1])
    upcoming = next(i for i, t in enumerate(terms) if t[1] > today)
    return terms[max(0, upcoming + 1 - count) : upcoming + 1]


class Command(BaseCommand):
    help = "Load demo LMS data and grades (inserted through the activity_grades parent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--terms", type=int, default=3)
        parser.add_argument("--classes", type=int, default=40)
        parser.add_argument("--activities", type=int, default=30, help="per class")
        parser.add_argument("--students", type=int, default=600)
        parser.add_argument("--per-class", type=int, default=60, help="students enrolled per class")
        parser.add_argument("--seed", type=int, default=2023)
        parser.add_argument("--skip-grades", action="store_true", help="LMS rows only")
        parser.add_argument("--grades-only", action="store_true", help="grades only")

    def handle(self, *args, **opts) -> None:
        for key in ("terms", "classes", "activities", "students", "per_class"):
            if opts[key] < 1:
                raise CommandError(f"--{key.replace('_', '-')} must be at least 1")
        if opts["skip_grades"] and opts["grades_only"]:
            raise CommandError("--skip-grades and --grades-only exclude each other")
        rng = random.Random(opts["seed"])
        if not opts["grades_only"]:
            self._load_lms(opts)
        if not opts["skip_grades"]:
            if not Activity.objects.exists():
                raise CommandError("no activities: run load_demo_data without --grades-only first")
            self._load_grades(rng, opts["per_class"])

    @transaction.atomic
    def _load_lms(self, opts) -> None:
        today = timezone.localdate()
        for term_id, start, end, year in term_calendar(opts["terms"], today):
            Term.objects.update_or_create(
                id=term_id, defaults={"start_date": start, "end_date": end, "academic_year": year}
            )
        terms = list(Term.objects.filter(start_date__lte=today))
        SchoolClass.objects.bulk_create(
            [SchoolClass(id=str(100 + i), name=f"Class {100 + i}") for i in range(opts["classes"])],
            ignore_conflicts=True,
        )
        Student.objects.bulk_create(
            [Student(id=f"s{i:05d}", name=f"Student {i}") for i in range(opts["students"])],
            ignore_conflicts=True,
        )
        activities = []
        for i in range(opts["classes"]):
            for j in range(opts["activities"]):
                term = terms[j % len(terms)] if terms else None
                activities.append(
                    Activity(
                        id=f"act-{100 + i}-{j:02d}",
                        school_class_id=str(100 + i),
                        title=f"Activity {j} ({term.id if term else 'no term'})",
                    )
                )
        Activity.objects.bulk_create(activities, ignore_conflicts=True)
        self.stdout.write(
            f"LMS: {Term.objects.count()} terms, {SchoolClass.objects.count()} classes, "
            f"{Activity.objects.count()} activities, {Student.objects.count()} students."
        )

    def _load_grades(self, rng: random.Random, per_class: int) -> None:
        now = timezone.now()
        terms = [t for t in Term.objects.all() if t.start_date <= now.date()]
        if not terms:
            raise CommandError("no term has started yet: nothing to grade")
        students = list(Student.objects.values_list("id", flat=True))
        # Every grade already there, once: a deliberate read of the whole tree.
        taken = set(
            ActivityGrade.objects.across_all_partitions().values_list("activity_id", "student_id")
        )
        activities = list(Activity.objects.order_by("id").values_list("id", "school_class_id"))
        roster: dict[str, list[str]] = {}
        started, total = time.monotonic(), 0
        batch: list[ActivityGrade] = []
        for n, (activity_id, class_id) in enumerate(activities):
            members = roster.setdefault(
                class_id, rng.sample(students, min(per_class, len(students)))
            )
            term = terms[n % len(terms)]
            for student_id in members:
                # Draw every grade, kept or not, so a rerun makes the same choices.
                submitted = rng.random() <= 0.9
                grade = self._grade(rng, activity_id, student_id, term, now)
                if submitted and (activity_id, student_id) not in taken:
                    batch.append(grade)
            if len(batch) >= 5000:
                total += self._flush(batch)
        total += self._flush(batch)
        self.stdout.write(
            self.style.SUCCESS(
                f"Grades: {total:,} inserted through the activity_grades parent "
                f"in {time.monotonic() - started:.1f} s."
            )
        )

    @staticmethod
    def _grade(rng, activity_id, student_id, term: Term, now) -> ActivityGrade:
        start = dt.datetime.combine(term.start_date, dt.time(8), tzinfo=dt.timezone.utc)
        end = min(dt.datetime.combine(term.end_date, dt.time(22), tzinfo=dt.timezone.utc), now)
        created = start + (end - start) * rng.random()
        if rng.random() < 0.01:
            created = start - dt.timedelta(days=rng.randint(2, 9))  # in the gap before the term
        score = round(rng.uniform(40, 100), 1)
        return ActivityGrade(
            activity_id=activity_id,
            student_id=student_id,
            score=score,
            points=int(score),
            feedback=rng.choice(["", "Good work.", "See comments.", "Late submission."]),
            status=rng.choice(["graded"] * 8 + ["submitted", "returned"]),
            submitted_at=created,
            graded_at=created + dt.timedelta(days=2),
            graded_by_id="teacher-1",
            content={"answers": rng.randint(1, 20)},
            created_at=created,
        )

    @staticmethod
    def _flush(batch: list[ActivityGrade]) -> int:
        count = len(batch)
        if count:
            with transaction.atomic():
                ActivityGrade.objects.bulk_create(batch)
            batch.clear()
        return count
