from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    # The demo site opens on the partition dashboard (the admin login first).
    path(
        "",
        RedirectView.as_view(pattern_name="admin:activity_grades_partition_changelist"),
    ),
    path("admin/", admin.site.urls),
    path("activity-grades/", include("activity_grades.urls")),
]
