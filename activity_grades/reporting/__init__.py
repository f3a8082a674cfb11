"""Reporting: one model of partition statistics for the command, the admin and the metrics."""
