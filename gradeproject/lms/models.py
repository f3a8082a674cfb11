"""A deliberately small LMS: the tables activity_grades routes by.

Table and column names follow the seed design (``activities.class_id``,
``terms.start_date``/``end_date``/``academic_year``) so the app's defaults fit.
"""

from django.db import models


class SchoolClass(models.Model):
    id = models.TextField(primary_key=True)
    name = models.TextField()

    class Meta:
        db_table = "classes"
        verbose_name = "class"
        verbose_name_plural = "classes"

    def __str__(self) -> str:
        return self.name


class Student(models.Model):
    id = models.TextField(primary_key=True)
    name = models.TextField()

    class Meta:
        db_table = "students"

    def __str__(self) -> str:
        return self.name


class Term(models.Model):
    """An academic term; ``end_date`` is inclusive, as in the seed."""

    id = models.TextField(primary_key=True)
    start_date = models.DateField()
    end_date = models.DateField()
    academic_year = models.TextField()

    class Meta:
        db_table = "terms"
        ordering = ["start_date"]

    def __str__(self) -> str:
        return self.id


class Activity(models.Model):
    id = models.TextField(primary_key=True)
    school_class = models.ForeignKey(
        SchoolClass, on_delete=models.CASCADE, db_column="class_id", related_name="activities"
    )
    title = models.TextField()
    max_points = models.IntegerField(default=100)

    class Meta:
        db_table = "activities"
        verbose_name_plural = "activities"

    def __str__(self) -> str:
        return self.title
