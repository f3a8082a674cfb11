-- Reverse of migration 0009_search_path: the functions use the session's search_path again.
ALTER FUNCTION activity_grades_route() RESET search_path;
ALTER FUNCTION activity_grades_move() RESET search_path;
ALTER FUNCTION activity_grades_keys_insert() RESET search_path;
ALTER FUNCTION activity_grades_keys_delete() RESET search_path;
ALTER FUNCTION activity_grades_keys_update() RESET search_path;
ALTER FUNCTION activity_grades_no_truncate() RESET search_path;
ALTER FUNCTION activity_grades_ensure_partition(text, text) RESET search_path;
ALTER FUNCTION activity_grades_archive_year(text) RESET search_path;
