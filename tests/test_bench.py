"""``loadtest.harness``'s housekeeping shared by the load tools (``make bench``,
``make bench-scale``, ``make loadtest``)."""

from __future__ import annotations

from pathlib import Path

from loadtest.harness import remove_record_logs


def test_a_fresh_runs_database_starts_without_the_last_stores_record_logs(tmp_path: Path) -> None:
    """A run's new database is another store: the record log of the one it replaces (its
    slots, its lock, any log moved aside) goes; another database's stays."""
    db = tmp_path / "gateway.db"
    (tmp_path / "gateway.db.records").mkdir()
    (tmp_path / "gateway.db.records" / "slot-0.log").write_bytes(b"\0" * 4096)
    (tmp_path / "gateway.db.records.lock").touch()
    (tmp_path / "gateway.db.records.5f3a").mkdir()  # moved aside by a worker
    (tmp_path / "other.db.records").mkdir()
    db.touch()

    remove_record_logs(db)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.db", "other.db.records"]
