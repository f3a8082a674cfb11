"""What a read replica says about itself: how far behind its primary it is.

A streaming standby (``pg_basebackup -R``) replays the primary's WAL. Its lag is the
time since the last transaction it replayed, except when it has replayed everything it
received while still streaming (an idle primary sends nothing: no lag, however old that
transaction). In bytes: the primary's current WAL position minus the standby's replay
position.
"""

from __future__ import annotations

from dataclasses import dataclass

from .connection import fetch_rows, fetch_value

__all__ = ["StandbyState", "primary_lsn", "standby_state"]


@dataclass(frozen=True)
class StandbyState:
    in_recovery: bool  # False: not a standby (its lag is unknown)
    lag_seconds: float | None  # None: nothing replayed yet
    replay_lsn: int | None


def _lsn(text: str | None) -> int | None:
    """``'16/B374D848'`` as a number of bytes."""
    if text is None:
        return None
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def standby_state(using: str) -> StandbyState:
    rows = fetch_rows(
        using,
        "SELECT pg_is_in_recovery(), "
        "CASE WHEN EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') "
        "AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
        "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END, "
        "pg_last_wal_replay_lsn()::text",
    )
    in_recovery, lag, replay = rows[0]
    if not in_recovery:
        return StandbyState(False, None, None)
    return StandbyState(True, None if lag is None else max(float(lag), 0.0), _lsn(replay))


def primary_lsn(using: str) -> int | None:
    """The primary's current WAL position (None on a standby)."""
    text = fetch_value(
        using, "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END"
    )
    return _lsn(text)
