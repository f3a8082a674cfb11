"""The bottom layer: settings, constants, exceptions and ids. No database access."""
