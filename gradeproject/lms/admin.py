from django.contrib import admin

from .models import Activity, SchoolClass, Student, Term

admin.site.register([SchoolClass, Student, Term])


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "school_class"]
    list_filter = ["school_class"]
