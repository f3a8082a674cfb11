from django.apps import AppConfig


class LmsConfig(AppConfig):
    name = "gradeproject.lms"
    label = "lms"
    verbose_name = "Demo LMS"
