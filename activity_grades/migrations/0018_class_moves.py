"""Moving a class between servers, issue 16's last slice (``manage.py move_class``).

- ``activity_grades_move_state``: the one unfinished move of a class (source, target,
  phase, the copy's progress), so an interrupted move resumes where it stopped;
- ``activity_grades_move_log``: ids written to a moving class while it is copied, noted by
- ``activity_grades_move_capture`` v1, the row trigger each of the class's tables on the
  coordinator carries during the copy;
- ``decided_by = 'move'`` in ``activity_grades_placement``.

Reverse: refuses while a move is unfinished (``move_class --abort`` first); placements a
move made become ``'place'``.
"""

from django.db import migrations

from activity_grades.sql import function, run_sql_files


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0017_sharded_on_demand")]

    operations = [
        run_sql_files(
            [function("activity_grades_move_capture", 1), "schema/0018_class_moves.sql"],
            ["schema/0018_class_moves.reverse.sql"],
        ),
    ]
