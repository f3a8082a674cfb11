"""URLs of activity_grades: include("activity_grades.urls") under any prefix."""

from django.urls import path

from .views import metrics_view

app_name = "activity_grades"
urlpatterns = [path("metrics", metrics_view, name="metrics")]
